"""``sessionward dropdb`` against every real server: output, exit status, what is left behind."""

from __future__ import annotations

import io
import json
import time

import psycopg
import pymysql
import pytest

from sessionward.servers.mysql._errors import LOST
from tests.cli.conftest import run_script
from tests.fix_servers import Server, Victim, unique, wait_until


def make_table(server: Server, database: str) -> None:
    if server.engine == "postgresql":
        Server(server.name, server.engine, server.url_for(database)).execute(
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1); "
            "GRANT ALL ON t TO PUBLIC"
        )
    else:
        server.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY) ENGINE=InnoDB")
        server.execute(f"INSERT INTO `{database}`.t VALUES (1)")


def gone(server: Server, victim: Victim) -> bool:
    """Whether the victim's next statement finds its connection ended."""
    try:
        victim.run("SELECT 1")
    except psycopg.OperationalError:
        return server.engine == "postgresql"
    except pymysql.err.InterfaceError:
        return server.engine != "postgresql"
    except pymysql.err.OperationalError as error:
        return error.args[0] in LOST
    return False


def active(server: Server, pids: list[int]) -> bool:
    if server.engine == "postgresql":
        rows = server.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid = ANY(%s)",
            (pids,),
        )
    else:
        marks = ", ".join(str(int(pid)) for pid in pids)
        rows = server.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
            f"WHERE COMMAND = 'Query' AND ID IN ({marks})"
        )
    return rows[0][0] == len(pids)


def table_rows(out: str) -> dict[str, str]:
    """The lines of a printed table, by the pid that starts them."""
    return {line.split()[0]: line for line in out.splitlines() if line.strip()[:1].isdigit()}


def test_force_drops_it_with_20_sessions_and_reports_each(server, victims, run_cli):
    database, other = server.create_database(), server.create_database()
    make_table(server, database)
    user, superuser = server.create_user(), server.create_user(superuser=True)
    sleepers = [victims(server, database=database, user=user) for _ in range(5)]
    in_transaction = [victims(server, database=database, user=user) for _ in range(7)]
    idle = [victims(server, database=database, user=user) for _ in range(7)]
    boss = victims(server, database=database, user=superuser)
    survivor = victims(server, database=other, user=user)
    for victim in sleepers:
        victim.start(server.sleep_sql(60))
    for victim in [*in_transaction, boss]:
        victim.run("BEGIN")
        victim.run("SELECT * FROM t")
    for victim in idle:
        victim.run("SELECT 1")
    doomed = [*sleepers, *in_transaction, *idle, boss]
    wait_until(lambda: active(server, [v.pid for v in sleepers]))

    result = run_cli("dropdb", database, "--dsn", server.url, "--force")

    assert result.code == 0, result.err
    assert result.err == ""
    lines = result.out.strip().splitlines()
    assert lines[-1] == f"dropped database {database}"
    assert lines[0].split()[:2] == ["PID", "OUTCOME"]
    assert "CLIENT" in lines[0]
    rows = table_rows(result.out)
    assert set(rows) == {str(v.pid) for v in doomed}
    assert all(row.split()[1] == "ended" for row in rows.values())
    assert superuser in rows[str(boss.pid)]
    assert not server.database_exists(database)
    for victim in sleepers:
        assert victim.result()[1] is not None
    assert all(gone(server, v) for v in [*in_transaction, *idle, boss])
    assert survivor.run("SELECT 1") is not None


def test_json_lists_each_session_with_client_and_idle_age(server, victims, run_cli):
    database = server.create_database()
    victim = victims(server, database=database)
    victim.run("SELECT 1")
    time.sleep(0.3)

    result = run_cli("dropdb", database, "--dsn", server.url, "--force", "--json")

    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["database"] == database
    assert (document["dropped"], document["existed"], document["dry_run"]) == (True, True, False)
    (ended,) = document["ended"]
    assert ended["pid"] == victim.pid
    assert ended["outcome"] == "ended"
    assert ended["database"] == database
    assert ended["client_addr"] is not None
    assert ended["idle_age_seconds"] >= 0.2
    assert document["in_use"] == []
    assert not server.database_exists(database)


def test_dry_run_drops_nothing_and_ends_nothing(server, victims, run_cli):
    database = server.create_database()
    sleeper = victims(server, database=database)
    sleeper.start(server.sleep_sql(2))
    idle = victims(server, database=database)
    idle.run("SELECT 1")
    wait_until(lambda: active(server, [sleeper.pid]))

    result = run_cli("dropdb", database, "--dsn", server.url, "--force", "--dry-run")

    assert result.code == 0, result.err
    assert result.out.strip().splitlines()[-1] == f"would drop database {database}"
    rows = table_rows(result.out)
    assert set(rows) == {str(sleeper.pid), str(idle.pid)}
    assert all("would end" in row for row in rows.values())
    assert server.database_exists(database)
    assert idle.run("SELECT 1") is not None
    assert sleeper.result()[1] is None  # its statement ran to the end
    if server.engine == "postgresql":
        psycopg.connect(server.url_for(database)).close()


def test_without_force_it_refuses_lists_them_and_connections_still_work(server, victims, run_cli):
    database = server.create_database()
    victim = victims(server, database=database)
    victim.run("SELECT 1")

    result = run_cli("dropdb", database, "--dsn", server.url, "--yes")

    assert result.code == 1
    assert set(table_rows(result.out)) == {str(victim.pid)}
    (line,) = result.err.strip().splitlines()
    assert line == (
        f"sessionward: database {database} not dropped: 1 session uses it (add --force to end them)"
    )
    assert server.database_exists(database)
    assert victim.run("SELECT 1") is not None
    # New sessions are let in again (PostgreSQL blocked them while it looked).
    victims(server, database=database).run("SELECT 1")


def test_without_force_and_without_sessions_it_drops(server, run_cli):
    database = server.create_database()
    result = run_cli("dropdb", database, "--dsn", server.url)
    assert result.code == 0, result.err
    assert result.out.strip() == f"dropped database {database}"
    assert not server.database_exists(database)


def test_missing_database(server, run_cli):
    missing = unique()
    result = run_cli("dropdb", missing, "--dsn", server.url, "--force", "--if-exists")
    assert result.code == 0, result.err
    assert result.out.strip() == f"database {missing} does not exist; nothing to drop"

    result = run_cli("dropdb", missing, "--dsn", server.url, "--force")
    assert result.code == 2
    assert result.out == ""
    assert result.err.strip().splitlines() == [
        f"sessionward: error: database '{missing}' does not exist"
    ]


def test_the_database_we_are_connected_to_is_refused_in_one_line(server, victims, run_cli):
    database = server.create_database()
    victim = victims(server, database=database)
    result = run_cli("dropdb", database, "--dsn", server.url_for(database), "--force")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"sessionward: error: cannot drop database '{database}': ")
    assert "connect" in line
    assert server.database_exists(database)
    assert victim.run("SELECT 1") is not None


def test_a_role_without_the_privilege_gets_one_line_naming_it(server, run_cli):
    database = server.create_database()
    if server.engine == "postgresql":
        role = server.create_user()
        url = server.url_for("postgres", role)
        expected = f"role '{role}' is neither its owner nor a superuser"
    else:
        role = unique("swu")
        server.execute(f"CREATE USER '{role}'@'%'")
        server.created_users.append(role)
        server.execute(f"GRANT SELECT ON `{database}`.* TO '{role}'@'%'")
        url = server.url_for("", role)
        expected = f"user '{role}' lacks the DROP privilege on it"

    result = run_cli("dropdb", database, "--dsn", url, "--force")

    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"sessionward: error: not permitted to drop database '{database}': ")
    assert expected in line
    assert server.database_exists(database)


def test_a_no_at_the_prompt_ends_and_drops_nothing(server, victims, run_cli, monkeypatch):
    from sessionward.interfaces.cli import _main

    database = server.create_database()
    victims_on_it = [victims(server, database=database) for _ in range(2)]
    for victim in victims_on_it:
        victim.run("SELECT 1")
    monkeypatch.setattr(_main, "_interactive", lambda: True)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))

    result = run_cli("dropdb", database, "--dsn", server.url, "--force")

    assert result.code == 1
    assert f"Drop database {database} and end these 2 sessions?" in result.out
    assert all("would end" in row for row in table_rows(result.out).values())
    assert "nothing was dropped" in result.err
    assert server.database_exists(database)
    assert all(v.run("SELECT 1") is not None for v in victims_on_it)


def test_a_yes_at_the_prompt_drops_it(server, victims, run_cli, monkeypatch):
    from sessionward.interfaces.cli import _main

    database = server.create_database()
    victim = victims(server, database=database)
    monkeypatch.setattr(_main, "_interactive", lambda: True)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))

    result = run_cli("dropdb", database, "--dsn", server.url, "--force")

    assert result.code == 0, result.err
    assert f"Drop database {database} and end this session?" in result.out
    assert result.out.strip().splitlines()[-1] == f"dropped database {database}"
    assert not server.database_exists(database)
    assert gone(server, victim)


def test_the_installed_command_drops_without_asking_when_stdin_is_not_a_terminal(pg, victims):
    database = pg.create_database()
    victim = victims(pg, database=database)
    result = run_script("dropdb", database, "--dsn", pg.url, "--force")
    assert result.code == 0, result.err
    assert result.out.strip().splitlines()[-1] == f"dropped database {database}"
    assert not pg.database_exists(database)
    assert gone(pg, victim)


def test_a_session_it_may_not_end_leaves_the_database_and_exits_1(pg, victims, run_cli):
    database = pg.create_database()
    owner, superuser = pg.create_user(), pg.create_user(superuser=True)
    pg.execute(f'ALTER DATABASE "{database}" OWNER TO "{owner}"')
    boss = victims(pg, database=database, user=superuser)
    mine = victims(pg, database=database, user=owner)

    result = run_cli("dropdb", database, "--dsn", pg.url_for("postgres", owner), "--force")

    assert result.code == 1
    rows = table_rows(result.out)
    assert "not permitted" in rows[str(boss.pid)]
    assert "ended" in rows[str(mine.pid)]
    assert "dropped database" not in result.out
    first, second = result.err.strip().splitlines()
    assert first == (
        f"sessionward: database {database} not dropped: 1 of 2 sessions on it not ended "
        "(1 not permitted)"
    )
    assert "superuser" in second
    assert pg.database_exists(database)
    assert boss.run("SELECT 1") is not None
    psycopg.connect(pg.url_for(database)).close()  # connections are allowed again


def test_json_refusal_names_the_sessions_in_use(server, victims, run_cli):
    database = server.create_database()
    victim = victims(server, database=database)
    victim.run("SELECT 1")

    result = run_cli("dropdb", database, "--dsn", server.url, "--json")

    assert result.code == 1
    document = json.loads(result.out)
    assert (document["dropped"], document["existed"], document["ended"]) == (False, True, [])
    assert [s["pid"] for s in document["in_use"]] == [victim.pid]
    assert document["in_use"][0]["database"] == database
    assert "in use by 1 session" in document["error"]
    assert len(result.err.strip().splitlines()) == 1
    assert server.database_exists(database)


@pytest.mark.parametrize("flags", [("--if-exists",), ("--if-exists", "--dry-run"), ("--force",)])
def test_a_name_the_server_would_cut_short_is_refused_in_one_line(server, victims, run_cli, flags):
    """PostgreSQL keeps 63 bytes of a name: the 70-character one must not drop its prefix."""
    limit = 63 if server.engine == "postgresql" else 64
    kept = unique() + "_"
    kept += "k" * (limit - len(kept))
    quoted = f'"{kept}"' if server.engine == "postgresql" else f"`{kept}`"
    server.execute(f"CREATE DATABASE {quoted}")
    server.created_databases.append(kept)
    victim = victims(server, database=kept)
    victim.run("SELECT 1")
    too_long = kept + "x" * (70 - limit)

    result = run_cli("dropdb", too_long, "--dsn", server.url, *flags)

    assert result.code == 2
    assert result.out == ""
    (line,) = result.err.strip().splitlines()
    unit = "bytes" if server.engine == "postgresql" else "characters"
    assert line.startswith(f"sessionward: error: database name '{too_long}' is 70 {unit} long")
    assert f"limit of {limit}" in line
    assert "nothing was done" in line
    assert server.database_exists(kept)
    assert victim.run("SELECT 1") is not None


def test_postgresql_counts_bytes_not_characters(pg, run_cli):
    base = unique() + "_"
    kept = base + "é" * ((62 - len(base)) // 2)  # 62 bytes; PostgreSQL cuts the next é off
    pg.execute(f'CREATE DATABASE "{kept}"')
    pg.created_databases.append(kept)

    result = run_cli("dropdb", kept + "é", "--dsn", pg.url, "--if-exists")

    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert "is 64 bytes long, over PostgreSQL's limit of 63" in line
    assert pg.database_exists(kept)


def test_a_dry_run_foresees_a_session_the_owner_may_not_end(pg, victims, run_cli):
    database = pg.create_database()
    owner, superuser = pg.create_user(), pg.create_user(superuser=True)
    pg.execute(f'ALTER DATABASE "{database}" OWNER TO "{owner}"')
    boss = victims(pg, database=database, user=superuser)
    mine = victims(pg, database=database, user=owner)

    url = pg.url_for("postgres", owner)
    result = run_cli("dropdb", database, "--dsn", url, "--force", "--dry-run")

    assert result.code == 1
    rows = table_rows(result.out)
    assert "not permitted" in rows[str(boss.pid)]
    assert "would end" in rows[str(mine.pid)]
    assert "would drop" not in result.out
    first, second = result.err.strip().splitlines()
    assert first == (
        f"sessionward: database {database} not dropped: 1 of 2 sessions on it not ended "
        "(1 not permitted)"
    )
    assert "superuser" in second
    assert pg.database_exists(database)
    assert boss.run("SELECT 1") is not None
    assert mine.run("SELECT 1") is not None
