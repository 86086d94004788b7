"""mysqlclient (``mysql+mysqldb://``, SQLAlchemy's default MySQL driver) behind ``harden()``:
timeouts read back from the server, errors classified through SQLAlchemy's wrappers, and a
terminated session replaced at checkout.  (Kills, idle timeouts and ``transaction()`` reruns
also run on mysqlclient through the ``lab`` fixture's ``mysql-mysqldb`` parameter.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from sessionward import SessionEnded, StatementTimeout, Timeouts, classify, translate
from sessionward.sqlalchemy import classify_errors, harden
from tests.fix_servers import _mysql_server
from tests.integrations.sqlalchemy.conftest import Lab, need_mysqlclient, wait_until


@pytest.fixture
def mysqlclient_lab(sqla_databases: Any) -> Iterator[Lab]:
    need_mysqlclient()
    server = _mysql_server()
    made = Lab(server, sqla_databases.on(server), "mysqldb")
    yield made
    made.close()


def test_timeouts_are_read_back_from_the_server(mysqlclient_lab: Lab) -> None:
    timeouts = Timeouts(
        statement_seconds=2, lock_seconds=3, idle_session_seconds=600, connect_seconds=2.5
    )
    engine = harden(mysqlclient_lab.engine(), timeouts=timeouts)
    with engine.connect() as connection:
        row = connection.exec_driver_sql(
            "SELECT @@max_statement_time, @@innodb_lock_wait_timeout, @@wait_timeout"
        ).one()
    assert (float(row[0]), int(row[1]), int(row[2])) == (2.0, 3, 600)


def test_a_statement_timeout_is_classified_through_sqlalchemy(mysqlclient_lab: Lab) -> None:
    engine = harden(mysqlclient_lab.engine(), timeouts=Timeouts(statement_seconds=0.2))
    classify_errors(engine)
    with engine.connect() as connection, pytest.raises(DBAPIError) as raised:
        connection.exec_driver_sql("SELECT SLEEP(5)")
    assert classify(raised.value) is StatementTimeout
    with pytest.raises(StatementTimeout), translate():
        raise raised.value
    with engine.connect() as connection:  # the connection survived a statement-level ending
        assert connection.exec_driver_sql("SELECT 1").scalar() == 1


def test_a_session_killed_mid_statement_is_classified_and_invalidated(
    mysqlclient_lab: Lab,
) -> None:
    engine = harden(mysqlclient_lab.engine(pool_size=1, max_overflow=0))
    classify_errors(engine)
    with engine.connect() as connection:
        pid = mysqlclient_lab.pid_of(connection)
        killer = threading.Thread(target=_kill_when_sleeping, args=(mysqlclient_lab, pid))
        killer.start()
        try:
            with pytest.raises(DBAPIError) as raised:
                connection.exec_driver_sql("SELECT SLEEP(10)")
        finally:
            killer.join()
    assert raised.value.connection_invalidated
    ending = classify(raised.value)
    # libmariadb reports the kill as a lost connection (2013): a connection-level ending.
    assert ending is not None
    assert issubclass(ending, SessionEnded)
    with engine.connect() as connection:  # no error: a new session
        assert mysqlclient_lab.pid_of(connection) != pid


def _kill_when_sleeping(lab: Lab, pid: int) -> None:
    wait_until(
        f"pid {pid} sleeps",
        lambda: bool(
            lab.sql(
                "SELECT 1 FROM information_schema.PROCESSLIST "
                "WHERE ID = %s AND INFO LIKE 'SELECT SLEEP%%'",
                (pid,),
            )
        ),
    )
    lab.sql(f"KILL CONNECTION {int(pid)}")
