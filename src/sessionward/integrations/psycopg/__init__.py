"""psycopg 3: ``Timeouts`` as connection arguments, or applied to an open connection.

::

    import psycopg
    from sessionward import Timeouts
    from sessionward.integrations.psycopg import psycopg_kwargs

    timeouts = Timeouts(statement_seconds=30, lock_seconds=5, idle_in_transaction_seconds=60)
    conn = psycopg.connect(url, **psycopg_kwargs(timeouts, server_version=150000))
    pool = psycopg_pool.ConnectionPool(url, kwargs=psycopg_kwargs(timeouts))
"""

from ._timeouts import apply_timeouts, psycopg_kwargs

__all__ = ["apply_timeouts", "psycopg_kwargs"]
