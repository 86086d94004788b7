"""One client session, opened through a driver directly, through SQLAlchemy or through Django.

Every session runs its statements under ``translate()`` and reports an
``Outcome``; the scenarios do not know which layer they talk to.  Timeouts
always go through sessionward's own adapter for that layer.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

from sessionward import Timeouts
from sessionward.core import parse_target
from sessionward.integrations.django._timeouts import database_options
from sessionward.mysqlclient import mysqlclient_kwargs
from sessionward.psycopg import psycopg_kwargs
from sessionward.psycopg2 import psycopg2_kwargs
from sessionward.pymysql import pymysql_kwargs
from tests.fix_servers import mysql_connect
from tests.integrations.errors._client import client_settings
from tests.integrations.errors._outcomes import Outcome, outcome_of

ROOT = Path(__file__).resolve().parents[3]
LAYERS = ("driver", "sqlalchemy", "django")
PG_DRIVERS = ("psycopg", "psycopg2")
MYSQL_DRIVERS = ("pymysql",)
#: mysqlclient builds against a C library: its rows run where it is installed.
MYSQLCLIENT = "mysqlclient"
_SQLALCHEMY_SCHEMES = {
    "psycopg": "postgresql+psycopg",
    "psycopg2": "postgresql+psycopg2",
    "pymysql": "mysql+pymysql",
    MYSQLCLIENT: "mysql+mysqldb",
}


def engine_of(driver: str) -> str:
    return "mysql" if driver in ("pymysql", MYSQLCLIENT) else "postgresql"


def mysqlclient_connect(url: str, **kwargs: Any) -> Any:
    """A mysqlclient connection in autocommit mode, as ``mysql_connect`` makes with PyMySQL."""
    import MySQLdb

    target = parse_target(url)
    return MySQLdb.connect(
        host=target.host or "localhost",
        port=target.port or 3306,
        user=target.user or "root",
        password=target.password or "",
        database=target.database or "",
        autocommit=True,
        **kwargs,
    )


class DbSession:
    """A client session; ``execute`` never raises for a database error."""

    layer: str
    driver: str
    _thread: threading.Thread | None = None

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self._results: queue.Queue[Outcome] = queue.Queue()
        self.pid = int(self.rows(self.pid_sql())[0][0])

    def pid_sql(self) -> str:
        return (
            "SELECT pg_backend_pid()" if self.engine == "postgresql" else "SELECT CONNECTION_ID()"
        )

    def execute(self, sql: str) -> Outcome:
        raise NotImplementedError

    def rows(self, sql: str) -> list[Any]:
        """The rows of a statement that must succeed."""
        outcome = self.execute(sql)
        assert outcome.failure is None, f"{sql}: {outcome.failure}"
        return outcome.rows

    def fail(self, sql: str) -> Any:
        """The failure of a statement that must fail."""
        outcome = self.execute(sql)
        assert outcome.failure is not None, f"{sql} unexpectedly returned {outcome.rows}"
        return outcome.failure

    def client(self) -> dict[str, Any]:
        """Client-side settings of the live connection (socket options, connect timeout)."""
        raise NotImplementedError

    def start(self, sql: str) -> None:
        self._thread = threading.Thread(target=lambda: self._results.put(self.execute(sql)))
        self._thread.start()

    def result(self, timeout: float = 15.0) -> Outcome:
        outcome = self._results.get(timeout=timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        return outcome

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join(15)


class DriverSession(DbSession):
    layer = "driver"

    def __init__(self, driver: str, url: str, timeouts: Timeouts, server_version: Any) -> None:
        self.driver = driver
        if driver == "psycopg":
            kwargs = psycopg_kwargs(timeouts, server_version=server_version)
        elif driver == "psycopg2":
            kwargs = psycopg2_kwargs(timeouts, server_version=server_version)
        elif driver == MYSQLCLIENT:
            kwargs = mysqlclient_kwargs(timeouts, flavor="mariadb", server_version=server_version)
        else:
            kwargs = pymysql_kwargs(timeouts, flavor="mariadb", server_version=server_version)
        self.conn: Any = None
        failure = outcome_of(lambda: self._connect(url, kwargs)).failure
        if failure is not None:
            raise ConnectError(failure)
        super().__init__(engine_of(driver))

    def _connect(self, url: str, kwargs: dict[str, Any]) -> list[Any]:
        if self.driver == "psycopg":
            import psycopg

            self.conn = psycopg.connect(url, autocommit=True, **kwargs)
        elif self.driver == "psycopg2":
            import psycopg2

            self.conn = psycopg2.connect(url, **kwargs)
            self.conn.autocommit = True
        elif self.driver == MYSQLCLIENT:
            self.conn = mysqlclient_connect(url, **kwargs)
        else:
            self.conn = mysql_connect(url, **kwargs)
        return []

    def execute(self, sql: str) -> Outcome:
        def run() -> list[Any]:
            cursor = self.conn.cursor()
            try:
                cursor.execute(sql)
                return list(cursor.fetchall()) if cursor.description else []
            finally:
                with contextlib.suppress(Exception):
                    cursor.close()

        return outcome_of(run)

    def client(self) -> dict[str, Any]:
        return client_settings(self.conn)

    def close(self) -> None:
        super().close()
        with contextlib.suppress(Exception):
            self.conn.close()


class SQLAlchemySession(DbSession):
    layer = "sqlalchemy"

    def __init__(self, driver: str, url: str, timeouts: Timeouts) -> None:
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        from sessionward.sqlalchemy import apply_timeouts, classify_errors

        self.driver = driver
        rest = url.split("://", 1)[1]
        self.engine_ = sqlalchemy.create_engine(
            f"{_SQLALCHEMY_SCHEMES[driver]}://{rest}", poolclass=NullPool
        )
        apply_timeouts(self.engine_, timeouts)
        classify_errors(self.engine_)
        self.conn: Any = None
        failure = outcome_of(self._connect).failure
        if failure is not None:
            self.engine_.dispose()
            raise ConnectError(failure)
        super().__init__(engine_of(driver))

    def _connect(self) -> list[Any]:
        self.conn = self.engine_.connect().execution_options(isolation_level="AUTOCOMMIT")
        return []

    def execute(self, sql: str) -> Outcome:
        def run() -> list[Any]:
            result = self.conn.exec_driver_sql(sql)
            return list(result.fetchall()) if result.returns_rows else []

        return outcome_of(run)

    def client(self) -> dict[str, Any]:
        return client_settings(self.conn.connection.dbapi_connection)

    def close(self) -> None:
        super().close()
        with contextlib.suppress(Exception):
            self.conn.close()
        self.engine_.dispose()


class DjangoSession(DbSession):
    layer = "django"
    _names = count()

    def __init__(self, host: DjangoHost, entry: dict[str, Any]) -> None:
        self.driver = host.driver
        self.host = host
        self.name = f"s{next(self._names)}"
        host.request(op="open", session=self.name, settings=entry)
        first = self.execute("SELECT 1")
        if first.failure is not None:
            self.close()
            raise ConnectError(first.failure)
        super().__init__(engine_of(host.driver))

    def execute(self, sql: str) -> Outcome:
        return Outcome.from_json(self.host.request(op="execute", session=self.name, sql=sql))

    def client(self) -> dict[str, Any]:
        settings: dict[str, Any] = self.host.request(op="client", session=self.name)["client"]
        return settings

    def close(self) -> None:
        super().close()
        with contextlib.suppress(Exception):
            self.host.request(op="close", session=self.name)


class ConnectError(Exception):
    """The session could not even connect; ``failure`` says how that was classified."""

    def __init__(self, failure: Any) -> None:
        super().__init__(str(failure))
        self.failure = failure


class DjangoHost:
    """A child process holding Django connections for one driver."""

    def __init__(self, driver: str) -> None:
        self.driver = driver
        self._ids = count(1)
        self._waiting: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in close()
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integrations.errors._django_host", driver],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            with self._lock:
                waiting = self._waiting.pop(message["id"], None)
            if waiting is not None:
                waiting.put(message)

    def request(self, **message: Any) -> dict[str, Any]:
        reply: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            message["id"] = next(self._ids)
            self._waiting[message["id"]] = reply
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        try:
            answer = reply.get(timeout=30)
        except queue.Empty:
            raise AssertionError(f"the Django host did not answer: {self.stderr()}") from None
        if "harness_error" in answer:
            raise AssertionError(f"Django host: {answer['harness_error']}\n{self.stderr()}")
        return answer

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-3000:]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        self._stderr.close()


def django_entry(driver: str, url: str, options: dict[str, Any]) -> dict[str, Any]:
    target = parse_target(url)
    engine = engine_of(driver)
    return {
        "ENGINE": f"django.db.backends.{engine}",
        "NAME": target.database or "",
        "USER": target.user or "",
        "PASSWORD": target.password or "",
        "HOST": target.host or "127.0.0.1",
        "PORT": str(target.port or ""),
        "OPTIONS": options,
    }


SessionFactory = Callable[..., DbSession]


def open_session(
    layer: str,
    driver: str,
    url: str,
    timeouts: Timeouts,
    *,
    server_version: Any,
    django_host: Callable[[str], DjangoHost],
) -> DbSession:
    """A session of ``layer`` with ``driver``, its limits set by sessionward's adapter."""
    if layer == "driver":
        return DriverSession(driver, url, timeouts, server_version)
    if layer == "sqlalchemy":
        return SQLAlchemySession(driver, url, timeouts)
    if engine_of(driver) == "mysql":
        options = database_options(timeouts, "mysql", server_version=server_version)
    else:
        options = database_options(timeouts, "postgresql", server_version=server_version)
    return DjangoSession(django_host(driver), django_entry(driver, url, options))
