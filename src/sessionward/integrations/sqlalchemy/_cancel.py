"""Cancellation safety for hardened ``AsyncEngine``s: a task cancelled mid-statement leaves
no server session behind.

When a task is cancelled (``asyncio.timeout``, ``wait_for``, a ``TaskGroup`` sibling
failing, a client hanging up) while its connection runs a statement, SQLAlchemy
invalidates the connection: the pool's ``invalidate`` event gets the ``CancelledError``,
and the connection is closed rather than returned.  What the server does then depends
on the server:

- PostgreSQL: asyncpg and psycopg send a cancel request on cancellation, but one that
  arrives before the statement started is dropped, and the backend then runs its
  statement on after its client hung up: its backend is ended with
  ``pg_terminate_backend`` the same way as MariaDB's ``KILL`` below (see ``_cancel_pg``).
- MariaDB/MySQL: the session runs its statement to the end after its client hung up,
  holding its transaction's locks all along (a ``SLEEP(30)`` stays "Query" for 30 s,
  an ``UPDATE`` waiting on a lock keeps waiting).  Here the ``invalidate`` listener
  ends the session with ``KILL CONNECTION`` on a connection of its own, made with the
  engine's own connect arguments (as the ``do_connect`` event last saw them), in a task
  of its own, and waits until the session is gone (``KILL`` returns before it rolled
  back); the cancelled task waits for that, shielded, so that once the cancellation
  has reached the application the server has let go.  (Were that task cancelled again
  meanwhile, the ``KILL`` carries on in the background.)

A connection id is ended only for an invalidation caused by a cancellation (or another
``BaseException``, or a client-side ``TimeoutError``), on a connection alive a moment
before: the id cannot have been given to another session since.  An engine made with
``creator=`` / ``async_creator=`` has no connect arguments to reuse: there the session
is left to end with its statement, and the engine says so once.  Any failure of ours
is logged and dropped: the invalidation goes on as without us.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
import logging
from importlib import resources
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from . import _cancel_pg, _liveness

logger = logging.getLogger("sessionward.sqlalchemy")

#: How long the ``KILL`` (connect, statement, close) may take before it is given up.
KILL_TIMEOUT_SECONDS = 5.0
#: How often the server is asked meanwhile whether the killed session is gone.
KILLED_POLL_SECONDS = 0.01
#: MariaDB/MySQL ``ER_NO_SUCH_THREAD``: the session had already ended.
_NO_SUCH_THREAD = 1094
#: Async drivers whose server runs a statement on after the client hung up, and the
#: module whose ``connect`` SQLAlchemy's adapter calls (unless ``async_creator_fn``).
_KILLED_ON_CANCEL = {"aiomysql": "aiomysql", "asyncmy": "asyncmy"}
#: ``KILL`` tasks running now: the event loop keeps only weak references to tasks.
_running: set[asyncio.Task[None]] = set()


class _Killer:
    """What one engine needs to end the session of a cancelled connection."""

    __slots__ = ("cargs", "cparams", "driver", "name", "warned")

    def __init__(self, driver: str, name: str) -> None:
        self.driver = driver
        self.name = name
        #: The arguments of the engine's latest connect, as ``do_connect`` listeners
        #: left them; None until a connect goes through ``do_connect``.
        self.cargs: Any = None
        self.cparams: dict[str, Any] | None = None
        self.warned = False


def install(engine: Engine, driver: str, name: str) -> None:
    """Listen on ``engine`` (an ``AsyncEngine``'s ``sync_engine``) for connections
    invalidated by a cancellation, when its driver's server needs that."""
    if driver not in _KILLED_ON_CANCEL and driver not in _cancel_pg.DRIVERS:
        return
    killer = _Killer(driver, name)
    if driver in _cancel_pg.DRIVERS:  # the pid, while the driver still knows it
        event.listen(engine, "connect", functools.partial(_cancel_pg.note_pid, driver))
    event.listen(engine, "do_connect", functools.partial(_note_arguments, killer))
    event.listen(engine, "invalidate", functools.partial(_on_invalidate, killer))


def _note_arguments(killer: _Killer, dialect: Any, record: Any, cargs: Any, cparams: Any) -> None:
    # The very dictionary the connect will use: listeners after us may still change it.
    killer.cargs, killer.cparams = cargs, cparams


def is_cancellation(error: BaseException | None) -> bool:
    """Whether ``error`` interrupted the connection mid-operation, from the client's side.

    >>> is_cancellation(asyncio.CancelledError()), is_cancellation(TimeoutError())
    (True, True)
    >>> is_cancellation(ValueError()), is_cancellation(None)
    (False, False)
    """
    return error is not None and (
        not isinstance(error, Exception) or isinstance(error, asyncio.TimeoutError)
    )


def _on_invalidate(
    killer: _Killer, dbapi_connection: Any, record: Any, error: BaseException | None
) -> None:
    if not is_cancellation(error):
        return
    try:
        _end_session(killer, dbapi_connection, record)
    except Exception:
        logger.warning(
            "%s: ending the server session of a cancelled connection failed",
            killer.name,
            exc_info=True,
        )


def _end_session(killer: _Killer, dbapi_connection: Any, record: Any = None) -> None:
    if killer.cparams is None:
        if not killer.warned:
            killer.warned = True
            logger.warning(
                "%s: a connection was discarded by a cancellation, but the engine was made "
                "with creator=/async_creator=, so sessionward cannot connect to end its "
                "server session: it ends when its statement does",
                killer.name,
            )
        return
    connection_id = (
        _cancel_pg.pid_of(record)
        if killer.driver in _cancel_pg.DRIVERS
        else _connection_id(dbapi_connection)
    )
    if connection_id is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no event loop here: nothing can be awaited
        return
    task = loop.create_task(_kill(killer, connection_id))
    _running.add(task)
    task.add_done_callback(_running.discard)
    try:
        # Public API for awaiting in an event of an async engine; only the KILL is shielded.
        dbapi_connection.run_async(lambda _: asyncio.shield(task))
    except BaseException:  # cancelled again, or not in SQLAlchemy's greenlet: it runs on
        logger.debug(
            "%s: the KILL of session %s goes on in the background",
            killer.name,
            connection_id,
            exc_info=True,
        )


def _connection_id(dbapi_connection: Any) -> int | None:
    connection = _liveness.driver_connection(dbapi_connection)
    found = connection.thread_id() if callable(getattr(connection, "thread_id", None)) else None
    if found is None:
        found = getattr(connection, "thread_id", None)  # asyncmy: an attribute
    return found if isinstance(found, int) and not isinstance(found, bool) and found > 0 else None


async def _kill(killer: _Killer, connection_id: int) -> None:
    try:
        await asyncio.wait_for(_kill_now(killer, connection_id), KILL_TIMEOUT_SECONDS)
    except Exception as error:
        if getattr(error, "args", (None,))[:1] == (_NO_SUCH_THREAD,):
            return  # ended already
        logger.warning(
            "%s: could not end server session %s of a cancelled connection: %r",
            killer.name,
            connection_id,
            error,
        )
    else:
        logger.debug(
            "%s: ended server session %s of a cancelled connection", killer.name, connection_id
        )


async def _kill_now(killer: _Killer, connection_id: int) -> None:
    """``KILL CONNECTION`` on a new connection made as the engine makes its own."""
    cparams = dict(killer.cparams or {})
    connect = cparams.pop("async_creator_fn", None)
    if killer.driver in _cancel_pg.DRIVERS:
        await _cancel_pg.terminate(killer.driver, connect, killer.cargs, cparams, connection_id)
        return
    if connect is None:
        connect = importlib.import_module(_KILLED_ON_CANCEL[killer.driver]).connect
    connection = await connect(*(killer.cargs or ()), **cparams)
    try:
        cursor = await _maybe_await(connection.cursor())
        try:
            await cursor.execute(
                _load("kill_cancelled_session_mariadb"), {"connection_id": connection_id}
            )
            # KILL returns before the session rolled back: wait until it is gone, so its
            # locks are free once the cancellation reaches the application.
            while True:
                await cursor.execute(
                    _load("get_killed_session_mariadb"), {"connection_id": connection_id}
                )
                if not await _maybe_await(cursor.fetchone()):
                    break
                await asyncio.sleep(KILLED_POLL_SECONDS)
        finally:
            await _maybe_await(cursor.close())
    finally:
        with contextlib.suppress(Exception):
            await _maybe_await(connection.close())


async def _maybe_await(value: Any) -> Any:
    """aiomysql's ``cursor()`` and ``close()`` are plain calls, asyncmy's are awaited."""
    return await value if inspect.isawaitable(value) else value


@functools.cache
def _load(name: str) -> str:
    return (resources.files(__package__) / "queries" / f"{name}.sql").read_text(encoding="utf-8")
