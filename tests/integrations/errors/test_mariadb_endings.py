"""Every MariaDB ending, provoked for real, through PyMySQL and mysqlclient — raw,
wrapped by SQLAlchemy and wrapped by Django — and what ``classify``/``translate``
make of it.

MariaDB sends no reason when it closes a connection: ``KILL``, ``wait_timeout``
and ``idle_transaction_timeout`` all reach the client as 2006 or 2013, so they
are ``ConnectionLost``.  Restarts and network loss are in ``test_restarts.py``.
"""

from __future__ import annotations

import threading
import time

import pytest

from sessionward import Timeouts, UnsupportedSetting
from sessionward.errors import (
    ConnectionLost,
    Deadlock,
    LockTimeout,
    QueryCanceled,
    StatementTimeout,
)
from tests.integrations.errors._layers import LAYERS, MYSQLCLIENT
from tests.integrations.errors._outcomes import assert_ended
from tests.integrations.errors.conftest import MARIADB_SHORTEST, SHORT, Lab

pytestmark = pytest.mark.mysql

DRIVERS = ("pymysql", MYSQLCLIENT)
SLEEP = "SELECT SLEEP(5)"
#: MariaDB closes idle connections on whole-second limits; wait a little past one.
IDLE_PAST_LIMIT = MARIADB_SHORTEST + 0.4


@pytest.fixture(params=LAYERS)
def layer(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    """PyMySQL, and mysqlclient where it is installed."""
    name = str(request.param)
    if name == MYSQLCLIENT:
        pytest.importorskip(
            "MySQLdb",
            reason="mysqlclient not installed (needs libmariadb-dev and pkg-config to build)",
        )
    return name


def _row_exists(lab: Lab, key: int) -> bool:
    return bool(lab.sql("SELECT 1 FROM sw_rows WHERE id = %s", (key,)))


# --------------------------------------------------------------------------- statement level


def test_statement_timeout(mysql_lab: Lab, layer: str, driver: str) -> None:
    session = mysql_lab.session(layer, driver, Timeouts(statement_seconds=SHORT))
    key = mysql_lab.key()
    session.rows("BEGIN")
    session.rows(f"INSERT INTO sw_rows (id) VALUES ({key})")

    assert_ended(session.fail(SLEEP), StatementTimeout, layer=layer, driver=driver)

    # Usable, and only the statement was undone: the transaction is still open
    # with the INSERT in it.  After ROLLBACK, rerunning it whole is safe.
    assert session.rows("SELECT @@in_transaction") == [(1,)]
    assert session.rows(f"SELECT COUNT(*) FROM sw_rows WHERE id = {key}") == [(1,)]
    session.rows("ROLLBACK")
    assert not _row_exists(mysql_lab, key)


def test_kill_query(mysql_lab: Lab, layer: str, driver: str) -> None:
    key = mysql_lab.key()
    session = mysql_lab.session(layer, driver)
    session.rows("BEGIN")
    session.rows(f"INSERT INTO sw_rows (id) VALUES ({key})")
    session.start(SLEEP)
    mysql_lab.wait_running(session, SLEEP)
    mysql_lab.cancel(session.pid)

    assert_ended(session.result().failure, QueryCanceled, layer=layer, driver=driver)
    assert session.rows("SELECT @@in_transaction") == [(1,)]
    session.rows("ROLLBACK")
    assert not _row_exists(mysql_lab, key)


def test_lock_wait_timeout(mysql_lab: Lab, layer: str, driver: str) -> None:
    key = mysql_lab.key()
    mysql_lab.sql("INSERT INTO sw_rows (id) VALUES (%s)", (key,))
    holder = mysql_lab.connect()
    holder.cursor().execute("BEGIN")
    holder.cursor().execute("SELECT * FROM sw_rows WHERE id = %s FOR UPDATE", (key,))
    # 0.1 s becomes MariaDB's shortest wait, one whole second: never shorter than asked.
    session = mysql_lab.session(layer, driver, Timeouts(lock_seconds=SHORT))
    session.rows("BEGIN")
    session.rows(f"INSERT INTO sw_rows (id) VALUES ({key + 1})")

    started = time.monotonic()
    failure = session.fail(f"UPDATE sw_rows SET v = v + 1 WHERE id = {key}")

    assert_ended(failure, LockTimeout, layer=layer, driver=driver)
    assert MARIADB_SHORTEST - 0.05 <= time.monotonic() - started < 3
    # Only the statement was undone; the transaction goes on until ROLLBACK.
    assert session.rows("SELECT @@in_transaction") == [(1,)]
    session.rows("ROLLBACK")
    assert not _row_exists(mysql_lab, key + 1)
    holder.rollback()


def test_metadata_lock_wait_timeout(mysql_lab: Lab, driver: str) -> None:
    """``lock_seconds`` also bounds waits for table (metadata) locks: ``lock_wait_timeout``."""
    table = f"sw_mdl_{mysql_lab.key()}"
    mysql_lab.sql(f"CREATE TABLE {table} (id int PRIMARY KEY)")
    try:
        holder = mysql_lab.connect()
        holder.cursor().execute("BEGIN")
        holder.cursor().execute(f"SELECT * FROM {table}")
        session = mysql_lab.session("driver", driver, Timeouts(lock_seconds=SHORT))

        failure = session.fail(f"ALTER TABLE {table} ADD COLUMN extra int")

        assert_ended(failure, LockTimeout, layer="driver", driver=driver)
        holder.rollback()
    finally:
        mysql_lab.sql(f"DROP TABLE IF EXISTS {table}")


def test_deadlock(mysql_lab: Lab, layer: str, driver: str) -> None:
    mine, theirs = mysql_lab.key(), mysql_lab.key()
    mysql_lab.sql("INSERT INTO sw_rows (id) VALUES (%s), (%s)", (mine, theirs))
    session = mysql_lab.session(layer, driver)
    session.rows("BEGIN")
    session.rows(f"UPDATE sw_rows SET v = v + 1 WHERE id = {mine}")
    holder = mysql_lab.connect()
    cursor = holder.cursor()
    cursor.execute("BEGIN")
    cursor.execute("UPDATE sw_rows SET v = v + 1 WHERE id = %s", (theirs,))
    # InnoDB rolls back the lighter transaction: make the other one heavier.
    spare = [mysql_lab.key() for _ in range(20)]
    cursor.execute("INSERT INTO sw_rows (id) VALUES " + ", ".join(["(%s)"] * len(spare)), spare)
    waiting = threading.Thread(
        target=holder.cursor().execute,
        args=("UPDATE sw_rows SET v = v + 1 WHERE id = %s", (mine,)),
    )
    waiting.start()
    mysql_lab.wait_lock_wait(holder.thread_id())

    failure = session.fail(f"UPDATE sw_rows SET v = v + 1 WHERE id = {theirs}")

    assert_ended(failure, Deadlock, layer=layer, driver=driver)
    # MariaDB rolled the whole transaction back; the connection goes on.
    assert session.rows("SELECT @@in_transaction") == [(0,)]
    waiting.join(10)
    assert not waiting.is_alive()
    holder.rollback()
    assert mysql_lab.sql("SELECT v FROM sw_rows WHERE id = %s", (mine,)) == [(0,)]


# --------------------------------------------------------------------------- connection level


def test_kill_during_a_statement(mysql_lab: Lab, layer: str, driver: str) -> None:
    key = mysql_lab.key()
    session = mysql_lab.session(layer, driver)
    session.rows("BEGIN")
    session.rows(f"INSERT INTO sw_rows (id) VALUES ({key})")
    session.start(SLEEP)
    mysql_lab.wait_running(session, SLEEP)
    mysql_lab.terminate(session.pid)

    failure = session.result().failure

    assert_ended(failure, ConnectionLost, layer=layer, driver=driver)
    assert failure is not None
    assert failure.code == "2013"
    assert session.fail("SELECT 1")
    mysql_lab.wait_gone(session.pid)
    assert not _row_exists(mysql_lab, key)


def test_kill_while_idle(mysql_lab: Lab, layer: str, driver: str) -> None:
    session = mysql_lab.session(layer, driver)
    mysql_lab.terminate(session.pid)
    mysql_lab.wait_gone(session.pid)

    failure = session.fail("SELECT 1")

    assert_ended(failure, ConnectionLost, layer=layer, driver=driver)
    assert failure.code in ("2006", "2013")


def test_idle_transaction_timeout(mysql_lab: Lab, layer: str, driver: str) -> None:
    key = mysql_lab.key()
    session = mysql_lab.session(layer, driver, Timeouts(idle_in_transaction_seconds=SHORT))
    assert session.rows("SELECT @@idle_transaction_timeout") == [(1,)]
    session.rows("BEGIN")
    session.rows(f"INSERT INTO sw_rows (id) VALUES ({key})")
    time.sleep(IDLE_PAST_LIMIT)

    failure = session.fail("SELECT 1")

    assert_ended(failure, ConnectionLost, layer=layer, driver=driver)
    assert failure.code in ("2006", "2013")
    assert not _row_exists(mysql_lab, key)


def test_wait_timeout(mysql_lab: Lab, layer: str, driver: str) -> None:
    session = mysql_lab.session(layer, driver, Timeouts(idle_session_seconds=SHORT))
    assert session.rows("SELECT @@wait_timeout") == [(1,)]
    time.sleep(IDLE_PAST_LIMIT)

    failure = session.fail("SELECT 1")

    assert_ended(failure, ConnectionLost, layer=layer, driver=driver)
    assert failure.code in ("2006", "2013")


def test_no_transaction_timeout(mysql_lab: Lab, layer: str, driver: str) -> None:
    with pytest.raises(UnsupportedSetting) as refused:
        mysql_lab.session(layer, driver, Timeouts(transaction_seconds=SHORT))
    assert refused.value.setting == "transaction_timeout"
    assert (refused.value.server or "").startswith("MariaDB 10.")
