"""The pytest plugin and the test runner with mysqlclient (the real ``MySQLdb``) on MariaDB.

Django's connections, the leaked ones and the leftover ones all come from
mysqlclient here; sessionward itself reads the server through PyMySQL.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fix_servers import Server
from tests.integrations.django_project import DjangoProject, clean_environ, run
from tests.integrations.pytest import test_django_db

pytest.importorskip(
    "MySQLdb", reason="mysqlclient not installed (needs libmariadb-dev and pkg-config to build)"
)
pytestmark = pytest.mark.mysql

LEAKS = """\
import os

import MySQLdb
import pytest

from sessionward.core import parse_target

TARGET = parse_target(os.environ["SW_URL"])
LEAKED = []


def connect():
    conn = MySQLdb.connect(
        host=TARGET.host, port=TARGET.port or 3306, user=TARGET.user or "root",
        password=TARGET.password or "", database=TARGET.database, autocommit=True,
    )
    return conn, conn.thread_id()


@pytest.mark.sessionward_no_leaks
def test_leaks():
    conn, pid = connect()
    conn.cursor().execute("SELECT 42 AS leaked_marker")
    with open(os.environ["SW_PID_FILE"], "w") as file:
        file.write(str(pid))
    LEAKED.append(conn)


@pytest.mark.sessionward_no_leaks
def test_closes():
    conn, _ = connect()
    conn.cursor().execute("SELECT 1")
    conn.close()
"""


def test_no_leaks_sees_a_leaked_mysqlclient_connection(mysql: Server, tmp_path: Path) -> None:
    url = mysql.url_for(mysql.create_database())
    (tmp_path / "pytest.ini").write_text(f"[pytest]\nsessionward = true\nsessionward_dsn = {url}\n")
    (tmp_path / "test_leaks.py").write_text(textwrap.dedent(LEAKS))
    pid_file = tmp_path / "pid"
    env = clean_environ(SW_URL=url, SW_PID_FILE=str(pid_file))

    result = run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rf"], env=env, cwd=tmp_path
    )

    assert "1 failed, 1 passed" in result.out, result.output
    assert "FAILED test_leaks.py::test_leaks" in result.out
    leaked_pid = int(pid_file.read_text())
    line = next(line for line in result.out.splitlines() if f"pid {leaked_pid} " in line)
    assert re.search(r"state idle \S+  ", line), line


@pytest.fixture
def mysqlclient_project(mysql: Server) -> DjangoProject:
    """The test project on MariaDB with Django on mysqlclient and sessionward's engine."""
    return DjangoProject(
        mysql,
        mysql.create_database(),
        extra_env={
            "SW_DJANGO_DRIVER": "mysqlclient",
            "SW_DJANGO_ENGINE_PACKAGE": "sessionward.django",
        },
    )


def test_pytest_django_with_a_leftover_session(
    mysqlclient_project: DjangoProject, victims: object, tmp_path: Path
) -> None:
    test_django_db.test_create_db_with_a_leftover_session(mysqlclient_project, victims, tmp_path)


def test_the_runner_ends_a_leftover_session(mysqlclient_project: DjangoProject, victims) -> None:
    project = mysqlclient_project
    project.create_test_database()
    leftover = project.hold(victims, project.test_name, in_transaction=True)

    ours = project.manage("test", "--noinput")

    assert ours.code == 0, ours.output
    assert "Ran 2 tests" in ours.err
    assert f"sessionward: ended leftover session {leftover.pid}" in ours.out
    assert not project.alive(leftover.pid)
    assert project.existing_test_databases() == set()
