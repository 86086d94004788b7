"""``sessionward policy check`` / ``policy test`` and the audit file, with no server."""

import datetime as dt
import json

import pytest

from sessionward.core import (
    ACTIVE,
    IDLE_IN_TRANSACTION,
    ServerInfo,
    Session,
    Snapshot,
    dump_snapshot,
)
from sessionward.interfaces.cli import main
from sessionward.interfaces.reaper._audit import AuditLog, open_decisions, read_records

POLICY = """\
# Comments are fine.
[protect]
users = ["dba"]

[[rule]]
name = "idle-in-transaction"
action = "terminate"
[rule.match]
idle_in_transaction_over = "5m"

[[rule]]
name = "slow-reports"
action = "cancel_then_terminate"
grace = "30s"
match = { application = "report-*", query_over = "2m" }
"""


@pytest.fixture
def run(capsys, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def run(*args):
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main(list(args))
        out = capsys.readouterr()
        return done.value.code, out.out, out.err

    return run


def test_check_a_good_policy(run, tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    code, out, _ = run("policy", "check", str(path))
    assert code == 0
    assert "ok, 2 rules" in out
    assert "slow-reports: cancel_then_terminate" in out


@pytest.mark.parametrize(
    ("broken", "line"),
    [
        (POLICY.replace('"5m"', '"5 minutes"'), 9),
        (POLICY.replace('grace = "30s"', 'grace = "30s"\ncolour = "red"'), 15),
        (POLICY.replace('users = ["dba"]', "users = [dba]"), 3),
    ],
)
def test_a_malformed_policy_names_its_line_and_exits_2(run, tmp_path, broken, line):
    path = tmp_path / "policy.toml"
    path.write_text(broken)
    for command in (("policy", "check", str(path)), ("reap", "--policy", str(path), "--once")):
        code, _, err = run(*command)
        assert code == 2
        assert f"line {line}" in err, err
        assert err.count("\n") == 1
        assert "Traceback" not in err


def test_policy_test_against_a_saved_snapshot(run, tmp_path):
    server = ServerInfo(engine="postgresql", version="16.2", version_num=160002, own_pid=1)
    snapshot = Snapshot(
        server=server,
        taken_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        sessions=(
            Session(pid=10, user="app", database="shop", state=IDLE_IN_TRANSACTION,
                    state_age_seconds=400, xact_age_seconds=401),
            Session(pid=11, user="dba", database="shop", state=IDLE_IN_TRANSACTION,
                    state_age_seconds=900),
            Session(pid=12, user="app", database="shop", application="report-daily",
                    state=ACTIVE, query_age_seconds=200),
            Session(pid=13, user="app", database="shop", state=IDLE_IN_TRANSACTION,
                    state_age_seconds=200),
        ),
    )  # fmt: skip
    snap = tmp_path / "snap.json"
    snap.write_text(dump_snapshot(snapshot))
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    code, out, _ = run("policy", "test", str(policy), "--snapshot", str(snap))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("idle-in-transaction → terminate → pid 10 app@shop")
    assert "idle_in_transaction 400.000s > 300s" in lines[0]
    assert lines[1].startswith("slow-reports → cancel → pid 12")
    assert lines[2].startswith("idle-in-transaction → protected → pid 11")
    assert "protected user dba" in lines[2]
    assert lines[3] == "next check due in 1m40s"  # pid 13 crosses 5 min in 100 s
    code, out, _ = run("policy", "test", str(policy), "--snapshot", str(snap), "--json")
    data = json.loads(out)
    assert [(d["pid"], d["action"]) for d in data["decisions"]] == [
        (10, "terminate"),
        (12, "cancel"),
    ]


def test_policy_test_refuses_what_is_not_a_snapshot(run, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    snap = tmp_path / "snap.json"
    snap.write_text('{"schema": "other"}')
    code, _, err = run("policy", "test", str(policy), "--snapshot", str(snap))
    assert code == 2
    assert "not a sessionward snapshot" in err


def test_audit_recovery_closes_open_decisions_and_skips_a_torn_line(tmp_path):
    path = str(tmp_path / "audit.jsonl")
    audit = AuditLog(path)
    audit.write(
        [{"type": "decision", "id": "a"}, {"type": "outcome", "id": "a", "outcome": "ended"}]
    )
    audit.write([{"type": "decision", "id": "b"}])
    audit.close()
    with open(path, "a") as file:
        file.write('{"type": "decision", "id": "c"')  # killed mid-write
    assert open_decisions(read_records(path)) == ["b"]
    audit = AuditLog(path)
    added = audit.recover()
    audit.close()
    assert [r["id"] for r in added] == ["b"]
    assert open_decisions(read_records(path)) == []


def test_the_documented_example_policy_is_valid():
    from pathlib import Path

    from sessionward.core import parse_policy

    example = Path(__file__).parents[2] / "docs" / "reaper" / "policy.example.toml"
    policy = parse_policy(example.read_text())
    assert [rule.name for rule in policy.rules][:2] == ["idle-in-transaction", "slow-reports"]


def test_policy_example_prints_the_documented_example_and_it_checks(tmp_path):
    """``sessionward policy example > policy.toml`` (the README's first step) gives a valid
    policy, byte for byte the one in docs/reaper/ — the wheel ships the package's copy."""
    import subprocess
    import sys
    from pathlib import Path

    documented = Path(__file__).parents[2] / "docs" / "reaper" / "policy.example.toml"
    printed = subprocess.run(
        [sys.executable, "-m", "sessionward", "policy", "example"],
        capture_output=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert printed == documented.read_bytes()
    path = tmp_path / "policy.toml"
    path.write_bytes(printed)
    checked = subprocess.run(
        [sys.executable, "-m", "sessionward", "policy", "check", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{path}: ok, ")
    assert "idle-in-transaction: terminate" in checked.stdout


def test_leader_lock_takes_an_optional_name():
    from sessionward.interfaces.reaper import reap_command

    parse = lambda *a: reap_command.make_context("reap", ["--policy", "p", *a]).params  # noqa: E731
    assert parse()["leader_lock"] is None
    assert parse("--leader-lock", "--once")["leader_lock"] == "sessionward.reaper"
    assert parse("--leader-lock", "mine")["leader_lock"] == "mine"
