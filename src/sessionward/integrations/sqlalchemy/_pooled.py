"""``apply_transaction_timeouts(engine, timeouts)``: server limits behind a transaction pooler.

Behind PgBouncer in transaction mode a client owns a server connection only
for one transaction, so neither way ``apply_timeouts`` and ``psycopg_kwargs``
pass limits works there:

- libpq's startup ``options`` (``-c statement_timeout=…``) make PgBouncer
  refuse the login ("unsupported startup parameter: options");
- a session-level ``SET`` stays on the server connection after the
  transaction and reaches whichever client gets it next.

Here the limits are set with ``set_config(…, is_local => true)`` as the
first statement of every transaction (the ``begin`` engine event), so they end
with it.  ``-c`` settings already in the connect arguments' ``options`` (from
``psycopg_kwargs``) are moved there too when the pooler refuses them at login.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from ...core import ConfigurationError, PoolerRefused, Timeouts, classify
from .._timeouts import libpq_client_params, load, pg_settings

_DRIVERS = ("psycopg", "psycopg2")
#: Where a connection keeps the ``-c`` settings moved out of its refused ``options``.
_MOVED = "sessionward_moved_settings"
_OPTION = re.compile(r"(?:-c\s*|--)([A-Za-z_][\w.]*)=(\S+)")


def split_options(options: str) -> tuple[dict[str, str], str]:
    """The ``-c name=value`` settings of a libpq ``options`` string, and what is left.

    >>> split_options("-c statement_timeout=30000 --lock_timeout=250 -c search_path=app")
    ({'statement_timeout': '30000', 'lock_timeout': '250', 'search_path': 'app'}, '')
    >>> split_options("-c work_mem=64MB -X")
    ({'work_mem': '64MB'}, '-X')
    """
    settings = dict(_OPTION.findall(options))
    rest = " ".join(_OPTION.sub(" ", options).split())
    return settings, rest


def apply_transaction_timeouts(engine: Engine, timeouts: Timeouts) -> None:
    """Give every transaction of ``engine`` the server limits in ``timeouts``.

    For an engine behind a transaction-mode pooler (PgBouncer), with the
    ``psycopg`` or ``psycopg2`` dialect; use ``apply_timeouts`` elsewhere.
    Client-side fields (connect timeout, keepalives) are added to each
    connect.  Statements run in ``AUTOCOMMIT`` mode get no server limit: they
    have no transaction to carry one.
    """
    driver = engine.dialect.driver
    if driver not in _DRIVERS or engine.dialect.is_async:
        raise ConfigurationError(
            "sessionward.sqlalchemy.apply_transaction_timeouts supports the synchronous "
            f"psycopg and psycopg2 drivers, not {engine.url.drivername!r}"
        )
    limits = {
        name: str(value) for name, value in pg_settings(timeouts, server_version=None).items()
    }
    client_params = dict(libpq_client_params(timeouts))
    statement = load("set_transaction_timeouts")

    def connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        cparams.update(client_params)
        options = cparams.get("options")
        if not isinstance(options, str) or not split_options(options)[0]:
            return None  # SQLAlchemy connects as usual
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as error:
            if classify(error) is not PoolerRefused or "options" not in str(error):
                raise
        # The pooler refuses startup options: connect without them, and carry
        # their settings in each transaction instead.
        moved, rest = split_options(options)
        if rest:
            cparams["options"] = rest
        else:
            del cparams["options"]
        connection = dialect.connect(*cargs, **cparams)
        record.info[_MOVED] = moved
        return connection

    def check_version(dbapi_connection: Any, record: Any) -> None:
        version = getattr(getattr(dbapi_connection, "info", None), "server_version", None)
        if isinstance(version, int) and version > 0:
            pg_settings(timeouts, server_version=version)  # UnsupportedSetting, at once

    def begin(conn: Connection) -> None:
        proxied = conn.connection
        settings = {**proxied.info.get(_MOVED, {}), **limits}
        if not settings or conn.get_isolation_level() == "AUTOCOMMIT":
            return
        cursor = proxied.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(statement, {"names": list(settings), "values": list(settings.values())})
        finally:
            cursor.close()

    event.listen(engine, "do_connect", connect)
    event.listen(engine, "connect", check_version)
    event.listen(engine, "begin", begin)
