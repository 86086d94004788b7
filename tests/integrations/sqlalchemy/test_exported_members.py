"""The public names of the SQLAlchemy integration are pinned."""

import sessionward.integrations.sqlalchemy
import sessionward.sqlalchemy

SQLALCHEMY_ALL = [
    "Backoff",
    "ConcurrentUse",
    "FallbackWarning",
    "Holder",
    "LeakWarning",
    "PoolTimeout",
    "QueuePool",
    "apply_timeouts",
    "apply_transaction_timeouts",
    "classify_errors",
    "harden",
    "holders",
    "transaction",
]


def test_the_public_names_are_pinned() -> None:
    assert sessionward.sqlalchemy.__all__ == SQLALCHEMY_ALL
    assert sessionward.integrations.sqlalchemy.__all__ == SQLALCHEMY_ALL
    for name in SQLALCHEMY_ALL:
        assert getattr(sessionward.sqlalchemy, name) is getattr(
            sessionward.integrations.sqlalchemy, name
        )
