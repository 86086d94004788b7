"""sessionward for SQLAlchemy.

``apply_timeouts(engine, Timeouts(...))`` sets statement, lock and idle limits,
keepalives and the connect timeout on every connection the engine makes.
``apply_transaction_timeouts(engine, ...)`` sets them per transaction instead,
behind a transaction-mode pooler (PgBouncer).  ``classify_errors(engine)`` makes
every connection-level ending invalidate the connection, by error code, and keeps
the server's reason psycopg2 would lose.
``harden(engine)`` replaces dead pooled connections at checkout without a round
trip, retires them before the server's idle limit and records who holds each
one (``holders(engine)``); should it fail on a connection it falls back to a
ping at checkout and says so once (``FallbackWarning``).  The ``sessionward``
SQLAlchemy plugin (``create_engine(url, plugins=["sessionward"])`` or
``?plugin=sessionward``) hardens an engine from its URL.  ``transaction(Session)``
commits, rolls back and closes, and as a decorator reruns the whole unit when
that is safe; in coroutines, ``async with transaction(...)`` and ``@transaction``
on an ``async def`` do the same with an ``AsyncEngine`` or ``async_sessionmaker``.
"""

from ..core import DriverNotInstalled

try:
    import sqlalchemy  # noqa: F401 - to say what is missing
except ImportError:
    raise DriverNotInstalled(
        "sessionward.sqlalchemy needs SQLAlchemy: pip install 'sessionward[sqlalchemy]'"
    ) from None

from ..integrations.sqlalchemy import (
    Backoff,
    ConcurrentUse,
    FallbackWarning,
    Holder,
    LeakWarning,
    PoolTimeout,
    QueuePool,
    apply_timeouts,
    apply_transaction_timeouts,
    classify_errors,
    harden,
    holders,
    transaction,
)

__all__ = [
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
