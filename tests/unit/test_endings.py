import datetime as dt

import pytest

from sessionward.core import (
    ACTIVE,
    BACKGROUND,
    IDLE,
    IDLE_IN_TRANSACTION,
    REPLICATION,
    Action,
    EndResult,
    Outcome,
    Safety,
    ServerInfo,
    Session,
    Snapshot,
    plan,
    refusal,
)

OWN_PID = 7
SERVER = ServerInfo(engine="postgresql", version="16.2", version_num=160002, own_pid=OWN_PID)
SESSIONS = {
    s.pid: s
    for s in (
        Session(pid=OWN_PID, state=ACTIVE, user="sessionward"),
        Session(pid=10, state=ACTIVE, user="app", is_superuser=False),
        Session(pid=11, state=IDLE, user="app", is_superuser=False),
        Session(pid=12, state=IDLE_IN_TRANSACTION, user="app"),
        Session(pid=13, state=ACTIVE, user="postgres", is_superuser=True),
        Session(pid=14, backend_kind=BACKGROUND, backend_type="autovacuum worker", state=ACTIVE),
        Session(
            pid=15,
            backend_kind=REPLICATION,
            backend_type="walsender",
            state=ACTIVE,
            is_superuser=False,
        ),
        Session(
            pid=16,
            backend_kind=REPLICATION,
            backend_type="walsender",
            state=ACTIVE,
            is_superuser=True,
        ),
        Session(pid=17, state=ACTIVE, is_superuser=None),
    )
}
SNAPSHOT = Snapshot(
    server=SERVER,
    taken_at=dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc),
    sessions=tuple(SESSIONS.values()),
)
EVERYTHING = Safety(include_superusers=True, include_replication=True)


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("safety", [Safety(), EVERYTHING])
def test_own_session_is_protected(action, safety):
    result = refusal(OWN_PID, SNAPSHOT, action, safety)
    assert result == EndResult(
        OWN_PID, Outcome.PROTECTED, "this is sessionward's own session", SESSIONS[OWN_PID]
    )
    assert not result.ok


def test_own_session_is_protected_even_when_not_listed():
    snap = SNAPSHOT.with_sessions((SESSIONS[10],))
    result = refusal(OWN_PID, snap, Action.TERMINATE, EVERYTHING)
    assert result is not None
    assert result.outcome is Outcome.PROTECTED


@pytest.mark.parametrize("action", list(Action))
def test_unknown_pid_is_already_gone(action):
    assert refusal(999, SNAPSHOT, action, EVERYTHING) == EndResult(
        999, Outcome.ALREADY_GONE, "no such session on the server"
    )


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("safety", [Safety(), EVERYTHING])
def test_background_is_always_protected(action, safety):
    result = refusal(14, SNAPSHOT, action, safety)
    assert result is not None
    assert result.outcome is Outcome.PROTECTED
    assert result.detail == "server background process (autovacuum worker)"
    assert result.session is SESSIONS[14]


@pytest.mark.parametrize("action", list(Action))
def test_replication_is_protected_unless_included(action):
    result = refusal(15, SNAPSHOT, action, Safety())
    assert result is not None
    assert result.outcome is Outcome.PROTECTED
    assert "--include-replication" in result.detail
    assert refusal(15, SNAPSHOT, action, Safety(include_replication=True)) is None
    # Allowing superusers does not allow replication.
    assert refusal(15, SNAPSHOT, action, Safety(include_superusers=True)) is not None


def test_superuser_replication_needs_both_flags():
    assert refusal(16, SNAPSHOT, Action.TERMINATE, Safety(include_replication=True)) is not None
    assert refusal(16, SNAPSHOT, Action.TERMINATE, EVERYTHING) is None


@pytest.mark.parametrize("action", list(Action))
def test_superuser_is_protected_unless_included(action):
    result = refusal(13, SNAPSHOT, action, Safety())
    assert result is not None
    assert result.outcome is Outcome.PROTECTED
    assert "--include-superusers" in result.detail
    assert refusal(13, SNAPSHOT, action, Safety(include_superusers=True)) is None
    assert refusal(13, SNAPSHOT, action, Safety(include_replication=True)) is not None


@pytest.mark.parametrize("action", list(Action))
def test_unknown_superuser_flag_is_not_protected(action):
    assert refusal(17, SNAPSHOT, action, Safety()) is None


@pytest.mark.parametrize(("pid", "state"), [(11, IDLE), (12, IDLE_IN_TRANSACTION)])
def test_cancel_without_a_running_statement_is_already_gone(pid, state):
    result = refusal(pid, SNAPSHOT, Action.CANCEL, Safety())
    assert result == EndResult(
        pid, Outcome.ALREADY_GONE, f"no statement running ({state})", SESSIONS[pid]
    )
    assert refusal(pid, SNAPSHOT, Action.TERMINATE, Safety()) is None


def test_active_client_may_be_ended():
    assert refusal(10, SNAPSHOT, Action.CANCEL, Safety()) is None
    assert refusal(10, SNAPSHOT, Action.TERMINATE, Safety()) is None


def test_plan_splits_collapses_duplicates_and_keeps_order():
    allowed, refused = plan(
        [12, 10, 999, 13, 10, OWN_PID, 17, 14, 12, 999], SNAPSHOT, Action.TERMINATE, Safety()
    )
    assert [s.pid for s in allowed] == [12, 10, 17]
    assert allowed[0] is SESSIONS[12]
    assert [(r.pid, r.outcome) for r in refused] == [
        (999, Outcome.ALREADY_GONE),
        (13, Outcome.PROTECTED),
        (OWN_PID, Outcome.PROTECTED),
        (14, Outcome.PROTECTED),
    ]


def test_plan_cancel_refuses_idle_sessions():
    allowed, refused = plan([11, 10, 12], SNAPSHOT, Action.CANCEL, Safety())
    assert [s.pid for s in allowed] == [10]
    assert [(r.pid, r.outcome) for r in refused] == [
        (11, Outcome.ALREADY_GONE),
        (12, Outcome.ALREADY_GONE),
    ]
    assert all("no statement running" in r.detail for r in refused)


def test_plan_accepts_any_iterable_and_nothing():
    allowed, refused = plan(iter([10]), SNAPSHOT, Action.TERMINATE, Safety())
    assert [s.pid for s in allowed] == [10]
    assert refused == ()
    assert plan([], SNAPSHOT, Action.TERMINATE, Safety()) == ((), ())


@pytest.mark.parametrize(
    ("outcome", "ok"),
    [
        (Outcome.ENDED, True),
        (Outcome.WOULD_END, True),
        (Outcome.STILL_RUNNING, False),
        (Outcome.ALREADY_GONE, False),
        (Outcome.NOT_PERMITTED, False),
        (Outcome.PROTECTED, False),
    ],
)
def test_end_result_ok(outcome, ok):
    assert EndResult(1, outcome).ok is ok


def test_enum_values_are_stable_strings():
    assert [a.value for a in Action] == ["cancel", "terminate"]
    assert [o.value for o in Outcome] == [
        "ended",
        "still running",
        "already gone",
        "not permitted",
        "protected",
        "would end",
        "signalled",
    ]


def test_safety_defaults_protect_everything():
    assert Safety() == Safety(include_superusers=False, include_replication=False)
