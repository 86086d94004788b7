"""Every PostgreSQL ending, provoked for real, through psycopg 3 and psycopg2 — raw,
wrapped by SQLAlchemy and wrapped by Django — and what ``classify``/``translate`` make of it.

Runs on each PostgreSQL under test (the system server and the embedded 18).
Server restarts, crashes and network loss are in ``test_restarts.py``.
"""

from __future__ import annotations

import threading
import time

import pytest

from sessionward import Timeouts, UnsupportedSetting
from sessionward.errors import (
    Deadlock,
    IdleInTransactionTimeout,
    IdleSessionTimeout,
    LockTimeout,
    QueryCanceled,
    SerializationFailure,
    SessionTerminated,
    StatementTimeout,
    TransactionTimeout,
)
from tests.integrations.errors._layers import LAYERS, PG_DRIVERS
from tests.integrations.errors._outcomes import assert_ended
from tests.integrations.errors.conftest import SHORT, Lab

pytestmark = pytest.mark.postgresql

SLEEP = "SELECT pg_sleep(5)"
#: Long enough past a SHORT idle limit for the server's timer to fire.
IDLE_PAST_LIMIT = SHORT * 2.5


@pytest.fixture(params=LAYERS)
def layer(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=PG_DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _row_exists(lab: Lab, key: int) -> bool:
    return bool(lab.sql("SELECT 1 FROM sw_rows WHERE id = %s", (key,)))


# --------------------------------------------------------------------------- statement level


def test_statement_timeout(pg_lab: Lab, layer: str, driver: str) -> None:
    session = pg_lab.session(layer, driver, Timeouts(statement_seconds=SHORT))
    key = pg_lab.key()
    session.rows("BEGIN")
    session.rows(f"INSERT INTO sw_rows (id) VALUES ({key})")

    assert_ended(session.fail(SLEEP), StatementTimeout, layer=layer, driver=driver)

    # Usable, but the transaction refuses everything (25P02) until ROLLBACK, which
    # undoes all of it: rerunning the whole transaction is safe.
    assert session.fail("SELECT 1").classified is None
    session.rows("ROLLBACK")
    assert session.rows("SELECT 1") == [(1,)]
    assert not _row_exists(pg_lab, key)


def test_cancel(pg_lab: Lab, layer: str, driver: str) -> None:
    session = pg_lab.session(layer, driver)
    session.start(SLEEP)
    pg_lab.wait_running(session, SLEEP)
    pg_lab.cancel(session.pid)

    assert_ended(session.result().failure, QueryCanceled, layer=layer, driver=driver)
    assert session.rows("SELECT 1") == [(1,)]


def test_lock_timeout(pg_lab: Lab, layer: str, driver: str) -> None:
    key = pg_lab.key()
    holder = pg_lab.connect()
    holder.execute("SELECT pg_advisory_lock(%s)", (key,))
    session = pg_lab.session(layer, driver, Timeouts(lock_seconds=SHORT))

    started = time.monotonic()
    failure = session.fail(f"SELECT pg_advisory_lock({key})")

    assert_ended(failure, LockTimeout, layer=layer, driver=driver)
    assert time.monotonic() - started < 3
    assert session.rows("SELECT 1") == [(1,)]


def test_deadlock(pg_lab: Lab, layer: str, driver: str) -> None:
    mine, theirs = pg_lab.key(), pg_lab.key()
    session = pg_lab.session(layer, driver)
    # The session that checks first is the victim: ours after 100 ms, theirs after 1 s.
    session.rows("SET deadlock_timeout = '100ms'")
    session.rows(f"SELECT pg_advisory_lock({mine})")
    holder = pg_lab.connect()
    holder.execute("SELECT pg_advisory_lock(%s)", (theirs,))
    waiting = threading.Thread(target=holder.execute, args=("SELECT pg_advisory_lock(%s)", (mine,)))
    waiting.start()
    pg_lab.wait_lock_wait(holder.info.backend_pid)

    failure = session.fail(f"SELECT pg_advisory_lock({theirs})")

    assert_ended(failure, Deadlock, layer=layer, driver=driver)
    session.rows("SELECT pg_advisory_unlock_all()")  # usable; lets the other side through
    waiting.join(10)
    assert not waiting.is_alive()


def test_serialization_failure(pg_lab: Lab, layer: str, driver: str) -> None:
    key = pg_lab.key()
    pg_lab.sql("INSERT INTO sw_rows (id) VALUES (%s)", (key,))
    session = pg_lab.session(layer, driver)
    session.rows("BEGIN ISOLATION LEVEL REPEATABLE READ")
    session.rows(f"SELECT v FROM sw_rows WHERE id = {key}")
    pg_lab.sql("UPDATE sw_rows SET v = v + 1 WHERE id = %s", (key,))

    failure = session.fail(f"UPDATE sw_rows SET v = v + 10 WHERE id = {key}")

    assert_ended(failure, SerializationFailure, layer=layer, driver=driver)
    session.rows("ROLLBACK")
    assert session.rows(f"SELECT v FROM sw_rows WHERE id = {key}") == [(1,)]


# --------------------------------------------------------------------------- connection level


def test_terminate_during_a_statement(pg_lab: Lab, layer: str, driver: str) -> None:
    key = pg_lab.key()
    session = pg_lab.session(layer, driver)
    session.rows("BEGIN")
    session.rows(f"INSERT INTO sw_rows (id) VALUES ({key})")
    session.start(SLEEP)
    pg_lab.wait_running(session, SLEEP)
    pg_lab.terminate(session.pid)

    assert_ended(session.result().failure, SessionTerminated, layer=layer, driver=driver)
    assert session.fail("SELECT 1")  # the connection is gone
    pg_lab.wait_gone(session.pid)
    assert not _row_exists(pg_lab, key)  # the server rolled the transaction back


def test_terminate_while_idle(pg_lab: Lab, layer: str, driver: str) -> None:
    session = pg_lab.session(layer, driver)
    pg_lab.terminate(session.pid)
    pg_lab.wait_gone(session.pid)

    # The victim learns at its next statement.
    assert_ended(session.fail("SELECT 1"), SessionTerminated, layer=layer, driver=driver)


def test_idle_in_transaction_timeout(pg_lab: Lab, layer: str, driver: str) -> None:
    key = pg_lab.key()
    session = pg_lab.session(layer, driver, Timeouts(idle_in_transaction_seconds=SHORT))
    session.rows("BEGIN")
    session.rows(f"INSERT INTO sw_rows (id) VALUES ({key})")
    time.sleep(IDLE_PAST_LIMIT)

    failure = session.fail("SELECT 1")

    assert_ended(failure, IdleInTransactionTimeout, layer=layer, driver=driver)
    assert session.fail("SELECT 1")
    assert not _row_exists(pg_lab, key)


def test_idle_session_timeout(pg_lab: Lab, layer: str, driver: str) -> None:
    session = pg_lab.session(layer, driver, Timeouts(idle_session_seconds=SHORT))
    time.sleep(IDLE_PAST_LIMIT)

    assert_ended(session.fail("SELECT 1"), IdleSessionTimeout, layer=layer, driver=driver)
    assert session.fail("SELECT 1")


def test_transaction_timeout(pg_lab: Lab, layer: str, driver: str) -> None:
    timeouts = Timeouts(transaction_seconds=SHORT)
    if pg_lab.version < 170000:
        with pytest.raises(UnsupportedSetting) as refused:
            pg_lab.session(layer, driver, timeouts)
        assert refused.value.setting == "transaction_timeout"
        assert (
            refused.value.server == f"PostgreSQL {pg_lab.version // 10000}.{pg_lab.version % 10000}"
        )
        assert "needs PostgreSQL 17 or later" in str(refused.value)
        return
    key = pg_lab.key()
    session = pg_lab.session(layer, driver, timeouts)
    session.rows("BEGIN")
    session.rows(f"INSERT INTO sw_rows (id) VALUES ({key})")

    failure = session.fail(SLEEP)

    assert_ended(failure, TransactionTimeout, layer=layer, driver=driver)
    assert session.fail("SELECT 1")
    assert not _row_exists(pg_lab, key)


# --------------------------------------------------------------------------- SQLAlchemy + psycopg2


@pytest.mark.parametrize("hooked", [False, True], ids=["plain", "classify_errors"])
def test_sqlalchemy_psycopg2_keeps_the_server_reason_with_classify_errors(
    pg_lab: Lab, hooked: bool
) -> None:
    """psycopg2 loses the SQLSTATE and SQLAlchemy closes the connection holding the reason."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    from sessionward.errors import ConnectionLost, classify
    from sessionward.sqlalchemy import classify_errors

    url = "postgresql+psycopg2://" + pg_lab.url.split("://", 1)[1]
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    if hooked:
        classify_errors(engine)
    try:
        with engine.connect() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            assert isinstance(pid, int)
            pg_lab.terminate(pid)
            pg_lab.wait_gone(pid)
            with pytest.raises(sqlalchemy.exc.OperationalError) as raised:
                conn.exec_driver_sql("SELECT 1")
    finally:
        engine.dispose()

    assert raised.value.connection_invalidated
    if hooked:
        assert classify(raised.value) is SessionTerminated
        reason = "server said: FATAL:  terminating connection due to administrator command"
        assert reason in str(raised.value)
    else:
        assert classify(raised.value) is ConnectionLost
