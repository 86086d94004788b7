"""Primary failover: connections that asked for a writable server and no longer have one.

libpq checks ``target_session_attrs=read-write`` (or ``primary``) only while
connecting.  A server that stops taking writes while a connection sits on it
(fenced with ``default_transaction_read_only``, as a switchover does before
promoting a replica) keeps that connection alive, and every write on it fails
with ``25006``.  PostgreSQL 14+ reports both ``default_transaction_read_only``
and ``in_hot_standby`` to the client with the answer to the next statement, so
the driver knows without a round trip of its own.  The SQLAlchemy and
psycopg_pool integrations replace such connections (see their ``_failover``).

A server that died is caught as before: its sockets close, and a reconnect goes
through libpq's host list again.
"""

from __future__ import annotations

from typing import Any

#: What ``target_session_attrs`` asks for a server that takes writes.
_WRITABLE = frozenset({"read-write", "primary"})
#: The reported parameters that say the server does not take writes now.
_READ_ONLY_REPORTS = ("default_transaction_read_only", "in_hot_standby")
#: SQLSTATE read_only_sql_transaction.
READ_ONLY_SQL_TRANSACTION = "25006"


def wants_writable(driver: str, dbapi_connection: Any) -> bool:
    """Whether the connection was made with ``target_session_attrs=read-write|primary``
    (``driver``: ``"psycopg"`` or ``"psycopg2"``; any other answers False)."""
    if driver == "psycopg":
        attrs = dbapi_connection.info.get_parameters().get("target_session_attrs")
    elif driver == "psycopg2":
        attrs = dbapi_connection.get_dsn_parameters().get("target_session_attrs")
    else:
        return False
    return attrs in _WRITABLE


def reports_read_only(driver: str, dbapi_connection: Any) -> bool:
    """Whether the server last reported, on this connection, that it takes no writes."""
    try:
        if driver == "psycopg":
            status = dbapi_connection.info.parameter_status
        elif driver == "psycopg2":
            status = dbapi_connection.get_parameter_status
        else:
            return False
        return any(status(name) == "on" for name in _READ_ONLY_REPORTS)
    except Exception:  # psycopg2 raises on a closed connection: other checks catch that
        return False


def fenced(original: BaseException, driver: str, dbapi_connection: Any) -> bool:
    """Whether the driver error ``original`` is a write refused because the server stopped
    taking writes under a connection that asked for a writable one."""
    state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return (
        state == READ_ONLY_SQL_TRANSACTION
        and wants_writable(driver, dbapi_connection)
        and reports_read_only(driver, dbapi_connection)
    )
