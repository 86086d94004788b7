"""The command line against every real server: ls, blockers, cancel, terminate."""

from __future__ import annotations

import csv
import io
import json
import time

import jsonschema

from sessionward.core import snapshot_json_schema
from tests.fix_servers import ABSENT_PID, Server, wait_until


def make_table(server: Server, database: str) -> None:
    admin_url = server.url_for(database)
    setup = Server(server.name, server.engine, admin_url)
    setup.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
    setup.execute("INSERT INTO accounts VALUES (1, 100), (2, 100)")
    if server.engine == "postgresql":
        setup.execute("GRANT ALL ON accounts TO PUBLIC")


def test_ls_shows_idle_in_transaction_with_filters_json_and_csv(server, victims, run_cli):
    db = server.create_database()
    make_table(server, db)
    user = server.create_user()
    holder = victims(server, database=db, user=user)
    holder.run("BEGIN")
    holder.run("UPDATE accounts SET balance = balance - 1 WHERE id = 1")
    idler = victims(server, database=db, user=user)
    idler.run("SELECT 1")
    time.sleep(1.2)

    result = run_cli("ls", "--dsn", server.url, "--user", user)
    assert result.code == 0, result.err
    # Notes on what the server would not show follow the summary line.
    lines = result.out.strip().splitlines()
    *table, summary = [line for line in lines if not line.startswith("note: ")]
    assert summary.startswith("2 sessions (1 idle in transaction, 1 idle)")
    rows = {line.split()[0]: line for line in table[1:]}
    assert set(rows) == {str(holder.pid), str(idler.pid)}
    assert "idle in transaction" in rows[str(holder.pid)]
    if server.engine == "postgresql":  # MariaDB shows no statement for a sleeping session
        assert "UPDATE accounts" in rows[str(holder.pid)]

    result = run_cli(
        "ls", "--dsn", server.url, "--user", user, "--state", "idle-in-transaction", "--json"
    )
    assert result.code == 0, result.err
    document = json.loads(result.out)
    jsonschema.validate(document, snapshot_json_schema())
    (row,) = document["sessions"]
    assert row["pid"] == holder.pid
    assert row["state"] == "idle in transaction"
    assert 1.0 <= row["xact_age_seconds"] < 3.0
    assert 1.0 <= row["state_age_seconds"] < 3.0

    result = run_cli("ls", "--dsn", server.url, "--database", db, "--idle-over", "1s", "--csv")
    assert result.code == 0, result.err
    table = list(csv.DictReader(io.StringIO(result.out)))
    assert {int(r["pid"]) for r in table} == {holder.pid, idler.pid}

    result = run_cli("ls", "--dsn", server.url, "--database", db, "--idle-over", "1h", "--json")
    assert json.loads(result.out)["sessions"] == []


def test_blockers_shows_the_chain_root_first(server, victims, run_cli):
    db = server.create_database()
    make_table(server, db)
    user = server.create_user()
    root = victims(server, database=db, user=user)
    root.run("BEGIN")
    root.run("UPDATE accounts SET balance = 0 WHERE id = 1")
    middle = victims(server, database=db, user=user)
    middle.run("BEGIN")
    middle.run("UPDATE accounts SET balance = 0 WHERE id = 2")
    middle.start("UPDATE accounts SET balance = 1 WHERE id = 1")
    tail = victims(server, database=db, user=user)
    tail.run("BEGIN")
    tail.start("UPDATE accounts SET balance = 2 WHERE id = 2")

    def chain_visible() -> bool:
        result = run_cli("blockers", "--dsn", server.url, "--json")
        forest = [t for t in json.loads(result.out) if t["pid"] == root.pid]
        return bool(forest and forest[0]["waiting_total"] == 2)

    wait_until(chain_visible)
    (tree,) = [t for t in json.loads(run_cli("blockers", "--dsn", server.url, "--json").out)
               if t["pid"] == root.pid]  # fmt: skip
    assert [w["pid"] for w in tree["waiters"]] == [middle.pid]
    assert [w["pid"] for w in tree["waiters"][0]["waiters"]] == [tail.pid]

    text = run_cli("blockers", "--dsn", server.url)
    assert text.code == 0
    assert (
        text.out.index(str(root.pid))
        < text.out.index(str(middle.pid))
        < text.out.index(str(tail.pid))
    )

    ended = run_cli(
        "terminate", "--dsn", server.url, "--user", user, "--blocked", "--roots", "--yes"
    )
    assert ended.code == 0, ended.out + ended.err
    assert str(root.pid) in ended.out
    assert "ended" in ended.out
    _, error = middle.result()
    assert error is None  # the queue drained: the middle UPDATE went through


def test_terminate_by_filter_ends_exactly_the_matches(server, victims, run_cli):
    db, other_db = server.create_database(), server.create_database()
    user, other_user = server.create_user(), server.create_user()
    targets = [victims(server, database=db, user=user) for _ in range(2)]
    same_user_other_db = victims(server, database=other_db, user=user)
    other_user_same_db = victims(server, database=db, user=other_user)

    dry = run_cli("terminate", "--dsn", server.url, "--database", db, "--user", user, "--dry-run")
    assert dry.code == 0
    assert dry.out.count("would end") == 2
    alive = run_cli("ls", "--dsn", server.url, "--database", db, "--json")
    assert {t.pid for t in targets} <= {s["pid"] for s in json.loads(alive.out)["sessions"]}

    result = run_cli("terminate", "--dsn", server.url, "--database", db, "--user", user, "--json")
    assert result.code == 0, result.err
    outcomes = {row["pid"]: row["outcome"] for row in json.loads(result.out)}
    assert outcomes == {t.pid: "ended" for t in targets}

    left = json.loads(run_cli("ls", "--dsn", server.url, "--user", user, "--user", other_user,
                              "--json").out)  # fmt: skip
    assert {s["pid"] for s in left["sessions"]} == {same_user_other_db.pid, other_user_same_db.pid}


def test_terminate_unknown_pid_is_already_gone_and_fails(server, run_cli):
    result = run_cli("terminate", "--dsn", server.url, str(ABSENT_PID))
    assert result.code == 1
    assert "already gone" in result.out
    assert "1 of 1 sessions not ended" in result.err


def test_cancel_stops_the_statement_and_keeps_the_session(server, victims, run_cli):
    db = server.create_database()
    user = server.create_user()
    sleeper = victims(server, database=db, user=user)
    sleeper.start(server.sleep_sql(30))
    wait_until(lambda: json.loads(run_cli("ls", "--dsn", server.url, "--user", user, "--state",
                                          "active", "--json").out)["sessions"] != [])  # fmt: skip
    started = time.monotonic()
    result = run_cli("cancel", "--dsn", server.url, "--user", user)
    assert result.code == 0, result.out + result.err
    assert "ended" in result.out
    sleeper.result(timeout=5)
    assert time.monotonic() - started < 5
    still = json.loads(run_cli("ls", "--dsn", server.url, "--user", user, "--json").out)
    assert [s["pid"] for s in still["sessions"]] == [sleeper.pid]


def test_filtered_json_still_says_whom_a_session_blocks(server, victims, run_cli):
    db = server.create_database()
    make_table(server, db)
    user = server.create_user()
    holder = victims(server, database=db, user=user)
    holder.run("BEGIN")
    holder.run("UPDATE accounts SET balance = 0 WHERE id = 1")
    waiter = victims(server, database=db, user=user)
    waiter.start("UPDATE accounts SET balance = 1 WHERE id = 1")

    def holder_row() -> dict:
        result = run_cli("ls", "--dsn", server.url, "--user", user, "--blocking", "--json")
        assert result.code == 0, result.err
        rows = json.loads(result.out)["sessions"]
        return rows[0] if rows else {}

    wait_until(lambda: holder_row().get("blocking") == [waiter.pid])
    assert holder_row()["pid"] == holder.pid
    holder.run("ROLLBACK")
    assert waiter.result()[1] is None


def test_confirmation_counts_what_the_action_would_end(server, victims, run_cli, monkeypatch):
    """cancel asks about the running statements only, and a "no" ends nothing."""
    from sessionward.interfaces.cli import _main

    db = server.create_database()
    user = server.create_user()
    sleepers = [victims(server, database=db, user=user) for _ in range(2)]
    for sleeper in sleepers:
        sleeper.start(server.sleep_sql(30))
    idler = victims(server, database=db, user=user)

    def active() -> set[int]:
        result = run_cli("ls", "--dsn", server.url, "--user", user, "--state", "active", "--json")
        return {s["pid"] for s in json.loads(result.out)["sessions"]}

    wait_until(lambda: active() == {s.pid for s in sleepers})
    monkeypatch.setattr(_main, "_interactive", lambda: True)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    pids = [str(s.pid) for s in sleepers] + [str(idler.pid)]
    result = run_cli("cancel", "--dsn", server.url, *pids)

    assert result.code == 1
    assert "Cancel these 2 sessions?" in result.out
    preview = {
        line.split()[0]: line for line in result.out.splitlines() if line.strip()[:1].isdigit()
    }
    assert "would end" in preview[str(sleepers[0].pid)]
    assert "already gone" in preview[str(idler.pid)]
    assert "nothing was ended" in result.err
    assert active() == {s.pid for s in sleepers}


def test_wrong_password_is_one_line_without_the_password(mysql):
    from tests.cli.conftest import run_script
    from tests.fix_servers import unique

    name = unique("swu")
    mysql.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY 'right-horse'")
    mysql.created_users.append(name)
    url = mysql.url_for("test", name, "wrong-battery")
    result = run_script("ls", "--dsn", url)
    assert result.code == 2
    assert "Traceback" not in result.err
    (line,) = result.err.strip().splitlines()
    assert line.startswith("sessionward: error: ")
    assert "wrong-battery" not in line
    assert "right-horse" not in line
    assert f"{name}:***@" in line
