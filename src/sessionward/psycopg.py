"""psycopg 3: ``Timeouts`` as connection arguments, or applied to an open connection; the
session's origin (``service[pid]@host``) as its application name.

::

    import psycopg
    from sessionward import Timeouts
    from sessionward.psycopg import psycopg_kwargs

    timeouts = Timeouts(statement_seconds=30, lock_seconds=5, idle_in_transaction_seconds=60)
    conn = psycopg.connect(url, **psycopg_kwargs(timeouts, server_version=150000))
    pool = psycopg_pool.ConnectionPool(url, kwargs=psycopg_kwargs(timeouts))
    named = psycopg_pool.ConnectionPool(url, kwargs=origin_kwargs(conninfo=url))
    tagged = psycopg_pool.ConnectionPool(url, **origin_pool_args(conninfo=url))
    ha = psycopg_pool.ConnectionPool(multi_host_url, check=failover_check)

    # behind a transaction-mode pooler (PgBouncer): the limits per transaction
    with conn.transaction():
        set_transaction_timeouts(conn, timeouts)

    # asyncio: liveness at getconn, recycle="auto", leaks naming the task and code line
    pool = async_pool(url, timeouts=timeouts)   # a psycopg_pool.AsyncConnectionPool
    async_pool_holders(pool)
    pool = psycopg_pool.AsyncConnectionPool(url, **async_pool_args(conninfo=url))
"""

from .integrations._pool_guard import Holder, LeakWarning
from .integrations.psycopg._async_pool import async_pool, async_pool_args, async_pool_holders
from .integrations.psycopg._failover import failover_check
from .integrations.psycopg._origin import OriginWarning, origin_kwargs, origin_pool_args
from .integrations.psycopg._timeouts import (
    apply_timeouts,
    psycopg_kwargs,
    set_transaction_timeouts,
)

__all__ = [
    "Holder",
    "LeakWarning",
    "OriginWarning",
    "apply_timeouts",
    "async_pool",
    "async_pool_args",
    "async_pool_holders",
    "failover_check",
    "origin_kwargs",
    "origin_pool_args",
    "psycopg_kwargs",
    "set_transaction_timeouts",
]
