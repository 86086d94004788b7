"""A pid reused by a newer session is never signalled (PostgreSQL reuses pids)."""

from __future__ import annotations

import datetime as dt

import sessionward
from sessionward import Outcome


def test_a_signal_names_the_session_not_just_the_pid(pg, victims):
    db = pg.create_database()
    user = pg.create_user()
    victim = victims(pg, database=db, user=user)
    with sessionward.connect(pg.url) as control:
        session = control.snapshot().get(victim.pid)
        assert session is not None
        assert session.started_at is not None
        started = dt.datetime.fromisoformat(session.started_at)
        # As if the pid now belonged to a session that began a second later.
        newer = (started + dt.timedelta(seconds=1)).isoformat()

        assert control.backend.cancel(victim.pid, started_at=newer) is False
        assert control.backend.terminate(victim.pid, started_at=newer) is False
        control.backend.wait_for_exit(victim.pid, timeout_seconds=0.2, started_at=newer)
        assert victim.run("SELECT 1") == [(1,)]

        assert control.backend.terminate(victim.pid, started_at=session.started_at) is True
        (result,) = control.terminate([victim.pid])
        assert result.outcome in (Outcome.ENDED, Outcome.ALREADY_GONE)
        assert victim.pid not in control.snapshot()


def test_a_snapshot_from_before_a_reuse_ends_nothing(pg, victims):
    db = pg.create_database()
    user = pg.create_user()
    victim = victims(pg, database=db, user=user)
    with sessionward.connect(pg.url) as control:
        snapshot = control.snapshot()
        old = snapshot.get(victim.pid)
        assert old is not None
        stale = snapshot.with_sessions(
            tuple(
                s if s.pid != victim.pid else _replace_start(s, "2000-01-01T00:00:00+00:00")
                for s in snapshot.sessions
            )
        )
        (result,) = control.terminate([victim.pid], snapshot=stale, wait_seconds=0.5)
        assert result.outcome is Outcome.ALREADY_GONE
        assert victim.run("SELECT 1") == [(1,)]


def _replace_start(session, started_at):
    import dataclasses

    return dataclasses.replace(session, started_at=started_at)
