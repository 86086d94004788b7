"""PyMySQL errors mapped to sessionward errors, by errno only.

Codes below 2000 come from the server, 2xxx from the client library.  The
original error stays reachable as ``__cause__``.
"""

from __future__ import annotations

import importlib
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ...core import (
    AuthenticationFailed,
    ConnectionFailed,
    PermissionDenied,
    SessionwardError,
    Target,
)

if TYPE_CHECKING:
    import pymysql


def driver_errors() -> Any:
    """PyMySQL's ``err`` module as PyMySQL itself raises from it.

    Not ``pymysql.err``: under ``pymysql.install_as_MySQLdb()`` (Django does
    ``from MySQLdb.converters import …``) that attribute is rebound to a second
    copy of the module, whose classes PyMySQL never raises.
    """
    return importlib.import_module("pymysql.err")


ER_DB_DROP_EXISTS = 1008
ER_CON_COUNT_ERROR = 1040
ER_DBACCESS_DENIED_ERROR = 1044
ER_ACCESS_DENIED_ERROR = 1045
ER_BAD_DB_ERROR = 1049
ER_NO_SUCH_THREAD = 1094
ER_KILL_DENIED_ERROR = 1095
ER_HOST_IS_BLOCKED = 1129
ER_HOST_NOT_PRIVILEGED = 1130
ER_TABLEACCESS_DENIED_ERROR = 1142
ER_LOCK_WAIT_TIMEOUT = 1205
ER_SPECIFIC_ACCESS_DENIED_ERROR = 1227
ER_SP_DOES_NOT_EXIST = 1305
ER_QUERY_INTERRUPTED = 1317
ER_PROCACCESS_DENIED_ERROR = 1370
ER_ACCESS_DENIED_NO_PASSWORD_ERROR = 1698
ER_CONNECTION_KILLED = 1927
ER_STATEMENT_TIMEOUT = 1969
ER_QUERY_TIMEOUT = 3024
ER_CLIENT_INTERACTION_TIMEOUT = 4031
CR_CONN_HOST_ERROR = 2003
CR_UNKNOWN_HOST = 2005
CR_SERVER_GONE_ERROR = 2006
CR_SERVER_LOST = 2013
CR_COMMANDS_OUT_OF_SYNC = 2014

#: The connection is gone: the server ended it, or the network did.
LOST = frozenset(
    {
        CR_SERVER_GONE_ERROR,
        CR_SERVER_LOST,
        CR_COMMANDS_OUT_OF_SYNC,
        ER_CONNECTION_KILLED,
        ER_CLIENT_INTERACTION_TIMEOUT,
    }
)
#: Our own statement ran into the per-session statement limit.
STATEMENT_LIMIT = frozenset({ER_STATEMENT_TIMEOUT, ER_QUERY_TIMEOUT})
#: A missing privilege or grant on what the statement reads.
DENIED = frozenset(
    {
        ER_DBACCESS_DENIED_ERROR,
        ER_KILL_DENIED_ERROR,
        ER_TABLEACCESS_DENIED_ERROR,
        ER_SPECIFIC_ACCESS_DENIED_ERROR,
    }
)


def errno_of(error: BaseException) -> int | None:
    """The MySQL error number a PyMySQL error carries, if any."""
    args: tuple[object, ...] = error.args
    return args[0] if args and isinstance(args[0], int) else None


def _server_message(error: BaseException) -> str:
    args: tuple[object, ...] = error.args
    return str(args[1]) if len(args) > 1 else str(error)


def translate(
    error: pymysql.err.Error, target: Target, *, statement_limit_seconds: float
) -> SessionwardError:
    """Turn an error raised on an open connection into a sessionward error."""

    errno = errno_of(error)
    where = target.redacted()
    if isinstance(error, driver_errors().InterfaceError) or errno in LOST:
        return ConnectionFailed(f"lost the connection to {where} (error {errno})")
    if errno in STATEMENT_LIMIT:
        return SessionwardError(
            f"catalog query exceeded the {statement_limit_seconds:g}s statement limit on {where}"
        )
    if errno == ER_QUERY_INTERRUPTED:
        return SessionwardError(f"catalog query on {where} was interrupted (KILL QUERY)")
    message = target.scrub(_server_message(error))
    if errno in DENIED:
        return PermissionDenied(f"{where}: {message} (error {errno})")
    return SessionwardError(f"server error {errno} on {where}: {message}")


@contextmanager
def mapped_errors(target: Target, *, statement_limit_seconds: float) -> Iterator[None]:
    """Raise PyMySQL errors of the block as sessionward errors."""

    try:
        yield
    except driver_errors().Error as error:
        raise translate(error, target, statement_limit_seconds=statement_limit_seconds) from error


def connect_error(
    error: pymysql.err.Error, target: Target, *, connect_timeout_seconds: float
) -> ConnectionFailed:
    """Turn an error raised while connecting into one line that names no password."""
    errno = errno_of(error)
    where = f"cannot connect to {target.redacted()}"
    if errno in (ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR):
        return AuthenticationFailed(
            f"{where}: access denied for user {target.user!r} (wrong user or password)"
        )
    if errno in (CR_CONN_HOST_ERROR, CR_UNKNOWN_HOST):
        return ConnectionFailed(f"{where}: {_network_reason(error, connect_timeout_seconds)}")
    reasons = {
        ER_BAD_DB_ERROR: f"database {target.database!r} does not exist",
        ER_DBACCESS_DENIED_ERROR: f"user {target.user!r} may not use database {target.database!r}",
        ER_CON_COUNT_ERROR: "too many connections",
        ER_HOST_IS_BLOCKED: "this host is blocked after too many failed connects",
        ER_HOST_NOT_PRIVILEGED: "this host may not connect to the server",
        CR_SERVER_LOST: "the server closed the connection during login",
        CR_SERVER_GONE_ERROR: "the server closed the connection during login",
    }
    reason = reasons.get(errno) if errno is not None else None
    if reason is None:
        reason = f"error {errno}: {target.scrub(_server_message(error))}"
    return ConnectionFailed(f"{where}: {reason}")


def _network_reason(error: BaseException, connect_timeout_seconds: float) -> str:
    # PyMySQL keeps the socket error that made the connect fail.
    cause = getattr(error, "original_exception", None)
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, TimeoutError):
        return f"no answer within {connect_timeout_seconds:g}s"
    if isinstance(cause, socket.gaierror):
        return "unknown host"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return "server unreachable"
