"""``transaction()`` for real: sessions stay usable, reruns apply once, COMMIT is never rerun."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, PendingRollbackError
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from sessionward.errors import CommitOutcomeUnknown, SessionEnded
from sessionward.sqlalchemy import Backoff, harden, transaction
from tests.integrations.sqlalchemy.conftest import Lab

_keys = itertools.count(int(time.time() * 1000) % 10**9 * 1000)
FAST = Backoff(initial_seconds=0.01, jitter=0)


def _count(lab: Lab, key: int) -> int:
    return int(lab.sql("SELECT count(*) FROM sw_items WHERE id = %s", (key,))[0][0])


def _insert(session: Any, key: int) -> None:
    session.execute(text("INSERT INTO sw_items (id, note) VALUES (:id, 'x')"), {"id": key})


def test_a_termination_mid_transaction_leaves_the_session_usable(lab: Lab) -> None:
    engine = lab.engine()
    session = Session(engine)
    key = next(_keys)

    def unit_of_work() -> None:
        with transaction(session) as unit:
            _insert(unit, key)
            lab.terminate(lab.pid_of(unit.connection()))
            unit.execute(text("SELECT 1"))

    with pytest.raises(SessionEnded) as ended:
        unit_of_work()
    assert isinstance(ended.value.__cause__, DBAPIError)
    assert session.execute(text("SELECT 1")).scalar() == 1  # no PendingRollbackError
    session.close()
    assert _count(lab, key) == 0

    # The control: the same ending without transaction() poisons the session.
    plain = Session(lab.engine())
    _insert(plain, next(_keys))
    lab.terminate(lab.pid_of(plain.connection()))
    with pytest.raises(DBAPIError):
        plain.execute(text("SELECT 1"))
    with pytest.raises(PendingRollbackError):
        plain.execute(text("SELECT 1"))
    plain.close()


def test_the_decorator_reruns_the_whole_unit_and_the_row_exists_once(lab: Lab) -> None:
    factory = scoped_session(sessionmaker(harden(lab.engine())))
    key = next(_keys)
    attempts = []

    @transaction(factory, backoff=FAST)
    def unit(session: Session, key: int) -> str:
        attempts.append(1)
        _insert(session, key)
        if len(attempts) == 1:
            lab.terminate(lab.pid_of(session.connection()))
        session.execute(text("SELECT 1"))
        return "done"

    assert unit(key) == "done"
    assert len(attempts) == 2
    assert _count(lab, key) == 1
    assert factory().execute(text("SELECT 1")).scalar() == 1
    factory.remove()


def test_a_session_ended_while_idle_before_commit_is_rerun(lab: Lab) -> None:
    """Ended after its last statement, before COMMIT was sent: nothing applied, so rerun."""
    factory = sessionmaker(harden(lab.engine()))
    key = next(_keys)
    attempts = []

    @transaction(factory, backoff=FAST)
    def unit(session: Session) -> None:
        attempts.append(1)
        _insert(session, key)
        if len(attempts) == 1:
            lab.terminate(lab.pid_of(session.connection()))

    unit()
    assert len(attempts) == 2
    assert _count(lab, key) == 1


def test_an_interrupted_commit_is_not_rerun(lab: Lab) -> None:
    engine = lab.engine()
    key = next(_keys)
    attempts = []
    _kill_at_first_commit(lab, engine)

    @transaction(sessionmaker(engine), backoff=FAST)
    def unit(session: Session) -> None:
        attempts.append(1)
        _insert(session, key)

    with pytest.raises(CommitOutcomeUnknown) as unknown:
        unit()
    assert isinstance(unknown.value.__cause__, DBAPIError)
    assert len(attempts) == 1
    assert _count(lab, key) <= 1


def test_an_idempotent_unit_is_rerun_after_an_interrupted_commit(lab: Lab) -> None:
    engine = lab.engine()
    key = next(_keys)
    attempts = []
    _kill_at_first_commit(lab, engine)

    @transaction(sessionmaker(engine), idempotent=True, backoff=FAST)
    def unit(session: Session) -> None:
        attempts.append(1)
        _insert(session, key)

    unit()
    assert len(attempts) == 2
    assert _count(lab, key) == 1


def test_other_errors_roll_back_and_pass_through(lab: Lab) -> None:
    engine = lab.engine()
    key = next(_keys)
    session = Session(engine)
    with transaction(session) as unit:
        _insert(unit, key)
    with pytest.raises(IntegrityError), transaction(session) as unit:
        _insert(unit, key)
    assert session.execute(text("SELECT 1")).scalar() == 1
    session.close()
    assert _count(lab, key) == 1


def test_an_engine_gives_a_connection_in_a_transaction(lab: Lab) -> None:
    engine = lab.engine()
    key = next(_keys)
    with transaction(engine) as connection:
        _insert(connection, key)

    def failing() -> None:
        with transaction(engine) as connection:
            _insert(connection, key + 1)
            raise RuntimeError("the unit failed")

    with pytest.raises(RuntimeError):
        failing()
    assert _count(lab, key) == 1
    assert _count(lab, key + 1) == 0


def _kill_at_first_commit(lab: Lab, engine: Any) -> None:
    """End the session just as COMMIT is about to be sent, the first time only."""
    done = []

    @event.listens_for(engine, "commit")
    def kill(connection: Any) -> None:
        if not done:
            done.append(1)
            lab.terminate(lab.pid_of(connection))


def test_the_decorator_reruns_when_the_server_refused_the_connect(lab: Lab) -> None:
    """An ``Engine`` bind connects inside the attempt: a refused login (the server
    restarting, a failover under way) is rerun like an ended session."""
    engine = lab.engine()
    refused = []

    @event.listens_for(engine, "do_connect")
    def first_to_a_closed_port(dialect: Any, record: Any, cargs: Any, cparams: Any) -> None:
        if not refused:
            refused.append(1)
            cparams["port"] = 1  # nothing listens there: the driver's own refusal

    key = next(_keys)
    attempts = []

    @transaction(engine, backoff=FAST)
    def unit(connection: Any, key: int) -> None:
        attempts.append(1)
        _insert(connection, key)

    unit(key)
    assert refused == [1]
    assert len(attempts) == 1  # the body ran once, after the refused connect
    assert _count(lab, key) == 1
