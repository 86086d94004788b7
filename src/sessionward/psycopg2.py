"""psycopg2: ``Timeouts`` as connection arguments, or applied to an open connection.

::

    import psycopg2
    from sessionward import Timeouts
    from sessionward.psycopg2 import psycopg2_kwargs

    conn = psycopg2.connect(url, **psycopg2_kwargs(Timeouts(statement_seconds=30)))

    # behind a transaction-mode pooler (PgBouncer): the limits per transaction
    set_transaction_timeouts(pooled_conn, Timeouts(statement_seconds=30))
"""

from .integrations.psycopg2._timeouts import (
    apply_timeouts,
    psycopg2_kwargs,
    set_transaction_timeouts,
)

__all__ = [
    "apply_timeouts",
    "psycopg2_kwargs",
    "set_transaction_timeouts",
]
