"""What ``reap`` refuses in one line, and the audit file read in bounded memory (#14)."""

import datetime as dt
import io
import json
import os

import pytest

from sessionward.core import IDLE_IN_TRANSACTION, ServerInfo, Session, Snapshot, dump_snapshot
from sessionward.interfaces.cli import main
from sessionward.interfaces.reaper import _audit
from sessionward.interfaces.reaper._audit import AuditLog, open_decisions, read_records
from sessionward.interfaces.reaper._events import EventLog
from sessionward.interfaces.reaper._loop import ReaperOptions

POLICY = '[[rule]]\nname = "r"\naction = "terminate"\nmatch = { idle_over = "1m" }\n'
#: Nothing listens on port 1: a reap that got as far as connecting would fail with exit 2
#: and a "cannot connect" line, which the tests below tell from the refusal they expect.
NOWHERE = "postgresql://nobody@127.0.0.1:1/x?connect_timeout=1"


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


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return str(path)


@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
def test_audit_must_be_a_regular_file(run, policy, tmp_path, kind):
    if kind == "device":
        target = "/dev/full"  # reads as endless zeros: once 22 GB of memory
    elif kind == "fifo":
        target = str(tmp_path / "fifo")
        os.mkfifo(target)  # would block the open for ever
    else:
        target = str(tmp_path)
    code, out, err = run("reap", "--policy", policy, "--dsn", NOWHERE, "--audit", target)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert f"audit file {target}: not a regular file" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--max-interval", "2d", "--max-interval must be at most 1 day"),
        ("--max-interval", "25h", "--max-interval must be at most 1 day"),
        ("--max-interval", "0s", "--max-interval must be a positive duration"),
        ("--wait", "2h", "--wait must be a duration between 0s and 1h"),
        ("--leader-lock=", None, "--leader-lock needs a name"),
        ("--leader-lock", " ", "--leader-lock needs a name"),
    ],
)
def test_absurd_intervals_are_refused_in_one_line(run, policy, option, value, says):
    given = [option] if value is None else [option, value]
    code, _, err = run("reap", "--policy", policy, "--dsn", NOWHERE, *given)
    assert code == 2
    assert err.count("\n") == 1, err
    assert says in err


@pytest.mark.parametrize("seconds", [1e300, float("inf"), float("nan"), -1.0, 86_400.5])
def test_the_python_api_refuses_them_too(seconds):
    with pytest.raises(Exception, match="--max-interval"):
        ReaperOptions(max_interval_seconds=seconds)


def test_recovery_reads_over_long_lines_for_their_id(tmp_path, monkeypatch):
    monkeypatch.setattr(_audit, "MAX_LINE_BYTES", 1024)
    path = str(tmp_path / "audit.jsonl")
    audit = AuditLog(path)
    huge = "x" * 5000  # a query text longer than a line may be
    audit.write([
        {"type": "decision", "id": "long-open", "why": huge},
        {"type": "decision", "id": "long-closed", "why": huge},
        {"type": "outcome", "id": "long-closed", "detail": huge},
        {"type": "decision", "id": "short-open"},
    ])  # fmt: skip
    audit.close()
    with open(path, "ab") as file:
        file.write(b"\xff\xfe not UTF-8 \x00\n" + b"[" * 900 + b"\n" + b"z" * 4000 + b"\n")
    assert open_decisions(read_records(path)) == ["long-open", "short-open"]
    audit = AuditLog(path)
    added = audit.recover()
    audit.close()
    assert [r["id"] for r in added] == ["long-open", "short-open"]
    assert open_decisions(read_records(path)) == []


def test_recovery_memory_does_not_grow_with_a_line(tmp_path):
    """A 200 MiB line of zeros (and no newline) is skipped reading 16 MiB at most at a time."""
    import tracemalloc

    path = str(tmp_path / "audit.jsonl")
    with open(path, "wb") as file:
        file.write(b'{"type":"decision","id":"ok"}\n')
        file.truncate(200 << 20)
    audit = AuditLog(path)
    tracemalloc.start()
    try:
        added = audit.recover()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        audit.close()
    assert [r["id"] for r in added] == ["ok"]
    assert peak < 40 << 20, peak


def test_policy_test_escapes_what_the_server_wrote(run, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    snapshot = Snapshot(
        server=ServerInfo(engine="postgresql", version="16", version_num=160000, own_pid=1),
        taken_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        sessions=(
            Session(pid=10, user="ev\u202eil", database="sh\nop", application="app\x1b[2J",
                    state=IDLE_IN_TRANSACTION, state_age_seconds=400),
        ),
    )  # fmt: skip
    snap = tmp_path / "snap.json"
    snap.write_text(dump_snapshot(snapshot))
    code, out, _ = run("policy", "test", str(policy), "--snapshot", str(snap))
    assert code == 0
    assert "\x1b" not in out
    assert "\u202e" not in out
    assert "pid 10 ev\\u202eil@sh\\nop app\\e[2J" in out.splitlines()[0]
    code, out, _ = run("policy", "test", str(policy), "--snapshot", str(snap), "--json")
    assert code == 0
    assert json.loads(out)["decisions"][0]["pid"] == 10


def test_the_event_log_escapes_text_and_keeps_json_exact():
    text = io.StringIO()
    EventLog(stream=text).emit("terminate", "application app\x1b[2J", application="a\x1bb",
                               user="two words\x07")  # fmt: skip
    line = text.getvalue()
    assert "\x1b" not in line
    assert "\x07" not in line
    assert "application app\\e[2J" in line
    assert "application=a\\eb" in line
    exact = io.StringIO()
    EventLog(json_lines=True, stream=exact).emit("terminate", "why", application="a\x1bb")
    assert json.loads(exact.getvalue())["application"] == "a\x1bb"


def test_once_without_the_leader_lock_did_nothing_and_says_so(server, tmp_path):
    import signal
    import subprocess

    from ._helpers import audit_outcomes, events, reap_process, until

    database = server.create_database()
    lock = f"sessionward-test-{database}"
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'[[rule]]\nname = "itx"\naction = "terminate"\n'
        f'match = {{ database = "{database}", idle_in_transaction_over = "1h" }}\n'
    )
    leader_log = tmp_path / "leader.log"
    leader = reap_process(server, policy, leader_log, "--leader-lock", lock)
    try:
        until(lambda: any(e["event"] == "leader" for e in events(leader_log)), timeout=20,
              what="a leader")  # fmt: skip
        audit = str(tmp_path / "audit.jsonl")
        log = tmp_path / "once.log"
        child = reap_process(server, policy, log, "--leader-lock", lock, "--once",
                             "--audit", audit)  # fmt: skip
        code = child.wait(timeout=30)
    finally:
        leader.send_signal(signal.SIGTERM)
        try:
            leader.wait(timeout=10)
        except subprocess.TimeoutExpired:
            leader.kill()
    assert code == 1
    standby = [e for e in events(log) if e["event"] == "standby"]
    assert len(standby) == 1
    assert standby[0]["message"] == (
        "another reaper holds the leader lock; this --once run did nothing"
    )
    assert audit_outcomes(_audit.read_records(audit)) == {}
