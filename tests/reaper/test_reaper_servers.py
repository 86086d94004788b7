"""``sessionward reap`` against real servers: every action ends what it should, and only that."""

import contextlib
import io
import json
import random
import signal
import threading
import time

import pytest

import sessionward
from sessionward.interfaces.reaper._audit import UNKNOWN, open_decisions, read_records

from ._helpers import (
    ThreadedReaper,
    alive,
    audit_outcomes,
    events,
    idle_in_transaction,
    reap_process,
    until,
)


def test_terminate_idle_in_transaction_on_time(scene, victims, tmp_path):
    server, db, user = scene
    policy = f"""
[[rule]]
name = "idle-tx"
action = "terminate"
match = {{ database = "{db}", idle_in_transaction_over = "0.5s" }}
"""
    victim = victims(server, database=db, user=user)
    bystander = victims(server, database=db, user=user)
    with ThreadedReaper(server, policy, tmp_path) as reaper:
        idle_in_transaction(victim)
        started = time.monotonic()
        until(lambda: victim.pid in reaper.outcomes(), timeout=10, what="the ending")
        elapsed = time.monotonic() - started
    assert reaper.outcomes()[victim.pid] == [("idle-tx", "terminate", "ended")]
    assert not alive(server, victim.pid)
    assert alive(server, bystander.pid)
    # MariaDB transaction ages are whole seconds: up to a second late.
    assert elapsed < (3.0 if server.engine == "mysql" else 2.0)
    decision = next(r for r in reaper.records() if r["type"] == "decision")
    assert decision["session"]["state"] == "idle in transaction"
    assert decision["session"]["user"] == user


def test_cancel_stops_the_statement_and_keeps_the_session(scene, victims, tmp_path):
    server, db, user = scene
    policy = f"""
[[rule]]
name = "slow"
action = "cancel"
match = {{ database = "{db}", query_over = "0.3s", query = "sleep" }}
"""
    victim = victims(server, database=db, user=user)
    with ThreadedReaper(server, policy, tmp_path) as reaper:
        victim.start(server.sleep_sql(20))
        until(lambda: victim.pid in reaper.outcomes(), timeout=10, what="the cancel")
        victim.result(timeout=5)  # the statement came back long before 20 s
    assert reaper.outcomes()[victim.pid] == [("slow", "cancel", "ended")]
    assert alive(server, victim.pid)


def test_cancel_then_terminate_escalates_after_grace(scene, victims, tmp_path):
    server, db, user = scene
    policy = f"""
[[rule]]
name = "stubborn"
action = "cancel_then_terminate"
grace = "1s"
match = {{ database = "{db}", query_over = "0.2s", query = "sleep" }}
"""
    victim = victims(server, database=db, user=user)

    def keep_sleeping():
        # A client that retries its statement whenever it is cancelled.
        for _ in range(20):
            try:
                victim.run(server.sleep_sql(20))
            except Exception:
                if not alive(server, victim.pid):
                    return
                continue

    thread = threading.Thread(target=keep_sleeping, daemon=True)
    with ThreadedReaper(server, policy, tmp_path) as reaper:
        thread.start()
        until(lambda: len(reaper.outcomes().get(victim.pid, [])) >= 2, timeout=15,
              what="cancel then terminate")  # fmt: skip
    steps = reaper.outcomes()[victim.pid]
    assert [(action, outcome) for _, action, outcome in steps] == [
        ("cancel", "ended"),
        ("terminate", "ended"),
    ]
    times = [r["time"] for r in reaper.records() if r["type"] == "decision"]
    assert times[1] > times[0]
    thread.join(timeout=10)


def test_report_ends_nothing(scene, victims, tmp_path):
    server, db, user = scene
    policy = f"""
[[rule]]
name = "watch"
action = "report"
match = {{ database = "{db}", idle_over = "0.2s" }}
"""
    victim = victims(server, database=db, user=user)
    victim.run("SELECT 1")
    with ThreadedReaper(server, policy, tmp_path) as reaper:
        until(lambda: any(r["type"] == "report" for r in reaper.records()), what="the report")
    assert alive(server, victim.pid)
    reports = [r for r in reaper.records() if r["type"] == "report"]
    assert [r["session"]["pid"] for r in reports] == [victim.pid]  # once, not every sweep
    assert not any(r["type"] == "decision" for r in reaper.records())


def test_root_blockers_end_the_holder_not_the_queue(scene, victims, tmp_path):
    server, db, user = scene
    table = "t" if server.engine == "mysql" else "q"
    if server.engine == "postgresql":
        import psycopg

        with psycopg.connect(server.url_for(db), autocommit=True) as conn:
            conn.execute("CREATE TABLE q (id int PRIMARY KEY, v int)")
            conn.execute("INSERT INTO q VALUES (1, 0)")
            conn.execute(f'GRANT ALL ON q TO "{user}"')
    update = f"UPDATE {table} SET v = v + 1 WHERE id = 1"
    holder = victims(server, database=db, user=user)
    waiter = victims(server, database=db, user=user)
    holder.run("BEGIN")
    holder.run(update)
    waiter.start(update)
    policy = f"""
[[rule]]
name = "unblock"
action = "terminate"
victims = "root_blockers"
match = {{ database = "{db}", state = "active", query = "UPDATE" }}
"""
    with ThreadedReaper(server, policy, tmp_path) as reaper:
        until(lambda: holder.pid in reaper.outcomes(), timeout=15, what="the root blocker")
        waiter.result(timeout=10)
    assert reaper.outcomes() == {holder.pid: [("unblock", "terminate", "ended")]}
    assert alive(server, waiter.pid)
    assert not alive(server, holder.pid)


def test_protected_sessions_are_never_ended(scene, victims, tmp_path):
    """Randomized: over many sweeps, sessions of protected users and apps come and go."""
    server, db, user = scene
    keeper = server.create_user()
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    policy = f"""
[protect]
users = ["{keeper}"]
applications = ["precious-*"]

[[rule]]
name = "everything"
action = "terminate"
match = {{ database = "{db}" }}
"""
    protected, exposed = [], []
    # MariaDB without performance_schema shows no application names, and then
    # protect.applications protects every session (tested in tests/unit).
    kinds = ["user", "app", "plain"] if server.engine == "postgresql" else ["user", "plain"]
    if server.engine == "mysql":
        policy = policy.replace('applications = ["precious-*"]', "")
    with ThreadedReaper(server, policy, tmp_path, max_interval_seconds=0.2) as reaper:
        for _round in range(10):
            for _ in range(3):
                kind = rng.choice(kinds)
                if kind == "user":
                    protected.append(victims(server, database=db, user=keeper))
                elif kind == "app":
                    app = f"precious-{rng.randrange(1000)}"
                    protected.append(victims(server, database=db, user=user, application=app))
                else:
                    exposed.append(victims(server, database=db, user=user))
                if rng.random() < 0.5:
                    # An exposed session may already be gone: the reaper is fast.
                    with contextlib.suppress(Exception):
                        idle_in_transaction((protected + exposed)[-1])
            time.sleep(rng.uniform(0.1, 0.4))
        pids = {v.pid for v in exposed}
        until(lambda: pids <= set(reaper.outcomes()), timeout=15, what=f"exposed ended ({seed=})")
    assert reaper.reaper.stats.sweeps >= 10
    ended = reaper.outcomes()
    for victim in protected:
        assert victim.pid not in ended, f"seed {seed}"
        assert alive(server, victim.pid), f"seed {seed}"
    assert set(ended) == pids


def test_dry_run_ends_nothing(scene, victims, tmp_path):
    server, db, user = scene
    victim = victims(server, database=db, user=user)
    idle_in_transaction(victim)
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'[[rule]]\nname = "all"\naction = "terminate"\nmatch = {{ database = "{db}" }}\n'
    )
    audit = tmp_path / "audit.jsonl"
    log = tmp_path / "log"
    child = reap_process(server, policy, log, "--dry-run", "--once", "--audit", str(audit))
    assert child.wait(timeout=30) == 0
    assert alive(server, victim.pid)
    assert audit_outcomes(read_records(str(audit))) == {
        victim.pid: [("all", "terminate", "would end")]
    }
    decision = next(r for r in read_records(str(audit)) if r["type"] == "decision")
    assert decision["dry_run"] is True
    assert any(e["event"] == "terminate" and e["outcome"] == "would end" for e in events(log))


def test_crash_between_audit_and_action_leaves_a_consistent_audit(scene, victims, tmp_path):
    server, db, user = scene
    victim = victims(server, database=db, user=user)
    idle_in_transaction(victim)
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'[[rule]]\nname = "all"\naction = "terminate"\nmatch = {{ database = "{db}" }}\n'
    )
    audit = str(tmp_path / "audit.jsonl")
    log = tmp_path / "log"
    child = reap_process(server, policy, log, "--audit", audit,
                         env_extra={"SESSIONWARD_REAPER_PAUSE_AFTER_AUDIT": "30"})  # fmt: skip
    until(lambda: open_decisions(read_records(audit)), timeout=20, what="the decision on disk")
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    # Recorded first, so the session was not touched and the record says so.
    assert alive(server, victim.pid)
    assert len(open_decisions(read_records(audit))) == 1

    child = reap_process(server, policy, log, "--audit", audit, "--once")
    assert child.wait(timeout=30) == 0
    records = read_records(audit)
    assert open_decisions(records) == []
    outcomes = [r["outcome"] for r in records if r["type"] == "outcome"]
    assert outcomes == [UNKNOWN, "ended"]
    assert not alive(server, victim.pid)
    assert any(e["event"] == "audit-recovered" for e in events(log))


def test_leader_lock_one_acts_the_other_takes_over(scene, victims, tmp_path):
    server, db, user = scene
    lock = f"sessionward-test-{db}"
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'[[rule]]\nname = "itx"\naction = "terminate"\n'
        f'match = {{ database = "{db}", idle_in_transaction_over = "0.2s" }}\n'
    )
    audits = [str(tmp_path / "a0.jsonl"), str(tmp_path / "a1.jsonl")]
    logs = [tmp_path / "l0", tmp_path / "l1"]
    args = ("--leader-lock", lock, "--max-interval", "0.5s")
    first = reap_process(server, policy, logs[0], "--audit", audits[0], *args)
    until(lambda: any(e["event"] == "leader" for e in events(logs[0])), timeout=20,
          what="a leader")  # fmt: skip
    second = reap_process(server, policy, logs[1], "--audit", audits[1], *args)
    try:
        until(lambda: any(e["event"] == "standby" for e in events(logs[1])), timeout=20,
              what="a standby")  # fmt: skip
        early = [victims(server, database=db, user=user) for _ in range(3)]
        for victim in early:
            idle_in_transaction(victim)
        until(lambda: {v.pid for v in early} <= set(audit_outcomes(read_records(audits[0]))),
              timeout=15, what="the leader's endings")  # fmt: skip
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        until(lambda: any(e["event"] == "leader" for e in events(logs[1])), timeout=10,
              what="the takeover")  # fmt: skip
        late = [victims(server, database=db, user=user) for _ in range(3)]
        for victim in late:
            idle_in_transaction(victim)
        until(lambda: {v.pid for v in late} <= set(audit_outcomes(read_records(audits[1]))),
              timeout=15, what="the new leader's endings")  # fmt: skip
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0  # SIGTERM: stops after the sweep, cleanly
        first.kill()
        first.wait()
    decided = [
        r["session"]["pid"]
        for path in audits
        for r in read_records(path)
        if r["type"] == "decision"
    ]
    assert sorted(decided) == sorted(v.pid for v in early + late)  # each ended once
    assert any(e["event"] == "stopped" for e in events(logs[1]))


def test_metrics_are_served(scene, victims, tmp_path):
    import urllib.request

    from sessionward.core import parse_policy
    from sessionward.interfaces.reaper._events import EventLog
    from sessionward.interfaces.reaper._loop import Reaper, ReaperOptions
    from sessionward.interfaces.reaper._metrics import Metrics

    server, db, user = scene
    victim = victims(server, database=db, user=user, application="metered")
    idle_in_transaction(victim)
    metrics = Metrics("127.0.0.1:0")
    try:
        reaper = Reaper(
            connect=lambda: sessionward.connect(server.url),
            policy=parse_policy(
                f'[[rule]]\nname = "m"\naction = "terminate"\nmatch = {{ database = "{db}" }}\n'
            ),
            options=ReaperOptions(once=True),
            log=EventLog(stream=io.StringIO()),
            metrics=metrics,
        )
        reaper.run()
        port = metrics._server[0].server_port
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        metrics.close()
    assert (
        'sessionward_sessions_ended_total{action="terminate",outcome="ended",rule="m"} 1.0' in text
    )
    assert "sessionward_sweep_duration_seconds_count 1.0" in text
    assert "sessionward_last_sweep_timestamp_seconds" in text


def _live_decisions(server, policy_text):
    from sessionward.core import decide, parse_policy

    with sessionward.connect(server.url) as control:
        snapshot = control.snapshot()
    return decide(parse_policy(policy_text), snapshot, now=time.monotonic())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user", '"{user}"'),
        ("client", '["127.0.0.0/8", "::1/128", "local"]'),
        ("state", '"idle-in-transaction"'),
        ("backend_type", '"client backend"'),
        ("query", '"^insert|^select 1"'),
        ("idle_over", '"0.1s"'),
        ("idle_in_transaction_over", '"0.1s"'),
        ("xact_over", '"0.1s"'),
    ],
)
def test_each_match_field_on_a_live_snapshot(scene, victims, field, value):
    """The target is idle in a transaction, a second session of another user is idle."""
    server, db, user = scene
    other = server.create_user()
    target = victims(server, database=db, user=user)
    bystander = victims(server, database=db, user=other)
    bystander.run("SELECT 2")
    idle_in_transaction(target)
    expected = {target.pid}
    if field == "backend_type" and server.engine == "mysql":
        value = '"Sleep"'  # MariaDB names a client's command, not a backend type
    if field == "query" and server.engine == "mysql":
        # MariaDB shows no statement for a sleeping session: match a running one.
        runner = victims(server, database=db, user=user)
        runner.start("SELECT SLEEP(3)")
        value, expected = '"sleep\\\\(3"', {runner.pid}
    if field in ("client", "backend_type", "idle_over"):
        expected.add(bystander.pid)  # both match: the field alone must not exclude either
    policy = (
        f'[[rule]]\nname = "f"\naction = "report"\n'
        f'match = {{ database = "{db}", {field} = {value.format(user=user)} }}\n'
    )

    def chosen():
        found = {d.session.pid for d in _live_decisions(server, policy).decisions}
        return found if found == expected else None

    # MariaDB's INNODB_TRX may lag while others poll it: look until it shows.
    until(chosen, timeout=10, what=f"{field} to select {expected}")


def test_limits_hold_back_endings(scene, victims, tmp_path):
    server, db, user = scene
    policy = f"""
[limits]
max_per_minute = 3

[[rule]]
name = "itx"
action = "terminate"
limits = {{ max_per_sweep = 1 }}
match = {{ database = "{db}", idle_in_transaction_over = "0.1s" }}
"""
    crowd = [victims(server, database=db, user=user) for _ in range(5)]
    for victim in crowd:
        idle_in_transaction(victim)
    with ThreadedReaper(server, policy, tmp_path, max_interval_seconds=0.2) as reaper:
        until(lambda: len(reaper.outcomes()) == 3, timeout=10, what="three endings")
        time.sleep(1.0)  # more sweeps: the per-minute limit holds the rest back
    assert len(reaper.outcomes()) == 3
    assert sum(alive(server, v.pid) for v in crowd) == 2
    held = [json.loads(line) for line in reaper.log.getvalue().splitlines()]
    assert any("max_per_minute = 3 reached" in e.get("message", "") for e in held)
    assert any("max_per_sweep = 1 reached" in e.get("message", "") for e in held)


@pytest.mark.parametrize("victims_mode", ["oldest", "newest"])
def test_oldest_and_newest_victims(scene, victims, tmp_path, victims_mode):
    server, db, user = scene
    first = victims(server, database=db, user=user)
    idle_in_transaction(first)
    time.sleep(1.1 if server.engine == "mysql" else 0.3)  # MariaDB: whole-second ages
    second = victims(server, database=db, user=user)
    idle_in_transaction(second)
    policy = f"""
[[rule]]
name = "one"
action = "terminate"
victims = "{victims_mode}"
match = {{ database = "{db}", state = "idle in transaction" }}
"""
    expected = first if victims_mode == "oldest" else second
    with ThreadedReaper(server, policy, tmp_path, once=True) as reaper:
        reaper.thread.join(timeout=20)
    if server.engine == "mysql" and not reaper.outcomes():
        pytest.skip("MariaDB's INNODB_TRX lagged behind (another test polls it)")
    assert list(reaper.outcomes()) == [expected.pid]


def test_terminating_many_at_once_falls_back_to_one_by_one_on_refusal(pg, victims):
    """PostgreSQL signals the reaper's sessions in one statement; a refusal splits it."""
    database = pg.create_database()
    actor = pg.create_user()
    stranger = pg.create_user()
    own = [victims(pg, database=database, user=actor) for _ in range(2)]
    foreign = victims(pg, database=database, user=stranger)
    with sessionward.connect(pg.url) as control:
        results = control.terminate([v.pid for v in own])  # superuser: one round trip
    assert [r.outcome.value for r in results] == ["ended", "ended"]
    mine = [victims(pg, database=database, user=actor) for _ in range(2)]
    with sessionward.connect(pg.url_for(database, actor)) as control:
        results = control.terminate([mine[0].pid, foreign.pid, mine[1].pid])
    assert [r.outcome.value for r in results] == ["ended", "not permitted", "ended"], results
    assert alive(pg, foreign.pid)


def test_sigint_stops_after_the_sweep(pg, tmp_path):
    database = pg.create_database()
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'[[rule]]\nname = "r"\naction = "terminate"\nmatch = {{ database = "{database}" }}\n'
    )
    log = tmp_path / "log"
    child = reap_process(pg, policy, log, "--max-interval", "10s")
    until(lambda: any(e["event"] == "started" for e in events(log)), timeout=20, what="start")
    started = time.monotonic()
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=10) == 0
    assert time.monotonic() - started < 5  # not after the 10 s sleep
    assert events(log)[-1]["event"] == "stopped"
