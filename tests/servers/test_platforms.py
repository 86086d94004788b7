"""Managed platforms, with STAND-INS: RDS, Aurora and Azure cannot run here.

What stands in for each platform is a real local server given what the
platform's documentation says it has: MariaDB stored procedures with the
platforms' names and signatures (``mysql.rds_kill(thread)``,
``mysql.rds_kill_query(thread)``, ``mysql.az_kill(thread)``,
``mysql.az_kill_query(thread)``) that run ``KILL`` with their definer's
rights, as the platforms' do, and logins with the platforms' own names
(``rdsadmin``, ``azure_superuser``).  The login sessionward runs as holds no
CONNECTION ADMIN or SUPER, as on the platforms; only EXECUTE on the
procedures and PROCESS.
"""

from __future__ import annotations

import contextlib
import os
import threading

import pytest

from sessionward import connect
from sessionward.core import PLATFORM, Outcome
from tests.cli.conftest import CliResult, run_script
from tests.fix_servers import Server, mysql_connect, unique, wait_until

#: The procedures of each platform: (connection, query).
PROCEDURES = {
    "rds": ("mysql.rds_kill", "mysql.rds_kill_query"),
    "azure": ("mysql.az_kill", "mysql.az_kill_query"),
}


def sessionward(*args: str) -> CliResult:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SESSIONWARD_DEBUG")}
    return run_script(*args, env={**env, "COLUMNS": "250"})


@pytest.fixture
def stand_in(mysql: Server, request: pytest.FixtureRequest):
    """The platform's kill procedures in the ``mysql`` schema, and a login that may only
    call them (plus PROCESS, to see the sessions), as a platform's master user may."""
    platform = request.param
    kill, kill_query = PROCEDURES[platform]
    for name, verb in ((kill, "CONNECTION"), (kill_query, "QUERY")):
        mysql.execute(f"DROP PROCEDURE IF EXISTS {name}")
        mysql.execute(
            f"CREATE DEFINER = CURRENT_USER PROCEDURE {name}(IN thread BIGINT) "
            f"SQL SECURITY DEFINER KILL {verb} thread"
        )
    app = unique("sw_plat")
    mysql.execute(f"CREATE USER '{app}'@'%'")
    mysql.created_users.append(app)
    mysql.execute(f"GRANT PROCESS ON *.* TO '{app}'@'%'")
    for name in (kill, kill_query):
        mysql.execute(f"GRANT EXECUTE ON PROCEDURE {name} TO '{app}'@'%'")
    try:
        yield platform, mysql.url_for("", app)
    finally:
        for name in (kill, kill_query):
            mysql.execute(f"DROP PROCEDURE IF EXISTS {name}")


@contextlib.contextmanager
def session_of(server: Server, user: str, sql: str | None = None):
    """A session of ``user`` (idle, or running ``sql`` in a thread); yields its id."""
    conn = mysql_connect(server.url_for("", user))
    pid = conn.thread_id()
    worker = None
    if sql:
        worker = threading.Thread(target=_run_quietly, args=(conn, sql), daemon=True)
        worker.start()
        wait_until(lambda: _command(server, pid) == "Query", what="the statement")
    try:
        yield pid
    finally:
        with contextlib.suppress(Exception):
            server.execute(f"KILL {pid}")
        if worker is not None:
            worker.join(5)
        with contextlib.suppress(Exception):
            conn.close()


def _run_quietly(conn, sql):
    with contextlib.suppress(Exception):
        conn.cursor().execute(sql)


def _command(server: Server, pid: int) -> str | None:
    rows = server.execute(
        "SELECT COMMAND FROM information_schema.PROCESSLIST WHERE ID = %s", (pid,)
    )
    return rows[0][0] if rows else None


@pytest.mark.parametrize("stand_in", ["rds", "azure"], indirect=True)
def test_auto_finds_the_platform_and_ends_through_its_procedure(mysql, stand_in):
    platform, url = stand_in
    victim = mysql.create_user()
    with session_of(mysql, victim) as pid:
        # Plain KILL, as a self-managed server would get it, is refused for this login.
        result = sessionward("--platform", "self-managed", "terminate", str(pid), "--yes",
                             "--dsn", url)  # fmt: skip
        assert result.code == 1, result
        assert "CONNECTION ADMIN" in result.err
        assert _command(mysql, pid) == "Sleep"
        # Found on its own, and ended through the platform's procedure.
        with connect(url) as control:
            assert control.backend.platform == platform
            (ended,) = control.terminate([pid])
        assert ended.outcome is Outcome.ENDED, ended
        assert _command(mysql, pid) is None


@pytest.mark.parametrize("stand_in", ["rds"], indirect=True)
def test_cancel_goes_through_the_query_procedure(mysql, stand_in):
    _, url = stand_in
    victim = mysql.create_user()
    with session_of(mysql, victim, "SELECT SLEEP(30)") as pid:
        result = sessionward("cancel", str(pid), "--yes", "--dsn", url)
        assert result.code == 0, result
        wait_until(lambda: _command(mysql, pid) == "Sleep", what="the statement cancelled")


@pytest.mark.parametrize("stand_in", ["rds"], indirect=True)
def test_without_execute_the_refusal_names_the_procedure(mysql, stand_in):
    _, url = stand_in
    app = url.split("://", 1)[1].split("@", 1)[0]
    mysql.execute(f"REVOKE EXECUTE ON PROCEDURE mysql.rds_kill FROM '{app}'@'%'")
    victim = mysql.create_user()
    with session_of(mysql, victim) as pid:
        result = sessionward("--platform", "rds", "terminate", str(pid), "--yes", "--dsn", url)
        assert result.code == 1, result
        assert "EXECUTE on mysql.rds_kill" in result.err
        assert _command(mysql, pid) == "Sleep"


def test_a_platform_named_wrongly_is_one_line(mysql):
    victim = mysql.create_user()
    with session_of(mysql, victim) as pid:
        result = sessionward("--platform", "rds", "terminate", str(pid), "--yes",
                             "--dsn", mysql.url)  # fmt: skip
        assert result.code == 2, result
        assert result.err.count("\n") == 1
        assert "no mysql.rds_kill procedure" in result.err
        assert _command(mysql, pid) == "Sleep"
        result = sessionward("--platform", "heroku", "ls", "--dsn", mysql.url)
        assert result.code == 2
        assert "'heroku' is not one of" in result.err


@pytest.fixture
def platform_login(server: Server):
    """A login named like a platform's own (``rdsadmin``), with a session open."""
    name = "rdsadmin"
    if server.engine == "postgresql":
        server.execute(f'DROP ROLE IF EXISTS "{name}"')
        server.execute(f'CREATE ROLE "{name}" LOGIN')
        server.created_users.append(name)
        import psycopg

        conn = psycopg.connect(server.url_for("postgres", name), autocommit=True)
        pid = conn.info.backend_pid
    else:
        server.execute(f"DROP USER IF EXISTS '{name}'@'%'")
        server.execute(f"CREATE USER '{name}'@'%'")
        server.created_users.append(name)
        conn = mysql_connect(server.url_for("", name))
        pid = conn.thread_id()
    try:
        yield pid
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def _alive(server: Server, pid: int) -> bool:
    if server.engine == "postgresql":
        return bool(server.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)))
    return _command(server, pid) is not None


def test_platform_sessions_are_never_ended(server, platform_login):
    pid = platform_login
    with connect(server.url) as control:
        session = control.snapshot().get(pid)
        assert session is not None
        assert session.backend_kind == PLATFORM
        (result,) = control.terminate([pid])
        assert result.outcome is Outcome.PROTECTED
        assert "managed platform's own login (rdsadmin)" in result.detail
    # Matching a filter is not enough either, and ls shows it only with --all.
    result = sessionward("terminate", "--user", "rdsadmin", "--all-matching", "--yes",
                         "--dsn", server.url)  # fmt: skip
    assert _alive(server, pid), result
    listed = sessionward("ls", "--json", "--dsn", server.url)
    assert pid not in [s["pid"] for s in _sessions(listed)]
    listed = sessionward("ls", "--all", "--json", "--dsn", server.url)
    (row,) = [s for s in _sessions(listed) if s["pid"] == pid]
    assert row["backend_kind"] == "platform"


def _sessions(result: CliResult) -> list[dict]:
    import json

    assert result.code == 0, result
    return json.loads(result.out)["sessions"]
