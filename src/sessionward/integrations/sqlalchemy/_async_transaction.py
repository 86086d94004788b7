"""``transaction(...)`` for coroutines too: ``async with`` and ``@transaction`` on an ``async def``.

The class exported as ``sessionward.sqlalchemy.transaction`` is this subclass of
the synchronous one (``_transaction``).  It adds the asyncio side — begin,
commit, roll back, close and wait, awaited — and leaves the judgment of a
failure (rerun the whole unit, ``CommitOutcomeUnknown``, or pass it on) to the
parent, so both sides follow one set of rules.

Which side runs is chosen by how the unit is used: ``with`` and a plain
``def`` need an ``Engine``, a ``Session`` or a ``sessionmaker``; ``async with``
and an ``async def`` need an ``AsyncEngine``, an ``AsyncSession`` or an
``async_sessionmaker`` (or ``async_scoped_session``).  A bind of the other side
is one ``ConfigurationError`` naming what to use instead, raised before
anything is opened (for a decorator, when it decorates).

Cancellation: a unit cancelled at any ``await`` is rolled back and closed, that
cleanup shielded, before the ``CancelledError`` goes on; it is never rerun.
A unit cancelled while its ``COMMIT`` is in flight may or may not be applied,
as for any cancelled ``COMMIT``: the cancellation goes on as it is.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import logging
import sys
from collections.abc import Callable, Coroutine
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from ...core import ConfigurationError, ConnectionLost
from . import _transaction
from ._backoff import Backoff
from ._harden import _FD
from ._liveness import closed_check, descriptor, ended_while_idle
from ._transaction import DEFAULT_RETRIES, _first_line, _Retryable

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

logger = logging.getLogger("sessionward.sqlalchemy")

R = TypeVar("R")
AnyUnit = TypeVar("AnyUnit", Session, Connection, "AsyncSession", "AsyncConnection")

#: MariaDB/MySQL client errors for a server that could not be reached.
_MYSQL_UNREACHABLE = frozenset({2002, 2003, 2006, 2013})
#: Cleanups still running after their task was cancelled again: the loop keeps only weak
#: references to tasks.
_cleanups: set[asyncio.Task[None]] = set()

_SYNC_HINT = (
    "use `with transaction(...)` or decorate a plain def; in a coroutine, pass an "
    "AsyncEngine (create_async_engine), an AsyncSession or an async_sessionmaker"
)
_ASYNC_HINT = (
    "use `async with transaction(...)` or decorate an async def; in synchronous code, "
    "pass an Engine (create_engine), a Session or a sessionmaker"
)


class transaction(_transaction.transaction[Any], Generic[AnyUnit]):  # read as a function
    """Run a unit of work in one transaction: commit, roll back on error, always close.

    ``bind`` is a ``sessionmaker`` (or any callable returning a ``Session``,
    such as a ``scoped_session``), a ``Session``, or an ``Engine`` (the unit
    then gets a ``Connection`` inside ``begin()``); in coroutines, their async
    twins: an ``async_sessionmaker`` (or ``async_scoped_session``), an
    ``AsyncSession``, or an ``AsyncEngine`` (an ``AsyncConnection``)::

        @transaction(Session)  # Session = sessionmaker(engine)
        def transfer(session, source, target, amount): ...

        @transaction(AsyncSessions)  # AsyncSessions = async_sessionmaker(async_engine)
        async def transfer(session, source, target, amount): ...

        async with transaction(async_engine) as connection: ...

    As a decorator, the session is passed as the first argument and the whole
    function is rerun, up to ``retries`` attempts with backoff, when its
    connection ended before ``COMMIT`` was sent or the server failed it whole
    (deadlock, serialization failure).

    As a context manager the block cannot be rerun: such a failure is raised as
    the ``SessionEnded`` (or ``Deadlock``, ``SerializationFailure``) it was,
    ``from`` the driver error, and nothing of the block was committed.

    When the connection ended while ``COMMIT`` was in flight,
    ``CommitOutcomeUnknown`` is raised and nothing is rerun, unless
    ``idempotent=True`` says running the unit twice is harmless.
    """

    @overload
    def __init__(
        self: transaction[AsyncConnection],
        bind: AsyncEngine,
        *,
        retries: int = ...,
        idempotent: bool = ...,
        backoff: Backoff | None = ...,
    ) -> None: ...

    @overload
    def __init__(
        self: transaction[AsyncSession],
        bind: AsyncSession | Callable[[], AsyncSession],
        *,
        retries: int = ...,
        idempotent: bool = ...,
        backoff: Backoff | None = ...,
    ) -> None: ...

    @overload
    def __init__(
        self: transaction[Connection],
        bind: Engine,
        *,
        retries: int = ...,
        idempotent: bool = ...,
        backoff: Backoff | None = ...,
    ) -> None: ...

    @overload
    def __init__(
        self: transaction[Session],
        bind: Session | Callable[[], Session],
        *,
        retries: int = ...,
        idempotent: bool = ...,
        backoff: Backoff | None = ...,
    ) -> None: ...

    def __init__(
        self,
        bind: Any,
        *,
        retries: int = DEFAULT_RETRIES,
        idempotent: bool = False,
        backoff: Backoff | None = None,
    ) -> None:
        if isinstance(bind, Engine) and bind.dialect.is_async:
            raise ConfigurationError(
                "transaction() was given an AsyncEngine's sync_engine: pass the AsyncEngine "
                "itself and use `async with transaction(...)` or decorate an async def"
            )
        asynchronous = _is_async_bind(bind)
        if not (asynchronous or isinstance(bind, (Engine, Session)) or callable(bind)):
            raise ConfigurationError(
                f"transaction() needs an Engine, a Session or a sessionmaker (in coroutines "
                f"an AsyncEngine, an AsyncSession or an async_sessionmaker), not {bind!r}"
            )
        # The parent checks the other arguments and keeps them; an async bind is not one
        # it knows, so it is given a stand-in and the bind is kept here.
        super().__init__(
            _no_session if asynchronous else bind,
            retries=retries,
            idempotent=idempotent,
            backoff=backoff,
        )
        self._bind = bind
        #: Units open in ``async with`` blocks: (the task that entered, unit, owned). One
        #: transaction object may be entered by several tasks at once.
        self._open_async: list[tuple[asyncio.Task[Any] | None, Any, bool]] = []

    # ------------------------------------------------------------------ which side

    def _require(self, *, asynchronous: bool) -> None:
        """``ConfigurationError`` when the bind belongs to the other side."""
        bind = self._bind
        if asynchronous and isinstance(bind, (Engine, Session, sessionmaker, scoped_session)):
            raise ConfigurationError(
                f"transaction() was given a synchronous {_kind(bind)} in a coroutine: {_SYNC_HINT}"
            )
        if not asynchronous and _is_async_bind(bind):
            raise ConfigurationError(
                f"transaction() was given an {_kind(bind)} outside a coroutine: {_ASYNC_HINT}"
            )

    def _begin(self) -> tuple[Session | Connection, bool]:
        self._require(asynchronous=False)
        return super()._begin()

    # ------------------------------------------------------------------ decorator

    @overload
    def __call__(
        self, func: Callable[..., Coroutine[Any, Any, R]]
    ) -> Callable[..., Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, func: Callable[..., R]) -> Callable[..., R]: ...

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.iscoroutinefunction(func):
            self._require(asynchronous=False)
            return super().__call__(func)
        self._require(asynchronous=True)

        @functools.wraps(func)
        async def rerun(*args: Any, **kwargs: Any) -> Any:
            failures = 0
            while True:
                try:
                    return await self._attempt_async(func, args, kwargs)
                except _Retryable as retryable:
                    failures += 1
                    if failures >= self._retries:
                        raise retryable.error from retryable.error.__cause__
                    delay = self._backoff.delay_seconds(failures)
                    logger.info(
                        "%s: rerunning the transaction in %.3fs (attempt %d of %d): %s",
                        getattr(func, "__qualname__", func),
                        delay,
                        failures + 1,
                        self._retries,
                        retryable.error,
                    )
                    await asyncio.sleep(delay)

        return rerun

    async def _attempt_async(
        self, func: Callable[..., Coroutine[Any, Any, R]], args: Any, kwargs: Any
    ) -> R:
        unit, owned = await self._begin_async()
        try:
            result = await func(unit, *args, **kwargs)
        except BaseException as error:
            await self._fail_async(unit, owned, error, committing=False)
            raise
        await self._commit_async(unit, owned)
        return result

    # ------------------------------------------------------------------ async with

    async def __aenter__(self) -> AnyUnit:
        try:
            unit, owned = await self._begin_async()
        except _Retryable as retryable:
            raise retryable.error from retryable.error.__cause__
        self._open_async.append((asyncio.current_task(), unit, owned))
        return unit  # type: ignore[no-any-return]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        opened, task = self._open_async, asyncio.current_task()
        # This task's innermost unit; the latest one if another task entered the block.
        index = next((n for n in reversed(range(len(opened))) if opened[n][0] is task), -1)
        _, unit, owned = opened.pop(index)
        try:
            if exc is not None:
                await self._fail_async(unit, owned, exc, committing=False)
                return  # the async with statement re-raises exc
            await self._commit_async(unit, owned)
        except _Retryable as retryable:
            raise retryable.error from retryable.error.__cause__

    # ------------------------------------------------------------------ one attempt

    async def _begin_async(self) -> tuple[Any, bool]:
        self._require(asynchronous=True)
        aio = _asyncio_extension()
        bind: Any = self._bind
        if isinstance(bind, aio.AsyncEngine):
            connection = bind.connect()
            try:
                await connection.start()
                await connection.begin()
            except BaseException as error:
                await _cleanup(connection, rollback=False)
                self._judge_begin(error)
                raise
            return connection, True
        if isinstance(bind, aio.AsyncSession):
            session, owned = bind, False
        else:
            session, owned = bind(), True
            if not isinstance(session, aio.AsyncSession):
                if isinstance(session, Session):
                    session.close()
                    raise ConfigurationError(
                        f"transaction(): {bind!r} made a synchronous Session in a "
                        f"coroutine: {_SYNC_HINT}"
                    )
                raise ConfigurationError(
                    f"transaction(): {bind!r} made {session!r}, not an AsyncSession"
                )
        if session.bind is not None:
            # Check out now, so that a server out of reach is found here, where nothing of
            # the unit has run and any connect error can only be the connect's.
            try:
                await session.connection()
            except BaseException as error:
                await _cleanup(session, rollback=True)
                self._judge_begin(error)
                raise
        return session, owned

    def _judge_begin(self, error: BaseException) -> None:
        """Raise ``_Retryable`` for a connect that failed because the server was out of reach.

        Nothing of the unit was sent, so it can be rerun.  asyncpg passes a refused
        connect on as the ``OSError`` it is, with no DB-API wrapper to judge.
        """
        if not isinstance(error, Exception):
            return
        if _unreachable(error):
            lost = ConnectionLost(_first_line(error))
            lost.__cause__ = error
            raise _Retryable(lost) from error
        self._judge(error, committing=False)

    async def _commit_async(self, unit: Any, owned: bool) -> None:
        committing = False
        try:
            aio = _asyncio_extension()
            if isinstance(unit, aio.AsyncSession):
                await unit.flush()  # a failure here comes before COMMIT: the outcome is known
            # A session the server ended while the unit sat idle in its transaction fails
            # its COMMIT too, but then nothing was applied: rerun it.
            committing = not _ended_before_commit(unit)
            await unit.commit()
        except BaseException as error:
            await self._fail_async(unit, owned, error, committing=committing)
            raise
        try:
            await unit.close()
        except Exception:
            logger.debug("closing after a committed unit failed", exc_info=True)

    async def _fail_async(
        self, unit: Any, owned: bool, error: BaseException, *, committing: bool
    ) -> None:
        """Leave the unit clean, then raise what the caller should see, if not ``error``."""
        del owned  # a Session passed in is closed too, which leaves it reusable
        await _cleanup(unit, rollback=True)
        if isinstance(error, Exception):
            self._judge(error, committing=committing)


def _no_session() -> Session:
    raise AssertionError("unreachable: an async bind is never used synchronously")


def _is_async_bind(bind: object) -> bool:
    """Whether ``bind`` is one of SQLAlchemy's asyncio engines, sessions or session makers.

    Without ``sqlalchemy.ext.asyncio`` imported, nothing can be one.
    """
    aio = sys.modules.get("sqlalchemy.ext.asyncio")
    return aio is not None and isinstance(
        bind,
        (aio.AsyncEngine, aio.AsyncSession, aio.async_sessionmaker, aio.async_scoped_session),
    )


def _kind(bind: object) -> str:
    return type(bind).__name__


@functools.cache
def _asyncio_extension() -> ModuleType:
    return importlib.import_module("sqlalchemy.ext.asyncio")


def _unreachable(error: BaseException) -> bool:
    """Whether a connect failed because the server could not be reached (not a refused login)."""
    if isinstance(error, (OSError, asyncio.TimeoutError)):
        return True  # asyncpg: refused, reset, timed out
    if isinstance(error, DBAPIError) and error.statement is None:
        original = error.orig
        if isinstance(original, (OSError, asyncio.TimeoutError)):
            return True
        args: tuple[object, ...] = getattr(original, "args", ())
        if type(original).__module__.partition(".")[0] == "asyncmy":
            return bool(args) and args[0] in _MYSQL_UNREACHABLE
    return False


def _ended_before_commit(unit: Any) -> bool:
    """Whether the server has already ended the unit's session, before COMMIT is sent.

    Only what is certain counts: asyncpg's closed flag (it sends nothing on a closed
    connection) and, while it is open, the socket ``harden()`` found for it; psycopg's
    connection status and its socket, which it reads only while it works.  aiomysql and
    asyncmy keep what their event loop already read to themselves and close their
    socket when the server does, so its number may already belong to another
    connection: for them an ending is never assumed, and a failed COMMIT is reported as
    unknown.
    """
    try:
        aio = _asyncio_extension()
        if isinstance(unit, aio.AsyncSession):
            if not unit.in_transaction():
                return False
            connection = unit.sync_session.connection()
        else:
            connection = unit.sync_connection
        if connection.invalidated or connection.closed:
            return False
        dbapi_connection = connection.connection.dbapi_connection
        driver = connection.dialect.driver
        if driver == "asyncpg":
            if dbapi_connection.driver_connection.is_closed():
                return True
            # Open, so the socket harden() found is still the connection's: what the event
            # loop has not read yet is still on it.
            return ended_while_idle("psycopg", dbapi_connection, connection.info.get(_FD))
        if driver == "psycopg":
            if closed_check("psycopg_async")(dbapi_connection):
                return True
            fd = descriptor("psycopg_async", dbapi_connection)
            return ended_while_idle("psycopg", dbapi_connection, fd)
    except Exception:
        logger.debug("could not look at the connection before COMMIT", exc_info=True)
    return False


async def _cleanup(unit: Any, *, rollback: bool) -> None:
    """Roll back (whatever state the connection is in) and close, shielded from a second
    cancellation: the cleanup then goes on in the background while the task unwinds."""
    task = asyncio.ensure_future(_roll_back_and_close(unit, rollback=rollback))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            _cleanups.add(task)
            task.add_done_callback(_cleanups.discard)
        raise


async def _roll_back_and_close(unit: Any, *, rollback: bool) -> None:
    if rollback:
        try:
            await unit.rollback()
        except Exception:  # a dead connection: SQLAlchemy already invalidated it
            logger.debug("rollback after a failed unit failed too", exc_info=True)
    try:
        await unit.close()
    except Exception:
        logger.debug("closing after a unit failed", exc_info=True)
