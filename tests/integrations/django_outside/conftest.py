"""A Django program outside requests in a child process, on each server and driver."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionward.core import parse_target
from tests.fix_servers import Server
from tests.integrations.django_project import clean_environ

ROOT = Path(__file__).resolve().parents[3]
# An ENGINE package the child processes load; not a test module.
collect_ignore = ["refusing_engine"]
EXISTING_ID = 1


class Child:
    """``_app.py SCENARIO`` in a child process: JSON lines out, a line in to go on."""

    def __init__(self, scenario: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integrations.django_outside._app", scenario],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self._err.extend(self.proc.stderr)

    def expect(self, event: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {event!r} from the child: {''.join(self._err)}") from None
            if line is None:
                self.proc.wait(10)
                raise AssertionError(f"the child ended before {event!r}: {''.join(self._err)}")
            if not line.startswith("{"):
                continue  # not ours: a library printing
            message = json.loads(line)
            if message["event"] == "crashed":
                raise AssertionError(message["traceback"])
            if message["event"] == event:
                return message

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class App:
    """One server and database with an ``sw_notes`` table, and children that use it."""

    def __init__(self, server: Server, driver: str) -> None:
        self.server = server
        self.engine = server.engine
        self.driver = driver
        self.database = server.create_database()
        self.children: list[Child] = []
        if self.engine == "postgresql":
            self.exec_in("CREATE TABLE sw_notes (id bigint PRIMARY KEY, text text NOT NULL)")
        else:
            self.exec_in(
                "CREATE TABLE sw_notes (id bigint PRIMARY KEY, text varchar(100) NOT NULL) "
                "ENGINE=InnoDB"
            )
        self.exec_in("INSERT INTO sw_notes (id, text) VALUES (%s, 'existing')", (EXISTING_ID,))

    def exec_in(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run a statement inside the app's database as the admin (a short connection)."""
        if self.engine == "postgresql":
            import psycopg

            with psycopg.connect(self.server.url_for(self.database), autocommit=True) as conn:
                cursor = conn.execute(statement, params)
                return list(cursor.fetchall()) if cursor.description else []
        from tests.fix_servers import mysql_connect

        conn = mysql_connect(self.server.url_for(self.database))
        try:
            cursor = conn.cursor()
            cursor.execute(statement, params)
            return list(cursor.fetchall())
        finally:
            conn.close()

    def start(self, scenario: str, **env: str) -> Child:
        target = parse_target(self.server.url)
        child = Child(
            scenario,
            clean_environ(
                SW_OUT_DRIVER=self.driver,
                SW_OUT_NAME=self.database,
                SW_OUT_HOST=target.host or "",
                SW_OUT_PORT=str(target.port or ""),
                SW_OUT_USER=target.user or "",
                SW_OUT_PASSWORD=target.password or "",
                **env,
            ),
        )
        self.children.append(child)
        return child

    def sessions(self) -> set[int]:
        """The app's sessions: every session on its database (the admin is elsewhere)."""
        if self.engine == "postgresql":
            rows = self.server.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
            )
        else:
            rows = self.server.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s", (self.database,)
            )
        return {int(row[0]) for row in rows}

    def sessions_once_gone(self, timeout: float = 5) -> set[int]:
        """The app's sessions once none is left, or those still there after ``timeout``.

        A backend leaves ``pg_stat_activity`` shortly after its client closed.
        """
        deadline = time.monotonic() + timeout
        while (sessions := self.sessions()) and time.monotonic() < deadline:
            time.sleep(0.02)
        return sessions

    def sessions_once_gone_but(self, pid: int, timeout: float = 5) -> set[int]:
        """The app's sessions once only ``pid`` is left, or those there after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (sessions := self.sessions()) != {pid} and time.monotonic() < deadline:
            time.sleep(0.02)
        return sessions

    def terminate(self, pid: int) -> None:
        if self.engine == "postgresql":
            self.server.execute("SELECT pg_terminate_backend(%s)", (pid,))
        else:
            with contextlib.suppress(Exception):
                self.server.execute(f"KILL CONNECTION {int(pid)}")
        self.wait_until(f"session {pid} is gone", lambda: pid not in self.sessions())

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting until {what}")
            time.sleep(0.02)

    def rows(self, low: int, high: int) -> list[int]:
        return [
            int(row[0])
            for row in self.exec_in(
                "SELECT id FROM sw_notes WHERE id >= %s AND id < %s ORDER BY id", (low, high)
            )
        ]

    def close(self) -> None:
        for child in self.children:
            child.close()


@pytest.fixture(params=["psycopg", "psycopg2"])
def pg_app(pg: Server, request: pytest.FixtureRequest) -> Iterator[App]:
    """The app on each PostgreSQL, through psycopg 3 and through psycopg2."""
    app = App(pg, request.param)
    yield app
    app.close()


MYSQLCLIENT_MISSING = "mysqlclient not installed (needs libmariadb-dev and pkg-config to build)"


def mysql_driver(name: str) -> str:
    """``name``, once its module is importable (mysqlclient may not be built here)."""
    if name == "mysqlclient":
        pytest.importorskip("MySQLdb", reason=MYSQLCLIENT_MISSING)
    return name


@pytest.fixture(params=["pymysql", "mysqlclient"])
def mysql_app(mysql: Server, request: pytest.FixtureRequest) -> Iterator[App]:
    """The app on MariaDB, through PyMySQL installed as ``MySQLdb`` and through mysqlclient."""
    app = App(mysql, mysql_driver(request.param))
    yield app
    app.close()
