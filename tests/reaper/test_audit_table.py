"""``sessionward reap --audit-dsn``: the audit table on PostgreSQL and MariaDB, with real kills.

The reaped server (``scene``) and the audit server (``audit_db``) vary
independently, so every pairing runs, a different server included.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import sessionward
from sessionward.core import ConnectionFailed, SessionwardError, parse_policy, parse_target
from sessionward.interfaces.reaper._audit import (
    UNKNOWN,
    AuditFanOut,
    AuditLog,
    open_decisions,
    read_records,
)
from sessionward.interfaces.reaper._audit_table import (
    QUERIES,
    AuditTable,
    query_file,
    query_names,
)
from sessionward.interfaces.reaper._events import EventLog
from sessionward.interfaces.reaper._loop import Reaper, ReaperOptions
from tests.fix_proxy import Proxy
from tests.fix_servers import PG_ENV, _mysql_server, _pg_server, unique

from ._helpers import alive, events, idle_in_transaction, reap_process, until

SECRET = "s3cretpw"
COLUMNS = ("id", "type", "time", "reaper", "target", "rule", "action", "dry_run", "why",
           "outcome", "detail", "pid", "user", "database", "application", "session")  # fmt: skip


class AuditDB:
    """A uniquely named audit table on a test server, dropped afterwards."""

    def __init__(self, server):
        self.server = server
        self.table = unique("sw_audit")
        self.url = server.url

    @property
    def engine(self):
        return self.server.engine

    def rows(self):
        """Every row, oldest first, as dicts with ``session`` parsed."""
        user, database = ('"user"', "database") if self.engine == "postgresql" else (
            "`user`", "`database`"
        )  # fmt: skip
        try:
            found = self.server.execute(
                f"SELECT id, type, time, reaper, target, rule, action, dry_run, why, outcome, "
                f"detail, pid, {user}, {database}, application, session FROM {self.table} "
                "ORDER BY time, type"
            )
        except Exception as error:  # the table is not there yet
            if "exist" in str(error).lower():
                return []
            raise
        rows = [dict(zip(COLUMNS, row, strict=True)) for row in found]
        for row in rows:
            if isinstance(row["session"], str):
                row["session"] = json.loads(row["session"])
        return rows

    def decisions(self):
        return [r for r in self.rows() if r["type"] == "decision"]

    def open_decisions(self):
        rows = self.rows()
        closed = {r["id"] for r in rows if r["type"] == "outcome"}
        return [r for r in rows if r["type"] == "decision" and r["id"] not in closed]

    def outcomes(self):
        """pid → [(rule, action, outcome)] of every decision with an outcome row."""
        rows = self.rows()
        decisions = {r["id"]: r for r in rows if r["type"] == "decision"}
        found = {}
        for row in rows:
            if row["type"] == "outcome":
                decision = decisions[row["id"]]  # no outcome without its decision
                found.setdefault(decision["pid"], []).append(
                    (decision["rule"], decision["action"], row["outcome"])
                )
        return found

    def drop(self):
        self.server.execute(f"DROP TABLE IF EXISTS {self.table}")


@pytest.fixture(params=["audit-pg", "audit-mysql"])
def audit_db(request):
    if request.param == "audit-pg":
        server = _pg_server(request, "env" if os.environ.get(PG_ENV) else "embedded")
    else:
        server = _mysql_server()
    db = AuditDB(server)
    yield db
    db.drop()


def _policy(tmp_path, database, name="policy.toml"):
    path = tmp_path / name
    path.write_text(
        f'[[rule]]\nname = "all"\naction = "terminate"\nmatch = {{ database = "{database}" }}\n'
    )
    return path


def _audit_args(audit_db):
    return ["--audit-dsn", audit_db.url, "--audit-table", audit_db.table]


def test_every_query_file_is_used():
    expected = {query_file(q, kind) for q in QUERIES for kind in ("postgresql", "mysql")}
    assert query_names() == expected


def test_decision_and_outcome_rows_for_a_real_termination(scene, audit_db, victims, tmp_path):
    server, db, user = scene
    victim = victims(server, database=db, user=user)
    idle_in_transaction(victim)
    audit_file = str(tmp_path / "audit.jsonl")
    log = tmp_path / "log"
    child = reap_process(server, _policy(tmp_path, db), log, "--once", "--audit", audit_file,
                         *_audit_args(audit_db))  # fmt: skip
    assert child.wait(timeout=30) == 0, events(log)
    assert not alive(server, victim.pid)

    rows = audit_db.rows()
    assert [r["type"] for r in rows] == ["decision", "outcome"]
    decision, outcome = rows
    assert decision["id"] == outcome["id"]
    assert (decision["rule"], decision["action"], bool(decision["dry_run"])) == (
        "all", "terminate", False
    )  # fmt: skip
    assert (decision["pid"], decision["user"], decision["database"]) == (victim.pid, user, db)
    # MariaDB shows application names only with performance_schema.
    assert decision["application"] == decision["session"]["application"]
    if server.engine == "postgresql":
        assert decision["application"] == victim.application
    assert decision["session"]["pid"] == victim.pid
    assert decision["session"]["state"] == "idle in transaction"
    assert decision["target"] == parse_target(server.url).redacted()
    assert decision["why"]
    assert outcome["outcome"] == "ended"
    assert outcome["time"] >= decision["time"]
    # The file got the very same records.
    records = read_records(audit_file)
    assert [(r["type"], r["id"]) for r in records] == [(r["type"], r["id"]) for r in rows]


def test_crash_between_audit_and_action_leaves_the_table_consistent(
    scene, audit_db, victims, tmp_path
):
    server, db, user = scene
    victim = victims(server, database=db, user=user)
    idle_in_transaction(victim)
    policy = _policy(tmp_path, db)
    log = tmp_path / "log"
    paused = reap_process(server, policy, log, *_audit_args(audit_db),
                          env_extra={"SESSIONWARD_REAPER_PAUSE_AFTER_AUDIT": "30"})  # fmt: skip
    try:
        until(audit_db.open_decisions, timeout=20, what="the decision in the table")
        # Another reaper starting meanwhile must not close a live reaper's decision.
        other = reap_process(server, _policy(tmp_path, "sw_matches_nothing", "other.toml"), log,
                             "--once", *_audit_args(audit_db))  # fmt: skip
        assert other.wait(timeout=30) == 0
        assert len(audit_db.open_decisions()) == 1
    finally:
        paused.send_signal(signal.SIGKILL)
        paused.wait(timeout=10)
    # Recorded first, so the session was not touched, and the table says so.
    assert alive(server, victim.pid)
    assert [d["pid"] for d in audit_db.open_decisions()] == [victim.pid]

    child = reap_process(server, policy, log, "--once", *_audit_args(audit_db))
    assert child.wait(timeout=30) == 0
    assert audit_db.open_decisions() == []
    assert audit_db.outcomes() == {
        victim.pid: [("all", "terminate", UNKNOWN), ("all", "terminate", "ended")]
    }
    assert not alive(server, victim.pid)
    assert any(e["event"] == "audit-recovered" for e in events(log))


def _reap_cli(*args):
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "sessionward", "reap", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


def _assert_one_line_exit_2(done, *expected):
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("sessionward: error: --audit-"), lines[0]
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stderr + done.stdout
    for words in expected:
        assert words in lines[0]


@pytest.mark.parametrize(
    ("audit_dsn", "table", "expected"),
    [
        (f"postgresql://postgres:{SECRET}@127.0.0.1:1/postgres", None, "connection refused"),
        (f"mysql://root:{SECRET}@127.0.0.1:1/test", None, "connection refused"),
        (f"oracle://u:{SECRET}@db/x", None, "unsupported URL scheme"),
        (f"not a url password={SECRET}", None, "not a server URL"),
        (f"mysql://root:{SECRET}@127.0.0.1:1", None, "names no database"),
        (f"postgresql://u:{SECRET}@127.0.0.1:1/x", "audit; DROP TABLE x", "not a table name"),
        (f"postgresql://u:{SECRET}@127.0.0.1:1/x", "a.b.c", "not a table name"),
    ],
)
def test_a_wrong_audit_dsn_is_one_line_and_exit_2(tmp_path, audit_dsn, table, expected):
    # The reaped server is never reached: the audit table is opened first.
    args = ["--policy", str(_policy(tmp_path, "x")), "--dsn", "postgresql://127.0.0.1:1/x",
            "--once", "--audit-dsn", audit_dsn]  # fmt: skip
    done = _reap_cli(*args, *(["--audit-table", table] if table else []))
    _assert_one_line_exit_2(done, expected)


def test_no_privilege_to_create_the_table_is_one_line_and_exit_2(any_server, tmp_path):
    server = any_server
    try:
        user = server.create_user()
        if server.engine == "postgresql":
            # PostgreSQL 15+ lets no ordinary role create in schema public.
            server.execute(f"ALTER ROLE \"{user}\" PASSWORD '{SECRET}'")
            url, table = server.url_for("postgres", user, SECRET), unique("sw_audit")
        else:
            server.execute(f"ALTER USER '{user}'@'%' IDENTIFIED BY '{SECRET}'")
            url, table = server.url_for("", user, SECRET), f"mysql.{unique('sw_audit')}"
        done = _reap_cli("--policy", str(_policy(tmp_path, "x")), "--dsn", server.url, "--once",
                         "--audit-dsn", url, "--audit-table", table)  # fmt: skip
        _assert_one_line_exit_2(done, "cannot create audit table")
    finally:
        server.cleanup()


def test_audit_table_without_audit_dsn_is_refused(tmp_path):
    done = _reap_cli("--policy", str(_policy(tmp_path, "x")), "--audit-table", "x")
    _assert_one_line_exit_2(done, "--audit-table needs --audit-dsn")


# ------------------------------------------------------------------ the audit server goes away


def _via(url, port):
    """The same URL through the proxy on 127.0.0.1:``port``."""
    scheme, _, rest = url.partition("://")
    auth, _, path = rest.partition("/")
    userinfo = auth.rpartition("@")[0]
    return f"{scheme}://{userinfo + '@' if userinfo else ''}127.0.0.1:{port}/{path}"


def _proxy_to(url):
    target = parse_target(url)
    port = target.port or (5432 if target.kind == "postgresql" else 3306)
    return Proxy(target.host or "127.0.0.1", port)


def test_audit_server_going_away_mid_run_ends_nothing_without_a_record(
    scene, audit_db, victims, tmp_path
):
    server, db, user = scene
    proxy = _proxy_to(audit_db.url)
    log = io.StringIO()
    audit_file = str(tmp_path / "audit.jsonl")
    table = AuditTable(_via(audit_db.url, proxy.port), table=audit_db.table, log=EventLog(
        json_lines=True, stream=log).emit)  # fmt: skip
    sinks = AuditFanOut([table, AuditLog(audit_file)])
    policy = f"""
[[rule]]
name = "idle-tx"
action = "terminate"
match = {{ database = "{db}", idle_in_transaction_over = "0.2s" }}
"""
    reaper = Reaper(
        connect=lambda: sessionward.connect(server.url),
        policy=parse_policy(policy),
        options=ReaperOptions(max_interval_seconds=0.3),
        log=EventLog(json_lines=True, stream=log),
        audit=sinks,
    )
    failure = []

    def run():
        try:
            reaper.run()
        except BaseException as error:  # pragma: no cover - reported below
            failure.append(error)

    thread = threading.Thread(target=run, daemon=True)
    first = victims(server, database=db, user=user)
    second = victims(server, database=db, user=user)
    thread.start()
    try:
        idle_in_transaction(first)
        until(lambda: first.pid in audit_db.outcomes(), timeout=15, what="the first ending")

        proxy.down()
        before = len(log.getvalue())
        idle_in_transaction(second)
        until(lambda: '"audit' in log.getvalue()[before:] or '"error"' in log.getvalue()[before:],
              timeout=15, what="the failed audit write")  # fmt: skip
        time.sleep(1.5)  # several sweeps, each refused
        assert alive(server, second.pid), "ended while its decision could not be recorded"
        assert "not written, so no session was signalled" in log.getvalue()[before:]
        assert second.pid not in {r["session"]["pid"] for r in read_records(audit_file)
                                  if r["type"] == "decision"}  # fmt: skip

        proxy.up()
        until(lambda: second.pid in audit_db.outcomes(), timeout=15, what="the second ending")
    finally:
        reaper.stop()
        thread.join(20)
        sinks.close()
        proxy.close()
    assert not thread.is_alive()
    assert not failure, failure
    assert not alive(server, second.pid)

    # Every decision in the table has exactly one outcome, and every ending its decision.
    rows = audit_db.rows()
    decisions = [r["id"] for r in rows if r["type"] == "decision"]
    outcomes = [r["id"] for r in rows if r["type"] == "outcome"]
    assert sorted(decisions) == sorted(outcomes)
    assert audit_db.outcomes()[first.pid] == [("idle-tx", "terminate", "ended")]
    # Decisions cut off while the server was away are closed as not signalled; the
    # session was ended once, and not judged again while it exited.
    signalled = [o for o in audit_db.outcomes()[second.pid] if o[2] != "not signalled"]
    assert signalled == [("idle-tx", "terminate", "ended")]
    # The file agrees: nothing open, and no ending it does not know of.
    records = read_records(audit_file)
    assert open_decisions(records) == []
    assert {r["id"] for r in records if r["type"] == "decision"} <= set(decisions)
    logged = [json.loads(line) for line in log.getvalue().splitlines()]
    assert any(e["event"] == "audit-reconnected" for e in logged)
    assert all(SECRET not in line for line in log.getvalue().splitlines())


def test_outcomes_kept_while_the_table_is_down_are_written_later(audit_db):
    """An outcome row that cannot be written is sent again, once, before the next records."""
    proxy = _proxy_to(audit_db.url)
    log = io.StringIO()
    table = AuditTable(_via(audit_db.url, proxy.port), table=audit_db.table,
                       log=EventLog(json_lines=True, stream=log).emit)  # fmt: skip
    try:
        decision = {"type": "decision", "id": "d1", "time": "2026-01-01T00:00:00+00:00",
                    "rule": "r", "action": "terminate", "dry_run": False, "why": "w",
                    "server": {}, "session": {"pid": 7}}  # fmt: skip
        table.write([decision])
        proxy.down()
        table.write([{"type": "outcome", "id": "d1", "time": "2026-01-01T00:00:01+00:00",
                      "outcome": "ended", "detail": ""}])  # fmt: skip
        assert "kept to send again" in log.getvalue()
        assert [r["type"] for r in audit_db.rows()] == ["decision"]
        with pytest.raises(SessionwardError, match="no session was signalled"):
            table.write([{**decision, "id": "d2"}])
        proxy.up()
        time.sleep(1.1)  # past the reconnect delay
        table.write([])
        rows = audit_db.rows()
        assert [(r["id"], r["type"], r["outcome"]) for r in rows] == [
            ("d1", "decision", None), ("d1", "outcome", "ended")
        ]  # fmt: skip
        assert "audit-resumed" in log.getvalue()
    finally:
        table.close()
        proxy.close()


def test_a_prepared_table_needs_only_select_and_insert(server):
    """A DBA creates the table once; the reaper's login may then lack CREATE."""
    table = unique("sw_audit")
    database = "postgres" if server.engine == "postgresql" else parse_target(server.url).database
    AuditTable(server.url, table=table).close()
    try:
        user = server.create_user()
        if server.engine == "postgresql":
            server.execute(f'GRANT SELECT, INSERT ON {table} TO "{user}"')
        else:
            server.execute(f"GRANT SELECT, INSERT ON `{database}`.`{table}` TO '{user}'@'%'")
        audit = AuditTable(server.url_for(database, user), table=table)
        try:
            decision = {"type": "decision", "id": "d1", "time": "2026-01-01T00:00:00+00:00",
                        "rule": "r", "action": "cancel", "dry_run": True, "why": "w",
                        "server": {}, "session": {"pid": 7, "user": "u"}}  # fmt: skip
            audit.write([decision])
            assert audit.recover() == []
        finally:
            audit.close()
        rows = AuditDB(server)
        rows.table = table
        assert [(r["id"], r["type"], r["pid"], bool(r["dry_run"])) for r in rows.rows()] == [
            ("d1", "decision", 7, True)
        ]
        # Gone now, so the next reaper to start closes its open decision.
        later = AuditTable(server.url, table=table)
        try:
            assert [r["id"] for r in later.recover()] == ["d1"]
        finally:
            later.close()
    finally:
        server.execute(f"DROP TABLE IF EXISTS {table}")


# ------------------------------------------------------------------ a COMMIT cut off (scripted)


class _ScriptedTable:
    """The table's rows in memory, behind the connection ``AuditTable`` opens.

    Only for what a live server cannot be made to do on cue: lose the
    connection right after applying a ``COMMIT``, or right before.
    """

    def __init__(self):
        self.rows = {}
        self.cut = None  # "after" or "before" the next commit

    def connect(self, _table):
        return _ScriptedConnection(self)


class _ScriptedConnection:
    def __init__(self, table):
        self.table = table

    def fetch(self, query, params=None):
        if query == "list_open_decisions":
            rows = self.table.rows
            return [(i, r["reaper"]) for (i, kind), r in rows.items()
                    if kind == "decision" and (i, "outcome") not in rows]  # fmt: skip
        return [(True,)]

    def run_many(self, query, rows):
        cut, self.table.cut = self.table.cut, None
        if cut == "before":
            raise ConnectionFailed("lost the connection (before COMMIT)")
        for row in rows:
            if query == "insert_audit_record" or (row["id"], "decision") in self.table.rows:
                self.table.rows.setdefault((row["id"], row["type"]), row)
        if cut == "after":
            raise ConnectionFailed("lost the connection (during COMMIT)")

    def close(self):
        pass


@pytest.mark.parametrize("cut", ["after", "before"])
def test_a_decision_whose_commit_was_cut_off_is_closed_as_not_signalled(monkeypatch, cut):
    table = _ScriptedTable()
    monkeypatch.setattr(AuditTable, "_open", lambda self: table.connect(self))
    audit = AuditTable("postgresql://u@h/db", table="t")
    decision = {"type": "decision", "id": "d1", "time": "2026-01-01T00:00:00+00:00",
                "rule": "r", "action": "terminate", "dry_run": False, "why": "w",
                "server": {}, "session": {"pid": 7}}  # fmt: skip
    table.cut = cut
    with pytest.raises(SessionwardError, match="no session was signalled"):
        audit.write([decision])
    audit.write([])  # the next sweep: reconnects and settles
    kinds = {key: row["outcome"] for key, row in table.rows.items()}
    if cut == "after":
        # Applied after all: closed, and not as unknown, since nothing was signalled.
        assert kinds == {("d1", "decision"): None, ("d1", "outcome"): "not signalled"}
    else:
        # Never applied: no outcome row without its decision.
        assert kinds == {}
    assert audit.recover() == []
    audit.close()
