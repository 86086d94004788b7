"""The reaper never ends its own connections: control, leader lock, audit table (#14).

The reaper runs as an ordinary role with its audit table on the very server it
reaps, under a policy that matches every session of that role (and every
``sessionward*`` application): the only session it may end is the canary.
"""

import signal
import time

import pytest

import sessionward
from sessionward.core import ServerInfo, Session, Snapshot, decide, parse_policy
from sessionward.interfaces.reaper._audit import OwnConnection, read_records

from ._helpers import alive, audit_outcomes, events, reap_process, until


def _own_role_scene(server):
    """A database owned by a fresh ordinary role, so it may create the audit table there."""
    database = server.create_database()
    user = server.create_user()
    if server.engine == "postgresql":
        server.execute(f'ALTER DATABASE "{database}" OWNER TO "{user}"')
    return database, user


def _policy(tmp_path, database, user):
    path = tmp_path / "policy.toml"
    path.write_text(
        f'[[rule]]\nname = "ours"\naction = "terminate"\n'
        f'match = {{ database = "{database}", application = "sessionward*" }}\n'
        f'[[rule]]\nname = "everyone"\naction = "terminate"\n'
        f'match = {{ database = "{database}", user = "{user}" }}\n'
    )
    return path


def _sessions_of(server, database, user):
    with sessionward.connect(server.url) as control:
        return {
            s.pid: s
            for s in control.snapshot().sessions
            if s.database == database and s.user == user
        }


@pytest.mark.parametrize("dry_run", [False, True], ids=["acting", "dry-run"])
def test_audit_and_lock_connections_are_protected(server, victims, tmp_path, dry_run):
    database, user = _own_role_scene(server)
    url = server.url_for(database, user)
    canary = victims(server, database=database, user=user, application="canary")
    audit = str(tmp_path / "audit.jsonl")
    log = tmp_path / "log"
    # As the role itself (the last --dsn wins), its audit table on the reaped server.
    args = ["--dsn", url, "--audit-dsn", url, "--audit", audit, "--leader-lock",
            "--max-interval", "0.2s"]  # fmt: skip
    if dry_run:
        args.append("--dry-run")
    child = reap_process(server, _policy(tmp_path, database, user), log, *args)
    try:
        until(lambda: canary.pid in audit_outcomes(read_records(audit)), timeout=20,
              what="the canary's decision")  # fmt: skip
        until(lambda: any(e["event"] == "protected" for e in events(log)), timeout=10,
              what="the reaper's own connections protected")  # fmt: skip
        ours_before = set(_sessions_of(server, database, user)) - {canary.pid}
        time.sleep(1.5)  # several sweeps, every one of them matching our own sessions
        ours_after = set(_sessions_of(server, database, user)) - {canary.pid}
    finally:
        child.send_signal(signal.SIGTERM)
        code = child.wait(timeout=10)
    seen = events(log)
    assert code == 0, seen
    # The reaper was the only other user of the role: its control (leader lock) and audit
    # connections, still the same sessions, never chosen.
    assert len(ours_before) >= 2, ours_before
    assert ours_before == ours_after
    decided = {r["session"]["pid"] for r in read_records(audit) if r["type"] == "decision"}
    assert decided == {canary.pid}
    expected = "would end" if dry_run else "ended"
    assert audit_outcomes(read_records(audit)) == {
        canary.pid: [("everyone", "terminate", expected)]
    }
    assert alive(server, canary.pid) == dry_run
    protected = {e["pid"] for e in seen if e["event"] == "protected"}
    assert protected
    assert protected <= ours_before
    assert all(
        e["message"] == "sessionward's own connection" for e in seen if e["event"] == "protected"
    )
    assert not [e for e in seen if e["event"] in ("error", "terminate-failed")]
    assert any(e["event"] == "leader" for e in seen)
    # Still working after all those sweeps: it writes to its table.
    assert "stopped" in [e["event"] for e in seen]


def test_a_reconnected_audit_connection_is_protected_too(pg, victims, tmp_path):
    """The audit connection ended from outside: its successor, a new pid, is protected too."""
    database, user = _own_role_scene(pg)
    url = pg.url_for(database, user)
    audit = str(tmp_path / "audit.jsonl")
    log = tmp_path / "log"
    args = ["--dsn", url, "--audit-dsn", url, "--audit", audit, "--max-interval", "0.2s"]
    child = reap_process(pg, _policy(tmp_path, database, user), log, *args)
    try:

        def audit_pid():
            rows = pg.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = "
                "'sessionward-audit'",
                (database,),
            )
            return rows[0][0] if rows else None

        first = until(audit_pid, timeout=20, what="the audit connection")
        until(lambda: first in {e["pid"] for e in events(log) if e["event"] == "protected"},
              timeout=10, what="the first audit connection protected")  # fmt: skip
        pg.execute("SELECT pg_terminate_backend(%s)", (first,))
        # The next record written reconnects: a victim gives it one.
        victim = victims(pg, database=database, user=user, application="victim")
        until(lambda: victim.pid in audit_outcomes(read_records(audit)), timeout=20,
              what="the victim ended")  # fmt: skip
        second = until(lambda: audit_pid() not in (None, first) and audit_pid(), timeout=10,
                       what="a new audit connection")  # fmt: skip
        until(lambda: second in {e["pid"] for e in events(log) if e["event"] == "protected"},
              timeout=10, what="the new audit connection protected")  # fmt: skip
        time.sleep(0.6)
        assert audit_pid() == second
    finally:
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0
    decided = {r["session"]["pid"] for r in read_records(audit) if r["type"] == "decision"}
    assert decided == {victim.pid}


# ---------------------------------------------------------------------- offline, exact

SERVER = ServerInfo(engine="postgresql", version="16.2", version_num=160002, own_pid=1)


def _snapshot(*sessions):
    import datetime as dt

    return Snapshot(server=SERVER, taken_at=dt.datetime.now(dt.timezone.utc), sessions=sessions)


def test_decide_protects_the_pids_it_is_told_are_ours():
    policy = parse_policy('[[rule]]\nname = "all"\naction = "terminate"\nmatch = {}\n')
    ours = Session(pid=7, user="app", application="sessionward-audit", state="idle")
    theirs = Session(pid=8, user="app", application="sessionward-audit", state="idle")
    sweep = decide(policy, _snapshot(ours, theirs), now=0.0, own_pids={7})
    assert [d.session.pid for d in sweep.to_act()] == [8]
    assert [(rule, s.pid, why) for rule, s, why in sweep.protected] == [
        ("all", 7, "sessionward's own connection")
    ]


def test_an_own_connection_is_known_by_pid_and_start_or_by_what_is_shown():
    import datetime as dt

    start = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
    pg_own = OwnConnection(pid=7, started_at=start, user="app", application="sessionward-audit")
    same = Session(pid=7, user="app", started_at="2026-01-02T04:04:05.000006+01:00")
    assert pg_own.is_session(same)  # the same instant in another time zone
    assert not pg_own.is_session(Session(pid=7, user="app", started_at="2026-01-02T03:04:06+00:00"))
    assert not pg_own.is_session(Session(pid=8, user="app", started_at=same.started_at))
    # Start hidden (another role's session, not shown): the pid and what is shown decide.
    assert pg_own.is_session(Session(pid=7))
    my_own = OwnConnection(pid=7, started_at=None, user="app", application="sessionward-audit")
    assert my_own.is_session(Session(pid=7, user="app"))  # MariaDB without performance_schema
    assert my_own.is_session(Session(pid=7, user="app", application="sessionward-audit"))
    assert not my_own.is_session(Session(pid=7, user="bob"))
    assert not my_own.is_session(Session(pid=7, user="app", application="psql"))
