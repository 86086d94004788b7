"""Fixtures for provoking real session endings through every driver and layer."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from itertools import count
from typing import Any

import pytest

from sessionward import Timeouts
from tests.fix_servers import Server, mysql_connect, unique
from tests.integrations.errors._layers import DbSession, DjangoHost, open_session

#: Every limit the tests set is this short, so each ending takes a fraction of a second.
SHORT = 0.1
#: MariaDB counts idle and lock limits in whole seconds.
MARIADB_SHORTEST = 1.0


class Lab:
    """One server and database, with sessions through any layer and an admin connection."""

    def __init__(
        self,
        server: Server,
        database: str,
        version: Any,
        django_host: Callable[[str], DjangoHost],
    ) -> None:
        self.server = server
        self.engine = server.engine
        self.database = database
        self.url = server.url_for(database)
        self.version = version
        self.django_host = django_host
        self._sessions: list[DbSession] = []
        self._admin: Any = None
        self._closers: list[Callable[[], None]] = []
        self._keys = count(int(time.time() * 1000) % 10**9 * 100)

    # ------------------------------------------------------------------ sessions

    def session(self, layer: str, driver: str, timeouts: Timeouts | None = None) -> DbSession:
        session = open_session(
            layer,
            driver,
            self.url,
            timeouts or Timeouts(),
            server_version=self.version,
            django_host=self.django_host,
        )
        self._sessions.append(session)
        return session

    def connect(self, **kwargs: Any) -> Any:
        """A plain autocommit driver connection to the test database (closed afterwards)."""
        if self.engine == "postgresql":
            import psycopg

            conn = psycopg.connect(self.url, autocommit=True, **kwargs)
        else:
            conn = mysql_connect(self.url, **kwargs)
        self._closers.append(conn.close)
        return conn

    def key(self) -> int:
        """A number no other test uses: advisory lock keys, row ids."""
        return next(self._keys)

    # ------------------------------------------------------------------ admin

    def sql(self, statement: str, params: Any = None) -> list[Any]:
        """Run a statement as the admin; a restart or crash above may have ended the last one."""
        for attempt in (1, 2):
            if self._admin is None or _closed(self._admin):
                self._admin = self.connect()
            try:
                cursor = self._admin.cursor()
                cursor.execute(statement, params)
                try:
                    return list(cursor.fetchall()) if cursor.description else []
                finally:
                    cursor.close()
            except Exception:
                if attempt == 2 or not _closed(self._admin):
                    raise
        raise AssertionError("unreachable")

    def disconnect_admin(self) -> None:
        """Close the admin connection (a smart shutdown waits for every session)."""
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None

    def wait_until(
        self, what: str, check: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01
    ) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting until {what}")
            time.sleep(interval)

    def wait_running(self, session: DbSession, sql: str) -> None:
        """Until ``session`` runs ``sql`` on the server."""
        if self.engine == "postgresql":
            query = "SELECT query FROM pg_stat_activity WHERE pid = %s AND state = 'active'"
        else:
            query = "SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = %s"
        self.wait_until(
            f"pid {session.pid} runs {sql!r}",
            lambda: any(row[0] == sql for row in self.sql(query, (session.pid,))),
        )

    def wait_lock_wait(self, pid: int) -> None:
        """Until session ``pid`` waits for a lock."""
        if self.engine == "postgresql":
            query = "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'"
        else:
            query = (
                "SELECT 1 FROM information_schema.INNODB_TRX "
                "WHERE trx_mysql_thread_id = %s AND trx_state = 'LOCK WAIT'"
            )
        # InnoDB refreshes INNODB_TRX only when nobody read it for 0.1 s: poll slower.
        interval = 0.01 if self.engine == "postgresql" else 0.15
        self.wait_until(
            f"pid {pid} waits for a lock", lambda: bool(self.sql(query, (pid,))), interval=interval
        )

    def wait_gone(self, pid: int) -> None:
        if self.engine == "postgresql":
            query = "SELECT 1 FROM pg_stat_activity WHERE pid = %s"
        else:
            query = "SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = %s"
        self.wait_until(f"pid {pid} is gone", lambda: not self.sql(query, (pid,)))

    def terminate(self, pid: int) -> None:
        if self.engine == "postgresql":
            self.sql("SELECT pg_terminate_backend(%s)", (pid,))
        else:
            self.sql(f"KILL CONNECTION {int(pid)}")

    def cancel(self, pid: int) -> None:
        if self.engine == "postgresql":
            self.sql("SELECT pg_cancel_backend(%s)", (pid,))
        else:
            self.sql(f"KILL QUERY {int(pid)}")

    def close(self) -> None:
        for session in self._sessions:
            session.close()
        for close in reversed(self._closers):
            with contextlib.suppress(Exception):
                close()


def _closed(conn: Any) -> bool:
    closed = getattr(conn, "closed", None)  # psycopg
    if isinstance(closed, bool):
        return closed
    return not conn.open  # PyMySQL


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def django_hosts() -> Iterator[Callable[[str], DjangoHost]]:
    """One Django child process per driver, started on first use."""
    hosts: dict[str, DjangoHost] = {}

    def host(driver: str) -> DjangoHost:
        if driver not in hosts:
            hosts[driver] = DjangoHost(driver)
        return hosts[driver]

    yield host
    for started in hosts.values():
        started.close()


def create_database(server: Server) -> tuple[str, Any]:
    """A fresh database with a ``sw_rows`` table; its name and the server's version."""
    name = unique("sw_errors")
    if server.engine == "postgresql":
        import psycopg

        server.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(server.url_for(name), autocommit=True) as conn:
            conn.execute("CREATE TABLE sw_rows (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0)")
            return name, conn.info.server_version
    server.execute(f"CREATE DATABASE `{name}`")
    server.execute(
        f"CREATE TABLE `{name}`.sw_rows (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0) "
        "ENGINE=InnoDB"
    )
    return name, server.execute("SELECT VERSION()")[0][0]


def drop_database(server: Server, name: str) -> None:
    if server.engine == "postgresql":
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        server._kill_mysql_sessions(db=name)
        server.execute(f"DROP DATABASE IF EXISTS `{name}`")


def make_lab(server: Server, django_host: Callable[[str], DjangoHost]) -> Lab:
    """A lab on a database of its own (a server of our own: it goes away with the server)."""
    return Lab(server, *create_database(server), django_host)


@pytest.fixture(scope="session")
def errors_pg_database(pg_server: Server) -> Iterator[tuple[str, Any]]:
    """A database with a ``sw_rows`` table on each PostgreSQL, for the whole run."""
    name, version = create_database(pg_server)
    yield name, version
    drop_database(pg_server, name)


@pytest.fixture(scope="session")
def errors_mysql_database(mysql_server: Server) -> Iterator[tuple[str, Any]]:
    name, version = create_database(mysql_server)
    yield name, version
    drop_database(mysql_server, name)


@pytest.fixture
def pg_lab(
    pg_server: Server,
    errors_pg_database: tuple[str, Any],
    django_hosts: Callable[[str], DjangoHost],
) -> Iterator[Lab]:
    lab = Lab(pg_server, *errors_pg_database, django_hosts)
    yield lab
    lab.close()


@pytest.fixture
def mysql_lab(
    mysql_server: Server,
    errors_mysql_database: tuple[str, Any],
    django_hosts: Callable[[str], DjangoHost],
) -> Iterator[Lab]:
    lab = Lab(mysql_server, *errors_mysql_database, django_hosts)
    yield lab
    lab.close()
