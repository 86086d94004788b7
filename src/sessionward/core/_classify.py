"""Tell which ending a driver error stands for, by SQLSTATE or error number.

No driver is imported: the code is read from what each driver puts on its
errors — ``sqlstate`` (psycopg 3, async too, and asyncpg), ``pgcode``
(psycopg2), ``args[0]`` (PyMySQL, mysqlclient, aiomysql, which raises
PyMySQL's classes, and asyncmy) — after unwrapping SQLAlchemy (``.orig``, then the
``__cause__`` of its asyncio adapters' errors) and Django (``__cause__``)
wrappers.

asyncpg needs three more rules:

- A session the server ends mid-statement comes as
  ``ConnectionDoesNotExistError`` (``08003``) with the server's FATAL
  (``57P01`` …) as its ``__cause__``: the server's code wins.
- A FATAL that arrives while the connection sits idle makes asyncpg close it;
  the next call raises ``InterfaceError("connection is closed")`` with no code
  (the FATAL is not kept anywhere), so that text gives ``ConnectionLost``.
- A termination racing an operation can leave asyncpg's protocol in an
  unexpected state, reported as ``InternalClientError`` (sqlalchemy#13241);
  the connection cannot be trusted after it, so it is ``ConnectionLost``
  unless a server code is chained to it.

Message text is read only where the driver gives no code, and only in English:

- PostgreSQL sends ``57014`` both for a statement timeout and for a cancel; the
  English message tells them apart, any other text gives the parent
  ``StatementInterrupted``.
- psycopg2 drops the SQLSTATE of a FATAL error that closes the connection and
  reports "server closed the connection unexpectedly"; the server's own line is
  still in ``connection.info.error_message`` until the connection is closed.
  SQLAlchemy closes it before the error reaches you, so
  ``sessionward.sqlalchemy.classify_errors`` copies the line onto the error.
- libpq keeps the SQLSTATE of a refused login to itself: a server that is
  starting up or shutting down is recognised by its text.
- PgBouncer reports every ending of its own as ``08P01`` with its reason as
  the whole message (``query_wait_timeout``, ``server conn crashed?`` …), in
  English always (it has no translations): the reason picks the ``Pooler*``
  class.  An ``08P01`` with another text stays ``ConnectionLost``.
- A server session terminated behind PgBouncer while a psycopg 3 client waits
  for ``BEGIN`` or ``COMMIT`` brings two FATAL errors (the server's ``57P01``,
  passed on, then PgBouncer's "server conn crashed?") and the end of the
  connection; psycopg reports only its own ``InternalError("received 2 results
  from command 'COMMIT'")``, with no code: ``ConnectionLost``.

An unrecognised text falls back to the safe, generic class.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ._errors import (
    ConnectionLost,
    Deadlock,
    IdleInTransactionTimeout,
    IdleSessionTimeout,
    LockTimeout,
    PoolerEnded,
    PoolerIdleTimeout,
    PoolerKilled,
    PoolerRefused,
    PoolerServerLost,
    PoolerWaitTimeout,
    QueryCanceled,
    SerializationFailure,
    ServerShuttingDown,
    SessionEnded,
    SessionTerminated,
    StatementInterrupted,
    StatementTimeout,
    TransactionTimeout,
    _Ending,
)

Ending = type[StatementInterrupted] | type[SessionEnded]

#: PostgreSQL SQLSTATEs; class ``08`` (connection exception) is ``ConnectionLost`` too.
PG_CODES: Mapping[str, Ending] = {
    "57014": StatementInterrupted,  # refined by its message: see _cancel_kind
    "55P03": LockTimeout,
    "40P01": Deadlock,
    "40001": SerializationFailure,
    "57P01": SessionTerminated,
    "57P04": SessionTerminated,
    "25P03": IdleInTransactionTimeout,
    "57P05": IdleSessionTimeout,
    "25P04": TransactionTimeout,
    "57P02": ServerShuttingDown,
    "57P03": ServerShuttingDown,
}
PG_CONNECTION_EXCEPTION_CLASS = "08"

#: MariaDB/MySQL error numbers: below 2000 from the server, 2xxx from the client library.
MYSQL_CODES: Mapping[int, Ending] = {
    1317: QueryCanceled,  # ER_QUERY_INTERRUPTED
    1969: StatementTimeout,  # ER_STATEMENT_TIMEOUT (MariaDB max_statement_time)
    3024: StatementTimeout,  # ER_QUERY_TIMEOUT (MySQL max_execution_time)
    1205: LockTimeout,  # ER_LOCK_WAIT_TIMEOUT
    3572: LockTimeout,  # ER_LOCK_NOWAIT (MySQL)
    1213: Deadlock,  # ER_LOCK_DEADLOCK
    1927: SessionTerminated,  # ER_CONNECTION_KILLED (MariaDB)
    4031: IdleSessionTimeout,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8.0.24+)
    1053: ServerShuttingDown,  # ER_SERVER_SHUTDOWN
    2006: ConnectionLost,  # CR_SERVER_GONE_ERROR
    2013: ConnectionLost,  # CR_SERVER_LOST
    2055: ConnectionLost,  # CR_SERVER_LOST_EXTENDED
}

_STATEMENT_TIMEOUT_TEXT = "canceling statement due to statement timeout"
_USER_CANCEL_TEXT = "canceling statement due to user request"

#: The server's FATAL lines, for libpq errors that come without a SQLSTATE.
_LIBPQ_SESSION_TEXTS: tuple[tuple[str, Ending], ...] = (
    ("terminating connection due to administrator command", SessionTerminated),
    ("terminating connection due to idle-in-transaction timeout", IdleInTransactionTimeout),
    ("terminating connection due to idle-session timeout", IdleSessionTimeout),
    ("terminating connection due to transaction timeout", TransactionTimeout),
)
_LIBPQ_LOGIN_TEXTS: tuple[tuple[str, Ending], ...] = (
    ("the database system is starting up", ServerShuttingDown),
    ("the database system is shutting down", ServerShuttingDown),
    ("the database system is not yet accepting connections", ServerShuttingDown),
    ("the database system is in recovery mode", ServerShuttingDown),
)

#: PgBouncer's reasons (``08P01``, or no code at login), as it words them.
POOLER_PROTOCOL_VIOLATION = "08P01"
_POOLER_TEXTS: tuple[tuple[str, Ending], ...] = (
    ("query_wait_timeout", PoolerWaitTimeout),
    ("client_idle_timeout", PoolerIdleTimeout),
    ("idle transaction timeout", PoolerIdleTimeout),
    ("server conn crashed?", PoolerServerLost),
    ("database removed", PoolerKilled),
    ("admin forced disconnect", PoolerKilled),
    ("unsupported startup parameter", PoolerRefused),
    ("server login has been failing", PoolerRefused),
    ("pgbouncer cannot connect to server", PoolerRefused),
    ("no more connections allowed", PoolerRefused),
    ("client_login_timeout", PoolerRefused),
    ("query_timeout", PoolerEnded),
)

_LIBPQ_DRIVERS = frozenset({"psycopg", "psycopg2"})
_MYSQL_DRIVERS = frozenset({"pymysql", "MySQLdb", "asyncmy"})
#: asyncpg's own text (never the server's, never translated) for a closed connection.
_ASYNCPG_CLOSED_TEXT = "connection is closed"
#: Drivers that raise InterfaceError for a connection that is already closed.
_CLOSED_IS_INTERFACE_ERROR = frozenset({"psycopg2", "pymysql", "MySQLdb"})
#: psycopg 3's own text (never the server's) when a transaction command got several
#: results: two FATAL errors, as behind PgBouncer, and then the connection's end.
_PSYCOPG_RESULTS_TEXT = " results from command "
_MAX_WRAPPERS = 8


def classify(error: BaseException) -> Ending | None:
    """The sessionward class for a driver error, raw or wrapped, or ``None``.

    >>> class QueryCanceled(Exception):  # what psycopg 3 raises, as far as we look
    ...     sqlstate = "57014"
    >>> classify(QueryCanceled("canceling statement due to statement timeout")).__name__
    'StatementTimeout'
    >>> classify(QueryCanceled("Abbruch der Anweisung wegen Zeitüberschreitung")).__name__
    'StatementInterrupted'
    >>> classify(ValueError("unrelated")) is None
    True
    """
    return _diagnose(error)[0]


@contextmanager
def translate() -> Iterator[None]:
    """Re-raise session endings of the block as sessionward errors, ``from`` the original.

    Anything ``classify`` does not recognise passes through unchanged.  Usable
    as a decorator too.
    """
    try:
        yield
    except _Ending:
        raise
    except Exception as error:
        ending, code, message = _diagnose(error)
        if ending is None:
            raise
        raise ending(message, code=code) from error


def _diagnose(error: BaseException) -> tuple[Ending | None, str | None, str]:
    """The class, the code and a one-line message for ``error``."""
    if isinstance(error, (StatementInterrupted, SessionEnded)):
        return type(error), error.code, str(error)
    original, notes = _unwrap(error)
    driver = type(original).__module__.partition(".")[0]
    if driver == "asyncpg":
        return _asyncpg(original)
    if original is not error and _is_socket_loss(original):
        # A socket error a SQLAlchemy asyncio adapter passed on as its cause.
        return ConnectionLost, None, _first_line(str(original)) or type(original).__name__
    line = _first_line(str(original))
    if driver in _MYSQL_DRIVERS:  # they carry a SQLSTATE too, but the errno is what counts
        errno = _errno(original)
        ending = MYSQL_CODES.get(errno) if errno is not None else None
        if ending is None and errno == 0 and _is_a(original, "InterfaceError"):
            ending = ConnectionLost  # the connection was already closed
        code = str(errno) if errno else None
        text = _first_line(str(original.args[1])) if len(original.args) > 1 else line
        return ending, code, _with_code(text or line, code)
    sqlstate = _sqlstate(original)
    if sqlstate is not None:
        return _pg_by_code(original, sqlstate), sqlstate, _with_code(line, sqlstate)
    if driver in _LIBPQ_DRIVERS:
        ending, phrase = _libpq_without_code(original, driver, notes)
        return ending, None, phrase or line
    return None, None, line


def _unwrap(error: BaseException) -> tuple[BaseException, list[str]]:
    """The driver error inside SQLAlchemy and Django wrappers, and notes the wrappers carry.

    The notes are SQLAlchemy's ``detail`` lines, where ``classify_errors``
    keeps the server's reason that psycopg2 would otherwise lose.
    """
    notes: list[str] = []
    for _ in range(_MAX_WRAPPERS):
        module = type(error).__module__
        inner: object = None
        if module.partition(".")[0] == "sqlalchemy":
            inner = getattr(error, "orig", None)
            if inner is None and module != "sqlalchemy.exc":
                # The asyncio dialects' DBAPI-like errors keep the driver's as their cause.
                inner = error.__cause__
            detail = getattr(error, "detail", None)
            if isinstance(detail, list):
                notes += [note for note in detail if isinstance(note, str)]
        elif module == "django.db.utils":
            inner = error.__cause__
        if not isinstance(inner, BaseException):
            return error, notes
        error = inner
    return error, notes


def _asyncpg(error: BaseException) -> tuple[Ending | None, str | None, str]:
    """asyncpg errors: the server's code when one is chained, else what asyncpg says."""
    found = _server_code(error)
    if found is not None:
        server, sqlstate = found
        line = _first_line(str(server))
        return _pg_by_code(server, sqlstate), sqlstate, _with_code(line, sqlstate)
    line = _first_line(str(error))
    if _is_a(error, "InternalClientError") or (
        _is_a(error, "InterfaceError") and _ASYNCPG_CLOSED_TEXT in line
    ):
        return ConnectionLost, None, line
    return None, None, line


def _server_code(error: BaseException) -> tuple[BaseException, str] | None:
    """The error and SQLSTATE that say most: a cause's code beats a connection-class ``08``.

    asyncpg reports a session the server ended as ``08003`` and keeps the
    server's own FATAL, which says why, as the ``__cause__``.  Only causes
    are followed: ``__context__`` may be any earlier, unrelated error.
    """
    first: tuple[BaseException, str] | None = None
    current: BaseException | None = error
    for _ in range(_MAX_WRAPPERS):
        if current is None:
            break
        sqlstate = _sqlstate(current)
        if sqlstate is not None:
            if not sqlstate.startswith(PG_CONNECTION_EXCEPTION_CLASS):
                return current, sqlstate
            first = first or (current, sqlstate)
        current = current.__cause__
    return first


def _is_socket_loss(error: BaseException) -> bool:
    """A socket that broke under an open connection (a refused connect is no session ending)."""
    return isinstance(error, ConnectionError) and not isinstance(error, ConnectionRefusedError)


def server_reason(error: BaseException) -> str | None:
    """The server's own line for a psycopg2 error that lost its SQLSTATE, while it is readable.

    psycopg2 reports only "server closed the connection unexpectedly"; the
    server's FATAL line stays readable on the connection until it is closed.
    """
    message = _psycopg2_server_message(error)
    for line in message.splitlines():
        if line.startswith("FATAL:"):
            return line
    return None


def _sqlstate(error: BaseException) -> str | None:
    for attribute in ("sqlstate", "pgcode"):
        value = getattr(error, attribute, None)
        if isinstance(value, str) and len(value) == 5:
            return value
    return None


def _errno(error: BaseException) -> int | None:
    args: tuple[object, ...] = error.args
    first = args[0] if args else None
    return first if isinstance(first, int) and not isinstance(first, bool) else None


def _pg_by_code(error: BaseException, sqlstate: str) -> Ending | None:
    if sqlstate == "57014":
        return _cancel_kind(error)
    if sqlstate == POOLER_PROTOCOL_VIOLATION:
        return _pooler_kind(error) or ConnectionLost
    if sqlstate.startswith(PG_CONNECTION_EXCEPTION_CLASS):
        return ConnectionLost
    return PG_CODES.get(sqlstate)


def _cancel_kind(error: BaseException) -> Ending:
    """A timeout or a cancel: both are ``57014``, only the (English) text differs."""
    primary = getattr(getattr(error, "diag", None), "message_primary", None)
    text = primary if isinstance(primary, str) else str(error)
    if _STATEMENT_TIMEOUT_TEXT in text:
        return StatementTimeout
    if _USER_CANCEL_TEXT in text:
        return QueryCanceled
    return StatementInterrupted


def _pooler_kind(error: BaseException) -> Ending | None:
    """PgBouncer's reason for an ``08P01``, or ``None`` when the text is none of them."""
    primary = getattr(getattr(error, "diag", None), "message_primary", None)
    text = primary if isinstance(primary, str) else str(error)
    return _match([text], _POOLER_TEXTS)[0]


def _libpq_without_code(
    error: BaseException, driver: str, notes: list[str]
) -> tuple[Ending | None, str | None]:
    """psycopg or psycopg2 errors that carry no SQLSTATE."""
    if driver in _CLOSED_IS_INTERFACE_ERROR and _is_a(error, "InterfaceError"):
        return ConnectionLost, None
    if driver == "psycopg" and _is_a(error, "InternalError"):
        text = str(error)
        lost = text.startswith("received ") and _PSYCOPG_RESULTS_TEXT in text
        return (ConnectionLost, None) if lost else (None, None)
    if not _is_a(error, "OperationalError"):
        return None, None
    texts = [str(error), _psycopg2_server_message(error), *notes]
    if _during_login(error):
        return _match(texts, _LIBPQ_LOGIN_TEXTS + _POOLER_TEXTS)
    ending, phrase = _match(texts, _LIBPQ_SESSION_TEXTS + _LIBPQ_LOGIN_TEXTS + _POOLER_TEXTS)
    return ending or ConnectionLost, phrase


def _during_login(error: BaseException) -> bool:
    """Whether a libpq error was raised while connecting, before any session existed."""
    # psycopg 3 attaches the failed connection, with no backend, to login errors.
    pgconn = getattr(error, "pgconn", None)
    if pgconn is not None:
        return getattr(pgconn, "backend_pid", None) == 0
    # psycopg2 sets neither the server text nor a cursor on login errors.
    missing = object()
    return getattr(error, "pgerror", missing) is None and getattr(error, "cursor", missing) is None


def _psycopg2_server_message(error: BaseException) -> str:
    """libpq's whole error message for psycopg2, which keeps only its last line."""
    cursor: Any = getattr(error, "cursor", None)
    try:
        message = cursor.connection.info.error_message
    except Exception:
        return ""
    return message if isinstance(message, str) else ""


def _match(
    texts: list[str], table: tuple[tuple[str, Ending], ...]
) -> tuple[Ending | None, str | None]:
    for phrase, ending in table:
        if any(phrase in text for text in texts):
            return ending, phrase
    return None, None


def _is_a(error: BaseException, class_name: str) -> bool:
    return any(cls.__name__ == class_name for cls in type(error).__mro__)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        for prefix in ("ERROR:", "FATAL:"):
            if line.startswith(prefix):
                line = line[len(prefix) :].strip()
        if line:
            return line
    return text.strip()


def _with_code(message: str, code: str | None) -> str:
    return f"{message} [{code}]" if code else message
