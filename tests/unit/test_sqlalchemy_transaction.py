"""``transaction()``'s own state machine, driven by scripted failures on SQLite.

What each failure means on a real server is asserted live in
``tests/integrations/sqlalchemy``; here only the decisions are checked.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from sessionward.errors import (
    CommitOutcomeUnknown,
    ConfigurationError,
    ConnectionLost,
    Deadlock,
    SessionTerminated,
)
from sessionward.sqlalchemy import Backoff, transaction

NO_WAIT = Backoff(initial_seconds=0, jitter=0)


class AdminShutdown(Exception):
    """Looks like psycopg 3's error for a terminated session."""

    sqlstate = "57P01"


AdminShutdown.__module__ = "psycopg.errors"


class DeadlockDetected(Exception):
    sqlstate = "40P01"


DeadlockDetected.__module__ = "psycopg.errors"


def _ended(*, invalidated: bool = True) -> OperationalError:
    error = OperationalError("SELECT 1", None, AdminShutdown("terminating connection"))
    error.connection_invalidated = invalidated
    return error


@pytest.fixture
def factory() -> Any:
    engine = sqlalchemy.create_engine("sqlite://")
    yield sessionmaker(engine)
    engine.dispose()


def test_a_connection_ending_reruns_the_unit_until_it_succeeds(factory: Any) -> None:
    calls = []

    @transaction(factory, backoff=NO_WAIT)
    def unit(session: Session, value: int) -> int:
        calls.append(value)
        session.execute(text("SELECT 1"))
        if len(calls) < 3:
            raise _ended()
        return value * 2

    assert unit(21) == 42
    assert calls == [21, 21, 21]


def test_the_last_failure_is_raised_as_ours_when_attempts_run_out(factory: Any) -> None:
    calls = []

    @transaction(factory, retries=2, backoff=NO_WAIT)
    def unit(session: Session) -> None:
        calls.append(1)
        raise _ended()

    with pytest.raises(SessionTerminated) as raised:
        unit()
    assert isinstance(raised.value.__cause__, OperationalError)
    assert len(calls) == 2


def test_a_deadlock_is_rerun_whole(factory: Any) -> None:
    calls = []

    @transaction(factory, backoff=NO_WAIT)
    def unit(session: Session) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE", None, DeadlockDetected("deadlock detected"))

    unit()
    assert len(calls) == 2


def test_an_unrecognised_invalidating_error_counts_as_a_lost_connection(factory: Any) -> None:
    @transaction(factory, retries=1, backoff=NO_WAIT)
    def unit(session: Session) -> None:
        raise OperationalError("SELECT 1", None, RuntimeError("gone"), connection_invalidated=True)

    with pytest.raises(ConnectionLost):
        unit()


def test_other_errors_are_not_rerun(factory: Any) -> None:
    calls = []

    @transaction(factory, backoff=NO_WAIT)
    def unit(session: Session) -> None:
        calls.append(1)
        raise KeyError("a bug in the unit")

    with pytest.raises(KeyError):
        unit()
    assert len(calls) == 1


def test_a_failed_commit_is_an_unknown_outcome_and_not_rerun(factory: Any) -> None:
    calls = []
    engine = factory.kw["bind"]

    @event.listens_for(engine, "commit")
    def fail(connection: Any) -> None:
        raise _ended()

    @transaction(factory, backoff=NO_WAIT)
    def unit(session: Session) -> None:
        calls.append(1)
        session.execute(text("SELECT 1"))

    with pytest.raises(CommitOutcomeUnknown):
        unit()
    assert len(calls) == 1


def test_a_failed_commit_is_rerun_when_the_unit_is_idempotent(factory: Any) -> None:
    calls = []
    engine = factory.kw["bind"]

    @event.listens_for(engine, "commit")
    def fail(connection: Any) -> None:
        if len(calls) == 1:
            raise _ended()

    @transaction(factory, idempotent=True, backoff=NO_WAIT)
    def unit(session: Session) -> None:
        calls.append(1)
        session.execute(text("SELECT 1"))

    unit()
    assert len(calls) == 2


def test_the_context_manager_raises_ours_and_leaves_the_session_clean(factory: Any) -> None:
    session = factory()

    def block() -> None:
        with transaction(session) as unit:
            unit.execute(text("SELECT 1"))
            raise _ended()

    with pytest.raises(SessionTerminated):
        block()
    assert not session.in_transaction()
    assert session.execute(text("SELECT 1")).scalar() == 1
    session.close()


def test_bad_arguments_are_refused(factory: Any) -> None:
    with pytest.raises(ConfigurationError):
        transaction(factory, retries=0)
    with pytest.raises(ConfigurationError):
        transaction(42)  # type: ignore[call-overload]


def test_the_engine_form_commits(factory: Any) -> None:
    engine = factory.kw["bind"]
    with transaction(engine) as connection:
        connection.execute(text("CREATE TABLE t (x int)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 1
    assert Deadlock.transaction_retry_safe


class InvalidPassword(Exception):
    sqlstate = "28P01"


InvalidPassword.__module__ = "psycopg.errors"


class Refused(Exception):
    sqlstate = None


Refused.__module__ = "psycopg"


def test_a_refused_connection_is_rerun_but_a_refused_login_is_not(factory: Any) -> None:
    calls = []

    @transaction(factory, backoff=NO_WAIT)
    def refused(session: Session) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError(None, None, Refused("connection refused"))

    refused()
    assert len(calls) == 2

    @transaction(factory, backoff=NO_WAIT)
    def bad_login(session: Session) -> None:
        calls.append(1)
        raise OperationalError(None, None, InvalidPassword("password authentication failed"))

    with pytest.raises(OperationalError):
        bad_login()
    assert len(calls) == 3
