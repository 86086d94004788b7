"""Turn psycopg errors into sessionward errors, by SQLSTATE and never by message.

Messages are only trimmed for display: the first line of the driver's text,
without libpq's "connection to server at … failed:" preamble and with any
password scrubbed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ...core import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    DatabaseInUse,
    PermissionDenied,
    SessionwardError,
    Target,
)

if TYPE_CHECKING:
    import psycopg

QUERY_CANCELED = "57014"
LOCK_NOT_AVAILABLE = "55P03"
INSUFFICIENT_PRIVILEGE = "42501"
#: DROP DATABASE: sessions, prepared transactions or replication slots use it.
OBJECT_IN_USE = "55006"
#: No database of that name.
INVALID_CATALOG_NAME = "3D000"
_AUTHENTICATION = frozenset({"28000", "28P01"})
#: Our own session ended under us: terminated, crash, shutdown.
_SESSION_ENDED = frozenset({"57P01", "57P02", "57P03"})
_CONNECTION_EXCEPTION_CLASS = "08"

_PREAMBLES = (
    re.compile(r"^connection (?:failed|is bad): "),
    re.compile(r"^connection to server (?:at|on) .*? failed: "),
    re.compile(r"^(?:FATAL|ERROR):\s+"),
)


def connect_error(error: psycopg.Error, target: Target) -> ConnectionFailed:
    """Describe a failed login in one line that never shows the password."""
    message = f"cannot connect to {target.redacted()}: {reason(error, target)}"
    if _is_authentication_failure(error):
        return AuthenticationFailed(message)
    return ConnectionFailed(message)


def reason(error: BaseException, target: Target) -> str:
    """The first line of a driver error, without libpq preambles or passwords.

    >>> from sessionward.core import parse_target
    >>> t = parse_target("postgresql://app:hunter22@db/x")
    >>> reason(OSError('connection failed: connection to server at "db", port 5432 '
    ...                'failed: Connection refused\\n\\tIs the server running?'), t)
    'connection refused'
    >>> reason(OSError("FATAL:  bad password hunter22"), t)
    'bad password ***'
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    line = lines[0] if lines else type(error).__name__
    for preamble in _PREAMBLES:
        line = preamble.sub("", line, count=1)
    if line[:1].isupper() and line[1:2].islower():
        line = line[0].lower() + line[1:]
    return target.scrub(line)


@contextmanager
def mapped_errors(
    target: Target,
    *,
    statement_timeout_seconds: float,
    lock_timeout_seconds: float,
    denied: Callable[[], str] | None = None,
) -> Iterator[None]:
    """Run a block of queries, raising sessionward errors for psycopg ones.

    ``denied`` words the ``PermissionDenied`` raised on SQLSTATE 42501.
    """
    import psycopg

    try:
        yield
    except psycopg.Error as error:
        raise _query_error(
            error, target, statement_timeout_seconds, lock_timeout_seconds, denied
        ) from error


def _query_error(
    error: psycopg.Error,
    target: Target,
    statement_timeout_seconds: float,
    lock_timeout_seconds: float,
    denied: Callable[[], str] | None,
) -> SessionwardError:
    import psycopg

    state = error.sqlstate
    where = target.redacted()
    broken = state is None and isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError))
    if broken or state in _SESSION_ENDED or (state or "").startswith(_CONNECTION_EXCEPTION_CLASS):
        return ConnectionFailed(f"lost the connection to {where}: {reason(error, target)}")
    if state == QUERY_CANCELED:
        return SessionwardError(
            f"catalog query exceeded the {statement_timeout_seconds:g}s statement timeout "
            f"on {where}"
        )
    if state == LOCK_NOT_AVAILABLE:
        return SessionwardError(
            f"catalog query waited over {lock_timeout_seconds:g}s for a lock on {where}"
        )
    if state == INSUFFICIENT_PRIVILEGE:
        return PermissionDenied(denied() if denied else f"{where}: {reason(error, target)}")
    if state == OBJECT_IN_USE:
        # The DETAIL says by what: "There are 2 other sessions using the database."
        detail = (error.diag.message_detail or "").strip().rstrip(".")
        words = reason(error, target) + (f" ({detail[:1].lower()}{detail[1:]})" if detail else "")
        return DatabaseInUse(f"{words}; nothing was dropped")
    if state == INVALID_CATALOG_NAME:
        return ConfigurationError(reason(error, target))
    return SessionwardError(f"query failed on {where} ({state}): {reason(error, target)}")


def _is_authentication_failure(error: psycopg.Error) -> bool:
    if error.sqlstate is not None:
        return error.sqlstate in _AUTHENTICATION
    # libpq keeps the SQLSTATE of a refused login to itself (psycopg reports
    # None) but tells whether the server asked for a password.  A login that
    # fails after a password exchange is counted as rejected credentials; a
    # missing database behind a correct password lands here too, with the
    # server's own words in the message.
    pgconn = error.pgconn
    return pgconn is not None and bool(pgconn.needs_password or pgconn.used_password)
