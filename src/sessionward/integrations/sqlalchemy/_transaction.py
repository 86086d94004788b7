"""``transaction(...)``: commit, roll back, close, and rerun the whole unit when that is safe.

A unit of work fails in one of three ways that matter here:

- before ``COMMIT`` was sent, its connection ended (the session was
  terminated, timed out, the server restarted, the network broke) or the
  server failed it whole (deadlock, serialization failure): nothing of it
  committed, so rerunning the whole unit applies it at most once;
- while ``COMMIT`` was in flight, the connection ended: the server may have
  committed or not; ``CommitOutcomeUnknown``, never a blind rerun;
- anything else (a constraint, a bug in the unit): rolled back and raised as is.

Whatever happens, the session is rolled back and closed before the error
leaves, so the next use of it (or of a ``scoped_session``) starts clean instead
of raising ``PendingRollbackError``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ...core import (
    CommitOutcomeUnknown,
    ConfigurationError,
    ConnectionLost,
    Deadlock,
    SerializationFailure,
    SessionEnded,
    classify,
    translate,
)
from ...core._errors import _Ending
from ...core._target_sessions import no_host_as_wanted
from ._backoff import Backoff
from ._harden import _FD
from ._liveness import descriptor, ended_while_idle

logger = logging.getLogger("sessionward.sqlalchemy")

#: Attempts of the whole unit by default: the first and two reruns.
DEFAULT_RETRIES = 3

R = TypeVar("R")
Unit = TypeVar("Unit", Session, Connection)
Bind = Engine | Session | Callable[[], Session]

_RERUN_WHOLE = (Deadlock, SerializationFailure)


class transaction(Generic[Unit]):  # lower case: it reads as a function, @transaction(...)
    """Run a unit of work in one transaction: commit, roll back on error, always close.

    ``bind`` is a ``sessionmaker`` (or any callable returning a ``Session``,
    such as a ``scoped_session``), a ``Session``, or an ``Engine`` (the unit
    then gets a ``Connection`` inside ``begin()``).

    As a decorator, the session is passed as the first argument and the whole
    function is rerun, up to ``retries`` attempts with backoff, when its
    connection ended before ``COMMIT`` was sent or the server failed it whole
    (deadlock, serialization failure)::

        @transaction(Session)
        def transfer(session, source, target, amount): ...

        transfer(1, 2, 10)

    As a context manager the block cannot be rerun: such a failure is raised as
    the ``SessionEnded`` (or ``Deadlock``, ``SerializationFailure``) it was,
    ``from`` the driver error, and nothing of the block was committed.

    When the connection ended while ``COMMIT`` was in flight,
    ``CommitOutcomeUnknown`` is raised and nothing is rerun, unless
    ``idempotent=True`` says running the unit twice is harmless.
    """

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
        bind: Bind,
        *,
        retries: int = DEFAULT_RETRIES,
        idempotent: bool = False,
        backoff: Backoff | None = None,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
            raise ConfigurationError(f"transaction(retries=...) must be >= 1, not {retries!r}")
        if not (isinstance(bind, (Engine, Session)) or callable(bind)):
            raise ConfigurationError(
                f"transaction() needs an Engine, a Session or a sessionmaker, not {bind!r}"
            )
        self._bind = bind
        self._retries = retries
        self._idempotent = idempotent
        self._backoff = backoff or Backoff()
        self._open: list[tuple[Session | Connection, bool]] = []

    # ------------------------------------------------------------------ decorator

    def __call__(self, func: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(func)
        def rerun(*args: Any, **kwargs: Any) -> R:
            failures = 0
            while True:
                try:
                    return self._attempt(lambda unit: func(unit, *args, **kwargs))
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
                    time.sleep(delay)

        return rerun

    def _attempt(self, body: Callable[[Any], R]) -> R:
        try:
            unit, owned = self._begin()
        except Exception as error:
            # An Engine bind connects here: a refused or lost login (a restart, a
            # failover under way) is rerun like a session ended mid-unit.
            self._judge(error, committing=False)
            raise
        try:
            result = body(unit)
        except BaseException as error:
            self._fail(unit, owned, error, committing=False)
            raise
        self._commit(unit, owned)
        return result

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> Unit:
        unit, owned = self._begin()
        self._open.append((unit, owned))
        return unit  # type: ignore[return-value]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        unit, owned = self._open.pop()
        try:
            if exc is not None:
                self._fail(unit, owned, exc, committing=False)
                return  # the with statement re-raises exc
            self._commit(unit, owned)
        except _Retryable as retryable:
            raise retryable.error from retryable.error.__cause__

    # ------------------------------------------------------------------ one attempt

    def _commit(self, unit: Session | Connection, owned: bool) -> None:
        committing = False
        try:
            if isinstance(unit, Session):
                unit.flush()  # a failure here comes before COMMIT: the outcome is known
            # A session the server ended while the unit sat idle in its transaction
            # fails its COMMIT too, but then nothing was applied: rerun it.
            committing = not _ended_before_commit(unit)
            unit.commit()
        except BaseException as error:
            self._fail(unit, owned, error, committing=committing)
            raise
        _close(unit, owned)

    def _fail(
        self, unit: Session | Connection, owned: bool, error: BaseException, *, committing: bool
    ) -> None:
        """Leave the unit clean, then raise what the caller should see, if not ``error``."""
        _discard(unit)
        _close(unit, owned)
        if isinstance(error, Exception):
            self._judge(error, committing=committing)

    def _begin(self) -> tuple[Session | Connection, bool]:
        bind = self._bind
        if isinstance(bind, Engine):
            connection = bind.connect()
            connection.begin()
            return connection, True
        if isinstance(bind, Session):
            return bind, False
        session = bind()
        if not isinstance(session, Session):
            raise ConfigurationError(f"transaction(): {bind!r} made {session!r}, not a Session")
        return session, True

    def _judge(self, error: Exception, *, committing: bool) -> None:
        """Raise what the caller should see instead of ``error``, if anything."""
        ending = classify(error)
        ended = _connection_ended(error)
        if committing and ended:
            if self._idempotent:
                raise _Retryable(_as_ending(error, ending)) from error
            raise CommitOutcomeUnknown(
                f"the connection ended while COMMIT was in flight; the transaction may or "
                f"may not have been applied: {_first_line(error)}"
            ) from error
        if ended or (ending is not None and issubclass(ending, _RERUN_WHOLE)):
            raise _Retryable(_as_ending(error, ending)) from error


class _Retryable(Exception):
    """Internal: the attempt failed in a way that rerunning the whole unit fixes."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _connection_ended(error: BaseException) -> bool:
    """Whether the connection under the unit is gone (the server rolled back for us)."""
    ending = classify(error)
    if ending is not None and issubclass(ending, SessionEnded):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        if error.statement is None and _unreachable(error.orig):
            return True
    return False


#: MariaDB/MySQL client errors for a server that could not be reached or went away.
_MYSQL_UNREACHABLE = frozenset({2002, 2003, 2006, 2013})


def _unreachable(original: BaseException | None) -> bool:
    """Whether a connect failed because the server could not be reached (not a refused login).

    Nothing was sent on that connection, so the unit can be rerun.
    """
    driver = type(original).__module__.partition(".")[0]
    if driver in ("psycopg", "psycopg2"):
        # libpq gives no SQLSTATE when the server cannot be reached at all.
        state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
        return state is None or str(state).startswith("08") or state == "57P03"
    if driver in ("pymysql", "MySQLdb"):
        args: tuple[object, ...] = getattr(original, "args", ())
        return bool(args) and args[0] in _MYSQL_UNREACHABLE
    return False


def _as_ending(error: Exception, ending: type[Exception] | None) -> Exception:
    """The sessionward error for ``error``, with ``error`` as its cause."""
    if isinstance(error, DBAPIError) and error.statement is None:
        # A connect that passed over every host of a multi-host URL (target_session_attrs):
        # rerun, as during a failover; when that lasts, say so plainly.
        failed = no_host_as_wanted(str(error.orig))
        if failed is not None:
            failed.__cause__ = error
            return failed
    try:
        with translate():
            raise error
    except _Ending as made:
        return made
    except Exception:
        pass
    lost = ConnectionLost(_first_line(error))
    lost.__cause__ = error
    return lost


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _ended_before_commit(unit: Session | Connection) -> bool:
    """Whether the server has already ended the unit's session, before COMMIT is sent."""
    try:
        if isinstance(unit, Session):
            if not unit.in_transaction():
                return False
            connection = unit.connection()
        else:
            connection = unit
        if connection.invalidated or connection.closed:
            return False
        dbapi_connection = connection.connection.dbapi_connection
        driver = connection.dialect.driver
        fd = connection.info.get(_FD)
        if fd is None:
            fd = descriptor(driver, dbapi_connection)
        return ended_while_idle(driver, dbapi_connection, fd)
    except Exception:
        logger.debug("could not look at the connection before COMMIT", exc_info=True)
        return False


def _discard(unit: Session | Connection) -> None:
    """Roll back, whatever state the connection is in."""
    try:
        unit.rollback()
    except Exception:  # a dead connection: SQLAlchemy already invalidated it
        logger.debug("rollback after a failed unit failed too", exc_info=True)


def _close(unit: Session | Connection, owned: bool) -> None:
    """Close the unit; a ``Session`` passed in is closed too, which leaves it reusable."""
    del owned
    try:
        unit.close()
    except Exception:
        logger.debug("closing after a unit failed", exc_info=True)
