"""PostgreSQL's part of cancellation safety (see ``_cancel``): end the backend of a connection
discarded by a cancellation.

asyncpg and psycopg send a cancel request when a task is cancelled mid-statement, but a
cancel request that reaches the backend before the statement started is dropped
(PostgreSQL ignores one that arrives while it waits for a command), and psycopg then
closes the connection after 5 s: the backend runs its statement on, holding its
transaction's locks, and only notices its client is gone when it next reads from it
(``client_connection_check_interval`` is off by default).  A randomized run of 1,000
cancellations met this.  So the backend of such a connection is ended with
``pg_terminate_backend`` from a connection of its own, made with the engine's own
connect arguments, like MariaDB's ``KILL``.  The pid is noted at connect: psycopg
forgets it once it closed the connection.
"""

from __future__ import annotations

import functools
import logging
from importlib import resources
from typing import Any

from . import _liveness

logger = logging.getLogger("sessionward.sqlalchemy")

#: Our names of the PostgreSQL async drivers.
DRIVERS = frozenset({"asyncpg", "psycopg_async"})
#: Where the backend's pid is kept in the pool entry's ``info``.
_PID = "sessionward.backend_pid"
#: SQLAlchemy adapter arguments that are not the driver's own ``connect`` arguments.
_ADAPTER_ARGUMENTS = (
    "async_fallback",
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
)


def note_pid(driver: str, dbapi_connection: Any, record: Any) -> None:
    """``connect`` listener: keep the new session's backend pid (none kept for a connection
    that does not tell it: a stand-in; its session is then left to end on its own)."""
    try:
        connection = _liveness.driver_connection(dbapi_connection)
        pid = connection.get_server_pid() if driver == "asyncpg" else connection.info.backend_pid
    except Exception:
        logger.debug("no backend pid for a new connection", exc_info=True)
        return
    if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
        record.info[_PID] = pid


def pid_of(record: Any) -> int | None:
    return record.info.get(_PID) if record is not None else None


async def terminate(
    driver: str, connect: Any, cargs: Any, cparams: dict[str, Any], pid: int
) -> None:
    """``pg_terminate_backend(pid)`` on a new connection made with the engine's arguments
    (``connect``: the engine's ``async_creator`` if any, else None)."""
    for name in _ADAPTER_ARGUMENTS:
        cparams.pop(name, None)
    query = _load("terminate_cancelled_session_postgresql")
    if driver == "asyncpg":
        if connect is None:
            import asyncpg

            connect = asyncpg.connect
        connection = await connect(*(cargs or ()), **cparams)
        try:
            await connection.fetchval(query.replace("%(pid)s", "$1"), pid)
        finally:
            await connection.close(timeout=1)
        return
    if connect is None:
        import psycopg

        connect = psycopg.AsyncConnection.connect
    connection = await connect(*(cargs or ()), **cparams)
    try:
        await connection.set_autocommit(True)
        await connection.execute(query, {"pid": pid})
    finally:
        await connection.close()


@functools.cache
def _load(name: str) -> str:
    return (resources.files(__package__) / "queries" / f"{name}.sql").read_text(encoding="utf-8")
