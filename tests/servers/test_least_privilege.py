"""The command line run by a login that may not see or end other users' sessions.

PostgreSQL: a role without ``pg_signal_backend`` or ``pg_read_all_stats``.
MariaDB: a user holding USAGE and privileges on one schema only, without
PROCESS, CONNECTION ADMIN or SUPER.  Each refusal names the missing privilege
in one stderr line and exits with the refusal code; the other user's session
keeps running and their database stays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from tests.cli.conftest import CliResult, run_script
from tests.fix_servers import Server, unique, wait_until


@dataclass(frozen=True)
class Login:
    """The least-privileged login and what it is run against."""

    server: Server
    name: str
    url: str
    #: The one database the login holds privileges on (MariaDB) or may connect to.
    own_database: str
    #: Created by the superuser; the login holds no privilege on it.
    others_database: str
    #: Another ordinary user, whose sessions the login must not end.
    other_user: str


@pytest.fixture
def login(server: Server) -> Login:
    own, others = server.create_database(), server.create_database()
    name = unique("sw_lp")
    if server.engine == "postgresql":
        server.execute(f'CREATE ROLE "{name}" LOGIN')
        server.created_users.append(name)
        rows = server.execute(
            "SELECT pg_has_role(r.oid, 'pg_signal_backend', 'USAGE'), "
            "pg_has_role(r.oid, 'pg_read_all_stats', 'USAGE'), r.rolsuper "
            "FROM pg_roles AS r WHERE r.rolname = %s",
            (name,),
        )
        assert rows == [(False, False, False)]
        url = server.url_for("postgres", name)
    else:
        server.execute(f"CREATE USER '{name}'@'%'")
        server.created_users.append(name)
        server.execute(f"GRANT ALL ON `{own}`.* TO '{name}'@'%'")
        grants = " ".join(row[0] for row in server.execute(f"SHOW GRANTS FOR '{name}'@'%'"))
        assert f"GRANT USAGE ON *.* TO `{name}`@`%`" in grants
        beyond_usage = grants.replace("GRANT USAGE ON *.* TO", "")
        for privilege in ("PROCESS", "CONNECTION ADMIN", "SUPER", "ON *.* TO"):
            assert privilege not in beyond_usage
        url = server.url_for("", name)
    return Login(server, name, url, own, others, server.create_user())


def sessionward(*args: str) -> CliResult:
    """The installed command, in a child process, as a user would run it."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SESSIONWARD_DEBUG")}
    return run_script(*args, env={**env, "COLUMNS": "250"})


def running(server: Server, pid: int) -> bool:
    """Whether ``pid`` is running a statement, as the superuser sees it."""
    if server.engine == "postgresql":
        rows = server.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'active'", (pid,)
        )
    else:
        rows = server.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
            "WHERE ID = %s AND COMMAND = 'Query'",
            (pid,),
        )
    return rows[0][0] == 1


def present(server: Server, pid: int) -> bool:
    if server.engine == "postgresql":
        rows = server.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
    else:
        rows = server.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", (pid,)
        )
    return rows[0][0] == 1


def row_of(out: str, pid: int) -> str:
    (row,) = [line for line in out.splitlines() if line.split()[:1] == [str(pid)]]
    return row


@pytest.mark.parametrize("flags", [(), ("--dry-run",)])
def test_terminate_of_another_users_session_names_the_privilege_and_spares_it(
    login, victims, flags
):
    server = login.server
    victim = victims(server, database=login.others_database, user=login.other_user)
    victim.start(server.sleep_sql(4))
    wait_until(lambda: running(server, victim.pid), what="the victim's statement")

    result = sessionward("terminate", str(victim.pid), "--dsn", login.url, *flags)

    assert running(server, victim.pid)  # still in its statement
    assert result.code == 1
    assert "not permitted" in row_of(result.out, victim.pid)
    (line,) = result.err.splitlines()
    assert line.startswith("sessionward: 1 of 1 sessions not ended (1 not permitted): ")
    if server.engine == "postgresql":
        assert f"not permitted to terminate pid {victim.pid} (user {login.other_user})" in line
        assert f'membership in role "{login.other_user}"' in line
        assert "pg_signal_backend" in line
    else:
        assert f"pid {victim.pid} is not among the sessions this login may see" in line
        assert "lacks the PROCESS privilege" in line
        assert "CONNECTION ADMIN or SUPER" in line
    rows, error = victim.result()
    assert error is None  # it ran to its end
    assert rows is not None
    assert victim.run("SELECT 1") is not None


@pytest.mark.parametrize("flags", [("--force",), ("--force", "--dry-run"), ("--if-exists",)])
def test_dropdb_of_another_users_database_names_the_privilege_and_keeps_it(login, victims, flags):
    server = login.server
    database = login.others_database
    bystander = victims(server, database=database, user=login.other_user)
    bystander.run("SELECT 1")

    result = sessionward("dropdb", database, "--dsn", login.url, *flags)

    assert result.code == 2
    assert result.out == ""
    (line,) = result.err.splitlines()
    if server.engine == "postgresql":
        assert line == (
            f"sessionward: error: not permitted to drop database '{database}': role "
            f"'{login.name}' is neither its owner nor a superuser (either may stop new "
            "connections to it and drop it)"
        )
    else:
        assert line == (
            f"sessionward: error: not permitted to drop database '{database}': user "
            f"'{login.name}' lacks the DROP privilege on it (holding none, it cannot see "
            "whether it exists)"
        )
    assert server.database_exists(database)
    assert bystander.run("SELECT 1") is not None


def test_terminate_all_matching_dry_run_says_what_it_cannot_see(login, victims):
    server = login.server
    victim = victims(server, database=login.others_database, user=login.other_user)
    victim.run("SELECT 1")

    if server.engine == "postgresql":
        # Other tests' sessions share the server: look only at this test's database.
        result = sessionward(
            "terminate", "--all-matching", "--dry-run", "--database", login.others_database,
            "--dsn", login.url,
        )  # fmt: skip
        # It sees the session, and that it may not end it.
        assert result.code == 1
        assert "not permitted" in row_of(result.out, victim.pid)
        assert result.err.splitlines() == [
            "sessionward: 1 of 1 sessions not ended (1 not permitted): not permitted to "
            f"terminate pid {victim.pid} (user {login.other_user}): requires superuser, "
            f'membership in role "{login.other_user}", or pg_signal_backend (never enough for '
            "a superuser's session)",
            "sessionward: note: other roles' sessions show no query, state, times or client: "
            "grant this role pg_read_all_stats to see them",
        ]
    else:
        result = sessionward("terminate", "--all-matching", "--dry-run", "--dsn", login.url)
        assert result.code == 1
        assert result.out.strip() == "No session matches."
        assert result.err.splitlines() == [
            "sessionward: other users' sessions could not be chosen: this login lacks the "
            "PROCESS privilege, so it sees only its own sessions (ending other users' "
            "sessions also takes CONNECTION ADMIN or SUPER)"
        ]
    assert victim.run("SELECT 1") is not None


def test_ls_notes_what_the_login_cannot_see(login, victims):
    server = login.server
    victim = victims(server, database=login.others_database, user=login.other_user)
    victim.run("SELECT 1")

    result = sessionward("ls", "--dsn", login.url)

    assert result.code == 0, result.err
    assert result.err == ""
    notes = [line for line in result.out.splitlines() if line.startswith("note: ")]
    if server.engine == "postgresql":
        assert "unknown" in row_of(result.out, victim.pid)  # listed, its state hidden
        assert (
            "note: other roles' sessions show no query, state, times or client: "
            "grant this role pg_read_all_stats to see them"
        ) in notes
    else:
        assert str(victim.pid) not in result.out.split()
        assert (
            "note: only this login's own sessions are shown, without transactions or lock "
            "waits: grant PROCESS to see every session"
        ) in notes


def test_mariadb_with_process_but_not_connection_admin(mysql, victims):
    """It sees the session, so the refusal comes from KILL and names CONNECTION ADMIN."""
    name = unique("sw_lp")
    mysql.execute(f"CREATE USER '{name}'@'%'")
    mysql.created_users.append(name)
    mysql.execute(f"GRANT PROCESS ON *.* TO '{name}'@'%'")
    victim = victims(mysql, database=mysql.create_database(), user=mysql.create_user())
    victim.start(mysql.sleep_sql(4))
    wait_until(lambda: running(mysql, victim.pid), what="the victim's statement")
    url = mysql.url_for("", name)

    for flags in (("--dry-run",), ()):  # foreseen by the dry run, then refused by KILL
        result = sessionward("terminate", str(victim.pid), "--dsn", url, *flags)
        assert result.code == 1
        assert "not permitted" in row_of(result.out, victim.pid)
        (line,) = result.err.splitlines()
        assert line == (
            "sessionward: 1 of 1 sessions not ended (1 not permitted): not allowed to end "
            f"session {victim.pid}: needs the CONNECTION ADMIN or SUPER privilege"
        )
        assert running(mysql, victim.pid)
    assert victim.result()[1] is None


def dry_run_then_terminate(login: Login, pid: int) -> None:
    """The dry run foresees what the real run does: the session is ended."""
    dry = sessionward("terminate", str(pid), "--dsn", login.url, "--dry-run")
    assert dry.code == 0, dry.err
    assert "would end" in row_of(dry.out, pid)
    assert present(login.server, pid)
    real = sessionward("terminate", str(pid), "--dsn", login.url)
    assert real.code == 0, real.err
    assert row_of(real.out, pid).split()[1] == "ended"
    assert not present(login.server, pid)


def test_its_own_other_session_needs_no_privilege(login, victims):
    server = login.server
    database = "postgres" if server.engine == "postgresql" else login.own_database
    mine = victims(server, database=database, user=login.name)
    mine.run("SELECT 1")
    dry_run_then_terminate(login, mine.pid)


def test_with_the_privilege_granted_another_users_session_is_ended(login, victims):
    server = login.server
    if server.engine == "postgresql":
        server.execute(f'GRANT pg_signal_backend TO "{login.name}"')
    else:
        server.execute(f"GRANT PROCESS, CONNECTION ADMIN ON *.* TO '{login.name}'@'%'")
    victim = victims(server, database=login.others_database, user=login.other_user)
    victim.run("SELECT 1")
    dry_run_then_terminate(login, victim.pid)
