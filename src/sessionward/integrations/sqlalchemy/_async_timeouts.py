"""``harden(async_engine, timeouts=...)``: server limits and TCP keepalives for asyncpg,
psycopg (async) and aiomysql, through the engine's public events.

- Server limits (statement, lock, idle-in-transaction, idle session, transaction): set on
  each new connection in the ``connect`` pool event, once the server's version is known,
  so a limit the server cannot honour raises ``UnsupportedSetting`` at the first connect
  instead of being lost.  PostgreSQL: one ``SELECT set_config(...)`` (committed, so a
  rollback keeps them); MariaDB/MySQL: one ``SET SESSION`` (not transactional).  This
  listener comes before ``harden()``'s own, so ``recycle="auto"`` sees an idle limit set
  here.
- Connect timeout: a ``do_connect`` argument (libpq's ``connect_timeout``, asyncpg's
  ``timeout``, aiomysql's ``connect_timeout``).
- TCP keepalives and ``tcp_user_timeout``, on by default (``Timeouts()``'s values) even
  without ``timeouts=``, so a half-open connection fails in about a minute rather than
  hanging until the kernel gives up: psycopg through libpq's ``keepalives*`` and
  ``tcp_user_timeout`` parameters (arguments the application gave itself win over the
  defaults); asyncpg and aiomysql, which offer no such options, through their socket
  after connecting (``setsockopt`` on the descriptor ``harden()`` found for liveness).
  Where that socket is unknown (``liveness`` other than ``"auto"``, a Unix socket, a
  proxy), the engine says once that keepalives were left to the operating system.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from ...core import Timeouts
from .._timeouts import (
    libpq_client_params,
    mysql_assignments,
    mysql_server,
    pg_settings,
    round_up,
    set_mysql_variables,
)
from . import _liveness

logger = logging.getLogger("sessionward.sqlalchemy")

#: Where ``harden()`` keeps a connection's socket descriptor in the pool entry's ``info``.
_FD = "sessionward.fd"
#: The socket options for keepalives, where this platform has them (macOS calls the idle
#: time ``TCP_KEEPALIVE`` and has no ``TCP_USER_TIMEOUT``).
_KEEPIDLE = getattr(socket, "TCP_KEEPIDLE", getattr(socket, "TCP_KEEPALIVE", None))
_KEEPINTVL = getattr(socket, "TCP_KEEPINTVL", None)
_KEEPCNT = getattr(socket, "TCP_KEEPCNT", None)
_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", None)


def install_limits(
    engine: Engine, driver: str, timeouts: Timeouts | None, *, allow_partial: bool = False
) -> None:
    """Before ``harden()``'s own listeners: connect arguments and server limits.

    ``timeouts=None`` gives the client-side defaults of ``Timeouts()`` (keepalives) and
    no server limit.  Values that no server accepts are refused here, before anything
    is registered.
    """
    explicit = timeouts is not None
    chosen = timeouts if timeouts is not None else Timeouts()
    postgresql = driver in ("asyncpg", "psycopg_async")
    if postgresql:
        pg_settings(chosen, server_version=None)  # a value too long for any version
    else:
        mysql_assignments(chosen, flavor="mariadb")
    client = _client_params(driver, chosen)
    if client:
        event.listen(engine, "do_connect", functools.partial(_add_client_params, client, explicit))
    if explicit and _has_server_limits(chosen):
        apply = _pg_limits if postgresql else _mysql_limits
        event.listen(engine, "connect", functools.partial(apply, driver, chosen, allow_partial))


def install_keepalives(engine: Engine, driver: str, timeouts: Timeouts | None, name: str) -> None:
    """After ``harden()``'s own listeners (which find the socket): keepalives on the
    socket of asyncpg and aiomysql connections."""
    if driver not in ("asyncpg", "aiomysql", "asyncmy"):
        return  # psycopg: libpq sets them from the connect arguments
    chosen = timeouts if timeouts is not None else Timeouts()
    options = socket_options(chosen)
    if options:
        event.listen(engine, "connect", _keepalive_listener(options, name))


def _client_params(driver: str, timeouts: Timeouts) -> dict[str, Any]:
    if driver == "psycopg_async":
        return dict(libpq_client_params(timeouts))
    seconds = timeouts.connect_seconds
    if not seconds:  # None: the driver's default; 0 (wait forever): left to the driver too
        return {}
    return {"timeout": seconds} if driver == "asyncpg" else {"connect_timeout": seconds}


def _add_client_params(
    client: dict[str, Any],
    explicit: bool,
    dialect: Any,
    record: Any,
    cargs: Any,
    cparams: dict[str, Any],
) -> None:
    if explicit:
        cparams.update(client)
    else:  # defaults only: what the application set itself stays
        for key, value in client.items():
            cparams.setdefault(key, value)


def _has_server_limits(timeouts: Timeouts) -> bool:
    return any(
        getattr(timeouts, name) is not None
        for name in (
            "statement_seconds",
            "lock_seconds",
            "idle_in_transaction_seconds",
            "idle_session_seconds",
            "transaction_seconds",
        )
    )


def _pg_limits(
    driver: str, timeouts: Timeouts, allow_partial: bool, dbapi_connection: Any, record: Any
) -> None:
    connection = _liveness.driver_connection(dbapi_connection)
    if driver == "asyncpg":
        found = connection.get_server_version()  # 15.20 is (15, 20, 0, ...), 9.6.3 (9, 6, 3, ...)
        major, minor, micro = int(found.major), int(found.minor), int(found.micro)
        version = major * 10000 + (minor if major >= 10 else minor * 100 + micro)
    else:
        version = int(connection.info.server_version)
    settings = pg_settings(timeouts, server_version=version)
    if not settings:
        return
    # Names come from our own table and values are whole milliseconds: nothing of the
    # caller's is spliced in (the async adapters differ in their parameter styles).
    calls = ", ".join(
        f"pg_catalog.set_config('{name}', '{int(value)}', false)"
        for name, value in settings.items()
    )
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"SELECT {calls}")
    finally:
        cursor.close()
    dbapi_connection.commit()  # kept through later rollbacks


def _mysql_limits(
    driver: str, timeouts: Timeouts, allow_partial: bool, dbapi_connection: Any, record: Any
) -> None:
    server = mysql_server(str(_liveness.driver_connection(dbapi_connection).get_server_info()))
    assignments = mysql_assignments(
        timeouts, flavor=server.flavor, allow_partial=allow_partial, server=server
    )
    set_mysql_variables(dbapi_connection, assignments.for_flavor(server.flavor))


def socket_options(timeouts: Timeouts) -> list[tuple[int, int, int]]:
    """``(level, option, value)`` for ``setsockopt``: keepalives and TCP user timeout.

    >>> len(socket_options(Timeouts())) >= 2
    True
    >>> socket_options(Timeouts(keepalive_idle_seconds=None, keepalive_interval_seconds=None,
    ...                         max_keepalive_probes=None, tcp_user_timeout_seconds=None))
    []
    """
    options: list[tuple[int, int, int]] = []
    tcp = socket.IPPROTO_TCP
    if timeouts.keepalives:
        options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
        for option, value in (
            (_KEEPIDLE, timeouts.keepalive_idle_seconds),
            (_KEEPINTVL, timeouts.keepalive_interval_seconds),
        ):
            if option is not None and value is not None:
                options.append((tcp, option, round_up(value)))
        if _KEEPCNT is not None and timeouts.max_keepalive_probes is not None:
            options.append((tcp, _KEEPCNT, timeouts.max_keepalive_probes))
    if _USER_TIMEOUT is not None and timeouts.tcp_user_timeout_seconds is not None:
        options.append((tcp, _USER_TIMEOUT, round_up(timeouts.tcp_user_timeout_seconds * 1000)))
    return options


def _keepalive_listener(options: list[tuple[int, int, int]], name: str) -> Callable[..., None]:
    said = False

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        nonlocal said
        fd = record.info.get(_FD)
        try:
            if fd is None:
                raise LookupError("the connection's socket is unknown")
            set_socket_options(fd, options)
        except Exception as error:  # fail open: the connection works without them
            if not said:
                said = True
                logger.warning("%s: TCP keepalives left to the operating system (%s)", name, error)

    return on_connect


def set_socket_options(fd: int, options: list[tuple[int, int, int]]) -> None:
    """``setsockopt`` on the socket behind ``fd``, through a duplicate of it (options
    belong to the socket, so the driver's descriptor sees them)."""
    with socket.socket(fileno=os.dup(fd)) as sock:  # closing the duplicate only
        for level, option, value in options:
            sock.setsockopt(level, option, value)
