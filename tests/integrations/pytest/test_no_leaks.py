"""``sessionward_no_leaks`` in real pytest runs against each server."""

from __future__ import annotations

import re
import sys
import textwrap

from tests.integrations.django_project import clean_environ, run

TESTS = """\
import os

import pytest

URL = os.environ["SW_URL"]
LEAKED = []


def connect():
    if URL.startswith("postgresql"):
        import psycopg

        conn = psycopg.connect(URL, autocommit=True, application_name="leaky-app")
        return conn, conn.info.backend_pid
    from tests_helpers import mysql_connect

    conn = mysql_connect(URL)
    return conn, conn.thread_id()


@pytest.fixture
def tidy_connection():
    conn, _ = connect()
    yield conn
    conn.close()


@pytest.mark.sessionward_no_leaks
def test_leaks():
    conn, pid = connect()
    conn.cursor().execute("SELECT 42 AS leaked_marker")
    with open(os.environ["SW_PID_FILE"], "w") as file:
        file.write(str(pid))
    LEAKED.append(conn)


def test_closes(sessionward_no_leaks):
    conn, _ = connect()
    conn.cursor().execute("SELECT 1")
    conn.close()


@pytest.mark.sessionward_no_leaks
def test_a_fixture_connection_is_not_a_leak(tidy_connection):
    tidy_connection.cursor().execute("SELECT 1")
"""

HELPERS = """\
from sessionward.core import parse_target


def mysql_connect(url):
    import pymysql

    target = parse_target(url)
    return pymysql.connect(
        host=target.host, port=target.port or 3306, user=target.user or "root",
        password=target.password or "", database=target.database, autocommit=True,
    )
"""


def test_no_leaks_fails_a_leaking_test_only(server, tmp_path):
    url = server.url_for(server.create_database())
    (tmp_path / "pytest.ini").write_text(f"[pytest]\nsessionward = true\nsessionward_dsn = {url}\n")
    (tmp_path / "test_leaks.py").write_text(textwrap.dedent(TESTS))
    (tmp_path / "tests_helpers.py").write_text(HELPERS)
    pid_file = tmp_path / "pid"
    env = clean_environ(SW_URL=url, SW_PID_FILE=str(pid_file))
    pytest_args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rf"]

    enabled = run(pytest_args, env=env, cwd=tmp_path)

    assert "1 failed, 2 passed" in enabled.out, enabled.output
    leaked_pid = int(pid_file.read_text())
    assert "FAILED test_leaks.py::test_leaks" in enabled.out
    assert (
        "sessionward_no_leaks: the test left 1 more server session open than it began with "
        "(0 before, 1 after):" in enabled.out
    )
    line = next(line for line in enabled.out.splitlines() if f"pid {leaked_pid} " in line)
    if server.engine == "postgresql":
        assert re.search(r"application leaky-app  state idle \S+  ", line), line
        assert line.endswith("last query: SELECT 42 AS leaked_marker"), line
    else:
        # MariaDB without performance_schema shows neither application nor last query.
        assert re.search(r"application -  state idle \S+  ", line), line

    # --no-sessionward overrides the ini: nothing is checked, nothing is reached
    # (the DSN given points where no server listens).
    disabled = run(
        [*pytest_args, "--no-sessionward", "--sessionward-dsn", "postgresql://127.0.0.1:1/none"],
        env=env,
        cwd=tmp_path,
    )

    assert "2 passed, 1 error" in disabled.out, disabled.output
    assert "fixture 'sessionward_no_leaks' not found" in disabled.out
    assert "sessionward:" not in disabled.output
    assert "sessionward_no_leaks:" not in disabled.output
