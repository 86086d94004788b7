"""``harden(check_threads=True)``: one Session used by two threads at once is a clear error."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from sessionward.sqlalchemy import ConcurrentUse, harden
from tests.integrations.sqlalchemy.conftest import Lab, wait_until


def test_a_session_used_by_two_threads_at_once_is_refused(lab: Lab) -> None:
    engine = harden(lab.engine(), check_threads=True)
    session = Session(engine)
    session.execute(text("SELECT 1"))  # the session holds its connection from here on
    sleep = "SELECT pg_sleep(0.6)" if lab.engine_kind == "postgresql" else "SELECT SLEEP(0.6)"
    first = threading.Thread(target=session.execute, args=(text(sleep),), name="first-user")
    first.start()
    wait_until("the first thread runs its statement", lambda: _running(lab, sleep))
    with pytest.raises(ConcurrentUse, match="first-user"):
        session.execute(text("SELECT 1"))
    first.join(10)
    assert session.execute(text("SELECT 2")).scalar() == 2  # one thread at a time is fine
    session.close()


def test_one_thread_after_another_is_fine(lab: Lab) -> None:
    engine = harden(lab.engine(), check_threads=True)
    session = Session(engine)
    results: list[int] = []
    for n in range(3):
        thread = threading.Thread(
            target=lambda n=n: results.append(session.execute(text(f"SELECT {n}")).scalar())
        )
        thread.start()
        thread.join(10)
    assert results == [0, 1, 2]
    session.close()


def _running(lab: Lab, sql: str) -> bool:
    if lab.engine_kind == "postgresql":
        query = (
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE %s AND state = 'active' "
            "AND datname = current_database()"
        )
    else:
        query = (
            "SELECT 1 FROM information_schema.PROCESSLIST WHERE INFO LIKE %s AND DB = DATABASE()"
        )
    # The statement as sent, with the origin comment harden() appends to it.
    return bool(lab.sql(query, (sql + "%",)))
