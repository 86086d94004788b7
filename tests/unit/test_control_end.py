"""``SessionControl``'s signal-and-verify loop, driven by a scripted fake backend.

The fake only stands in for our own state machine; what real servers do is
asserted live in tests/servers.
"""

import datetime as dt
import time

import pytest

from sessionward import DEFAULT_WAIT_SECONDS, SessionControl
from sessionward.core import (
    ACTIVE,
    BACKGROUND,
    IDLE,
    Action,
    Outcome,
    PermissionDenied,
    Safety,
    ServerInfo,
    Session,
    Snapshot,
)

OWN_PID = 1
SERVER = ServerInfo(engine="postgresql", version="16.2", version_num=160002, own_pid=OWN_PID)


class FakeBackend:
    """A server whose sessions react to signals as ``script`` says.

    ``obey``: the signal lands ``lag`` probes later (terminate: the pid goes;
    cancel: the statement token becomes None).  ``ignore``: nothing happens.
    ``deny``: raise PermissionDenied.  ``vanished``: the pid is gone, the
    signal returns False.  ``next``: cancel lands as a new statement's token.
    ``exit``: cancel lands as the session going away.
    """

    def __init__(self, *sessions, script=None, lag=0):
        self.server = SERVER
        self.sessions = sessions
        self.tokens = {s.pid: (f"q{s.pid}" if s.state == ACTIVE else None) for s in sessions}
        self.script = script or {}
        self.lag = lag
        self.landing = {}
        self.calls = []

    def snapshot(self):
        self.calls.append(("snapshot",))
        return Snapshot(
            server=SERVER,
            taken_at=dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc),
            sessions=self.sessions,
        )

    def cancel(self, pid, *, started_at=None):
        self.calls.append(("cancel", pid))
        return self._signal(pid, Action.CANCEL)

    def terminate_many(self, targets):
        return None  # one session per request, as MariaDB does

    def terminate(self, pid, *, started_at=None):
        self.calls.append(("terminate", pid))
        return self._signal(pid, Action.TERMINATE)

    def probe(self, pids):
        self.calls.append(("probe", tuple(pids)))
        for pid, (action, probes_left) in list(self.landing.items()):
            if probes_left:
                self.landing[pid] = (action, probes_left - 1)
                continue
            del self.landing[pid]
            if action is Action.TERMINATE or self.script.get(pid) == "exit":
                self.tokens.pop(pid, None)
            else:
                self.tokens[pid] = "q-next" if self.script.get(pid) == "next" else None
        return {pid: self.tokens[pid] for pid in pids if pid in self.tokens}

    def wait_for_exit(self, pid, *, timeout_seconds, started_at=None):
        self.calls.append(("wait_for_exit", pid))
        time.sleep(min(timeout_seconds, 0.002))

    def close(self):
        self.calls.append(("close",))

    def foresee_refusals(self, action, sessions):
        self.calls.append(("foresee", action, tuple(s.pid for s in sessions)))
        return {
            s.pid: f"must be a member of the role whose process {s.pid} is ended"
            for s in sessions
            if self.script.get(s.pid) == "deny"
        }

    def _signal(self, pid, action):
        effect = self.script.get(pid, "obey")
        if effect == "deny":
            raise PermissionDenied(f"must be a member of the role whose process {pid} is ended")
        if effect == "vanished" or pid not in self.tokens:
            self.tokens.pop(pid, None)
            return False
        if effect != "ignore":
            self.landing[pid] = (action, self.lag)
        return True

    def signalled(self):
        return [call for call in self.calls if call[0] in ("cancel", "terminate")]


def active(pid, **fields):
    return Session(pid=pid, state=ACTIVE, **fields)


def outcomes(results):
    return [(r.pid, r.outcome) for r in results]


def test_terminate_ends_when_the_pid_disappears():
    victim = active(10)
    backend = FakeBackend(victim, lag=3)
    (result,) = SessionControl(backend).terminate([10])
    assert result.outcome is Outcome.ENDED
    assert result.ok
    assert result.session is victim
    assert backend.signalled() == [("terminate", 10)]
    # A signalled backend usually exits within milliseconds: the first 50 ms
    # are a few quick probes, then it waits through the adapter.
    assert backend.calls.count(("probe", (10,))) == 4
    assert ("wait_for_exit", 10) not in backend.calls


def test_terminate_ending_at_once_needs_no_wait():
    backend = FakeBackend(active(10))
    (result,) = SessionControl(backend).terminate([10])
    assert result.outcome is Outcome.ENDED
    assert backend.calls == [("snapshot",), ("terminate", 10), ("probe", (10,))]


def test_terminate_still_running_after_the_wait():
    backend = FakeBackend(active(10), script={10: "ignore"})
    started = time.monotonic()
    (result,) = SessionControl(backend).terminate([10], wait_seconds=0.2)
    assert time.monotonic() - started < DEFAULT_WAIT_SECONDS
    assert result.outcome is Outcome.STILL_RUNNING
    assert result.detail == "after 0.2s"
    assert not result.ok
    assert ("wait_for_exit", 10) in backend.calls


def test_zero_wait_signals_and_does_not_look():
    backend = FakeBackend(active(10), script={10: "ignore"})
    (result,) = SessionControl(backend).terminate([10], wait_seconds=0)
    assert result.outcome is Outcome.SIGNALLED
    assert result.ok
    assert backend.calls == [("snapshot",), ("terminate", 10)]


@pytest.mark.parametrize("action", ["cancel", "terminate"])
def test_permission_denied_is_not_permitted(action):
    backend = FakeBackend(active(10), active(11), script={10: "deny"})
    results = getattr(SessionControl(backend), action)([10, 11])
    assert outcomes(results) == [(10, Outcome.NOT_PERMITTED), (11, Outcome.ENDED)]
    assert results[0].detail == "must be a member of the role whose process 10 is ended"
    assert results[0].session is backend.sessions[0]


@pytest.mark.parametrize("action", ["cancel", "terminate"])
def test_signal_returning_false_is_already_gone(action):
    backend = FakeBackend(active(10), script={10: "vanished"})
    (result,) = getattr(SessionControl(backend), action)([10])
    assert result.outcome is Outcome.ALREADY_GONE
    assert result.detail == "it ended before the signal"


def test_cancel_ends_when_the_statement_token_changes():
    backend = FakeBackend(active(10), active(11), script={11: "next"}, lag=2)
    results = SessionControl(backend).cancel([10, 11])
    # 10 went idle, 11 moved on to a new statement: both were cancelled.
    assert outcomes(results) == [(10, Outcome.ENDED), (11, Outcome.ENDED)]
    # Cancel never waits for an exit, and its tokens are read before signalling.
    assert not any(call[0] == "wait_for_exit" for call in backend.calls)
    assert backend.calls[:4] == [
        ("snapshot",),
        ("probe", (10, 11)),
        ("cancel", 10),
        ("cancel", 11),
    ]


def test_cancel_still_running_while_the_token_stays():
    backend = FakeBackend(active(10), script={10: "ignore"})
    (result,) = SessionControl(backend).cancel([10], wait_seconds=0.05)
    assert result.outcome is Outcome.STILL_RUNNING


def test_cancel_of_a_session_that_exits_is_ended():
    backend = FakeBackend(active(10), script={10: "exit"}, lag=1)
    (result,) = SessionControl(backend).cancel([10])
    assert result.outcome is Outcome.ENDED


def test_cancel_when_the_statement_already_finished():
    backend = FakeBackend(active(10))
    snapshot = backend.snapshot()
    backend.tokens[10] = None  # it finished on its own before we probed
    (result,) = SessionControl(backend).cancel([10], snapshot=snapshot, wait_seconds=0.05)
    assert result.outcome is Outcome.ALREADY_GONE
    assert ("cancel", 10) not in backend.calls


@pytest.mark.parametrize("action", ["cancel", "terminate"])
def test_dry_run_never_signals(action):
    sessions = (active(10), active(11, is_superuser=True), Session(pid=12, state=IDLE))
    backend = FakeBackend(*sessions)
    results = getattr(SessionControl(backend), action)([10, 11, 12, 99], dry_run=True)
    assert backend.signalled() == []
    assert not any(call[0] == "probe" for call in backend.calls)
    expected_12 = Outcome.ALREADY_GONE if action == "cancel" else Outcome.WOULD_END
    assert outcomes(results) == [
        (10, Outcome.WOULD_END),
        (11, Outcome.PROTECTED),
        (12, expected_12),
        (99, Outcome.ALREADY_GONE),
    ]
    assert results[0].session is sessions[0]
    assert results[0].ok


@pytest.mark.parametrize("action", ["cancel", "terminate"])
def test_dry_run_says_what_the_server_would_refuse(action):
    backend = FakeBackend(active(10), active(11), script={10: "deny"})
    results = getattr(SessionControl(backend), action)([10, 11], dry_run=True)
    assert outcomes(results) == [(10, Outcome.NOT_PERMITTED), (11, Outcome.WOULD_END)]
    assert results[0].detail == "must be a member of the role whose process 10 is ended"
    assert backend.signalled() == []
    assert ("foresee", action, (10, 11)) in backend.calls


def test_results_come_back_in_request_order():
    backend = FakeBackend(
        Session(pid=OWN_PID, state=ACTIVE),
        active(10),
        active(11),
        active(12),
        active(13),
        active(14, is_superuser=True),
        Session(pid=15, backend_kind=BACKGROUND, backend_type="checkpointer"),
        script={11: "deny", 12: "vanished", 13: "ignore"},
        lag=1,
    )
    results = SessionControl(backend).terminate(
        [13, 99, 15, 12, 10, OWN_PID, 14, 11, 10, 13], wait_seconds=0.05
    )
    assert outcomes(results) == [
        (13, Outcome.STILL_RUNNING),
        (99, Outcome.ALREADY_GONE),
        (15, Outcome.PROTECTED),
        (12, Outcome.ALREADY_GONE),
        (10, Outcome.ENDED),
        (OWN_PID, Outcome.PROTECTED),
        (14, Outcome.PROTECTED),
        (11, Outcome.NOT_PERMITTED),
    ]
    # Only the allowed pids were signalled, each once, in request order.
    assert backend.signalled() == [
        ("terminate", 13),
        ("terminate", 12),
        ("terminate", 10),
        ("terminate", 11),
    ]


def test_safety_is_passed_to_the_plan():
    backend = FakeBackend(active(14, is_superuser=True))
    control = SessionControl(backend)
    assert outcomes(control.terminate([14])) == [(14, Outcome.PROTECTED)]
    assert outcomes(control.terminate([14], safety=Safety(include_superusers=True))) == [
        (14, Outcome.ENDED)
    ]


def test_a_given_snapshot_is_used_instead_of_a_new_one():
    backend = FakeBackend(active(10))
    snapshot = backend.snapshot()
    backend.calls.clear()
    SessionControl(backend).terminate([10], snapshot=snapshot)
    assert ("snapshot",) not in backend.calls


@pytest.mark.parametrize("action", ["cancel", "terminate"])
def test_a_pid_missing_from_a_list_of_own_sessions_only_is_not_permitted(action):
    """A login that sees only its own sessions cannot tell a gone pid from a hidden one."""
    backend = FakeBackend(active(10))
    listed = backend.snapshot()
    unlisted = Snapshot(
        server=SERVER,
        taken_at=listed.taken_at,
        sessions=listed.sessions,
        unlisted="this login lacks the PROCESS privilege",
    )
    backend.calls.clear()
    results = getattr(SessionControl(backend), action)([55, 10], snapshot=unlisted)
    assert outcomes(results) == [(55, Outcome.NOT_PERMITTED), (10, Outcome.ENDED)]
    assert results[0].detail == (
        "pid 55 is not among the sessions this login may see: "
        "this login lacks the PROCESS privilege"
    )
    assert backend.signalled() == [(action, 10)]
    # A list of every session: a pid missing from it is gone.
    (gone,) = getattr(SessionControl(backend), action)([55], snapshot=listed)
    assert gone.outcome is Outcome.ALREADY_GONE


def test_nothing_requested_nothing_signalled():
    backend = FakeBackend(active(10))
    assert SessionControl(backend).terminate([]) == ()
    assert backend.signalled() == []


def test_context_manager_closes_the_backend():
    backend = FakeBackend(active(10))
    with SessionControl(backend) as control:
        assert control.own_pid == OWN_PID
        assert control.backend is backend
    assert backend.calls[-1] == ("close",)
