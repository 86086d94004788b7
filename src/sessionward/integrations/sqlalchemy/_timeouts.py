"""``apply_timeouts(engine, timeouts)``: two documented engine events, nothing patched.

- ``do_connect`` adds the client-side arguments (connect timeout, keepalives,
  ``tcp_user_timeout``) before each connection is made;
- ``connect`` (a pool event) sets the server limits on each new connection,
  after reading the server's version from it, so a limit the server cannot
  honour raises ``UnsupportedSetting`` on the first connect instead of being
  lost.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from ...core import ConfigurationError, Timeouts
from .._timeouts import libpq_client_params, mysql_connect_timeout

_DRIVERS = ("psycopg", "psycopg2", "pymysql", "mysqldb")


def apply_timeouts(engine: Engine, timeouts: Timeouts, *, allow_partial: bool = False) -> None:
    """Give every new connection of ``engine`` the limits in ``timeouts``.

    Works for the ``psycopg``, ``psycopg2``, ``pymysql`` and ``mysqldb``
    (mysqlclient) dialects (PostgreSQL, MariaDB, MySQL).  ``allow_partial``
    accepts MySQL's SELECT-only statement limit.  Connections already in the
    pool keep their settings: call this right after ``create_engine``.
    """
    driver = engine.dialect.driver
    if driver not in _DRIVERS or engine.dialect.is_async:
        kind = "async " if engine.dialect.is_async else ""
        raise ConfigurationError(
            f"sessionward.sqlalchemy.apply_timeouts supports the synchronous psycopg, psycopg2, "
            f"pymysql and mysqldb (mysqlclient) drivers, not the {kind}{driver!r} driver of "
            f"{engine.url.drivername!r}"
        )
    client_params: dict[str, Any]
    if driver == "pymysql":
        client_params = mysql_connect_timeout(timeouts)
    elif driver == "mysqldb":
        # mysqlclient takes whole seconds; 0 ("wait forever") leaves the driver default.
        seconds = timeouts.connect_seconds
        client_params = {"connect_timeout": math.ceil(seconds)} if seconds else {}
    else:
        client_params = dict(libpq_client_params(timeouts))
    apply_server_limits = _server_limits(driver, timeouts, allow_partial)

    def add_client_params(
        dialect: Any, connection_record: Any, cargs: Any, cparams: dict[str, Any]
    ) -> None:
        cparams.update(client_params)

    def set_server_limits(dbapi_connection: Any, connection_record: Any) -> None:
        apply_server_limits(dbapi_connection)

    event.listen(engine, "do_connect", add_client_params)
    event.listen(engine, "connect", set_server_limits)


def _server_limits(driver: str, timeouts: Timeouts, allow_partial: bool) -> Callable[[Any], None]:
    if driver == "psycopg":
        from ..psycopg._timeouts import apply_timeouts as apply_psycopg

        return lambda connection: apply_psycopg(connection, timeouts)
    if driver == "psycopg2":
        from ..psycopg2._timeouts import apply_timeouts as apply_psycopg2

        return lambda connection: apply_psycopg2(connection, timeouts)
    # Only public DB-API calls on the connection: PyMySQL's and mysqlclient's alike.
    from ..pymysql._timeouts import apply_timeouts as apply_pymysql

    return lambda connection: apply_pymysql(connection, timeouts, allow_partial=allow_partial)
