"""``SessionControl.drop_database``'s order of steps and its undo, driven by a scripted fake.

The fake stands in only for our own sequencing; what the servers do is
asserted live in tests/servers/test_dropdb.py.
"""

import datetime as dt

import pytest

from sessionward import DatabaseInUse, Outcome, SessionControl
from sessionward.core import (
    BACKGROUND,
    IDLE,
    ConfigurationError,
    PermissionDenied,
    ServerInfo,
    Session,
    Snapshot,
)

SERVER = ServerInfo(engine="postgresql", version="16.2", version_num=160002, own_pid=1)


class FakeBackend:
    """One database ``app`` whose sessions leave as soon as they are told to."""

    def __init__(self, *sessions, exists=True, deny=(), drop_error=None, exists_error=None,
                 stay=()):  # fmt: skip
        self.server = SERVER
        self.stay = set(stay)  # sessions that take the signal but are still there
        self.exists_error = exists_error
        self.present = {s.pid: s for s in sessions}
        self.exists = exists
        self.deny = set(deny)
        self.drop_error = drop_error
        self.calls = []

    def database_exists(self, name):
        self.calls.append("exists")
        if self.exists_error is not None:
            raise self.exists_error
        return self.exists

    def block_connections(self, name):
        self.calls.append("block")
        return lambda: self.calls.append("restore")

    def snapshot(self):
        self.calls.append("snapshot")
        return Snapshot(
            server=SERVER,
            taken_at=dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc),
            sessions=tuple(self.present.values()),
        )

    def database_users(self, name):
        self.calls.append("users")
        return frozenset(p for p, s in self.present.items() if s.database == name), ("a note",)

    def terminate_many(self, targets):
        return None  # one session per request, as MariaDB does

    def foresee_refusals(self, action, sessions):
        return {
            s.pid: f"not permitted to terminate pid {s.pid}" for s in sessions if s.pid in self.deny
        }

    def terminate(self, pid, *, started_at=None):
        self.calls.append(("terminate", pid))
        if pid in self.deny:
            raise PermissionDenied(f"not permitted to terminate pid {pid}")
        if pid in self.stay:
            return pid in self.present
        return self.present.pop(pid, None) is not None

    def probe(self, pids):
        return {pid: None for pid in pids if pid in self.present}

    def wait_for_exit(self, pid, *, timeout_seconds, started_at=None):
        pass

    def drop_database(self, name, *, force, if_exists):
        self.calls.append(("drop", force))
        if self.drop_error is not None:
            raise self.drop_error


def session(pid, database="app", **fields):
    return Session(pid=pid, database=database, user="u", state=IDLE, **fields)


def test_logins_are_blocked_before_the_sessions_are_read_and_ended():
    backend = FakeBackend(session(10), session(11), session(12, database="other"))
    result = SessionControl(backend).drop_database("app")
    assert backend.calls == [
        "exists", "block", "snapshot", "users", ("terminate", 10), ("terminate", 11),
        ("drop", True),
    ]  # fmt: skip
    assert result.dropped
    assert [(r.pid, r.outcome) for r in result.ended] == [(10, Outcome.ENDED), (11, Outcome.ENDED)]
    assert result.notes == ("a note",)


def test_background_processes_are_left_to_the_server():
    vacuum = session(20, backend_kind=BACKGROUND, backend_type="autovacuum worker")
    backend = FakeBackend(vacuum, session(21, is_superuser=True))
    result = SessionControl(backend).drop_database("app")
    assert [r.pid for r in result.ended] == [21]
    assert ("terminate", 20) not in backend.calls


def test_dry_run_neither_blocks_nor_ends_nor_drops():
    backend = FakeBackend(session(10))
    result = SessionControl(backend).drop_database("app", dry_run=True)
    assert backend.calls == ["exists", "snapshot", "users"]
    assert [(r.pid, r.outcome) for r in result.ended] == [(10, Outcome.WOULD_END)]
    assert not result.dropped


def test_a_dry_run_foresees_a_session_it_may_not_end():
    backend = FakeBackend(session(10), session(11), deny={11})
    result = SessionControl(backend).drop_database("app", dry_run=True)
    assert [(r.pid, r.outcome) for r in result.ended] == [
        (10, Outcome.WOULD_END),
        (11, Outcome.NOT_PERMITTED),
    ]
    assert [r.pid for r in result.not_ended] == [11]
    assert backend.calls == ["exists", "snapshot", "users"]


def test_without_force_sessions_refuse_and_logins_come_back():
    backend = FakeBackend(session(10))
    with pytest.raises(DatabaseInUse, match="in use by 1 session: pid 10") as caught:
        SessionControl(backend).drop_database("app", force=False)
    assert [s.pid for s in caught.value.sessions] == [10]
    assert backend.calls == ["exists", "block", "snapshot", "users", "restore"]


def test_a_session_not_ended_means_no_drop_and_logins_come_back():
    backend = FakeBackend(session(10), session(11), deny={11})
    result = SessionControl(backend).drop_database("app")
    assert not result.dropped
    assert [r.pid for r in result.not_ended] == [11]
    assert backend.calls[-1] == "restore"
    assert not any(call[0] == "drop" for call in backend.calls if isinstance(call, tuple))


def test_a_failed_drop_lets_logins_back_and_raises():
    backend = FakeBackend(session(10), drop_error=DatabaseInUse("prepared transaction"))
    with pytest.raises(DatabaseInUse, match="prepared transaction"):
        SessionControl(backend).drop_database("app")
    assert backend.calls[-2:] == [("drop", True), "restore"]


def test_a_missing_database():
    backend = FakeBackend(exists=False)
    result = SessionControl(backend).drop_database("app", if_exists=True)
    assert (result.dropped, result.existed) == (False, False)
    with pytest.raises(ConfigurationError, match="database 'app' does not exist"):
        SessionControl(backend).drop_database("app")
    assert "block" not in backend.calls


def test_an_empty_name_is_refused():
    with pytest.raises(ConfigurationError, match="no database name"):
        SessionControl(FakeBackend()).drop_database("")


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_refusal_found_before_anything_is_done_changes_nothing(dry_run):
    """A name too long for the server or a missing privilege: not blocked, ended or dropped."""
    for error in (ConfigurationError("database name 'x' is over the limit"),
                  PermissionDenied("not permitted to drop database 'app'")):  # fmt: skip
        backend = FakeBackend(session(10), exists_error=error)
        with pytest.raises(type(error)):
            SessionControl(backend).drop_database("app", force=True, dry_run=dry_run)
        assert backend.calls == ["exists"]
        assert 10 in backend.present


def test_a_zero_wait_leaves_the_database_while_a_session_may_still_be_there():
    """``wait_seconds=0`` signals and does not look: nothing confirmed gone, nothing dropped."""
    backend = FakeBackend(session(10), session(11, database="other"), stay={10})
    result = SessionControl(backend).drop_database("app", wait_seconds=0)
    assert [(r.pid, r.outcome) for r in result.ended] == [(10, Outcome.SIGNALLED)]
    assert [r.pid for r in result.not_ended] == [10]
    assert not result.dropped
    assert backend.calls[-2:] == [("terminate", 10), "restore"]  # no drop; logins allowed again
