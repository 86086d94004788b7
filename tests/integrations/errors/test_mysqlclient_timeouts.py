"""``Timeouts`` through mysqlclient (the real ``MySQLdb``), read back from a live MariaDB.

Raw (``mysqlclient_kwargs``, ``apply_timeouts``), under SQLAlchemy
(``mysql+mysqldb``) and under Django's MySQL engine (``database_options``).
"""

from __future__ import annotations

import pytest

from sessionward import Timeouts
from sessionward.mysqlclient import apply_timeouts, mysqlclient_kwargs
from tests.integrations.errors._layers import LAYERS, MYSQLCLIENT, mysqlclient_connect
from tests.integrations.errors.conftest import Lab
from tests.integrations.errors.test_timeouts_readback import MARIADB_EVERYTHING, MARIADB_SELECT

MySQLdb = pytest.importorskip(
    "MySQLdb", reason="mysqlclient not installed (needs libmariadb-dev and pkg-config to build)"
)
pytestmark = pytest.mark.mysql


def _select(conn: object, sql: str) -> tuple[tuple[object, ...], ...]:
    cursor = conn.cursor()  # type: ignore[attr-defined]
    try:
        cursor.execute(sql)
        return tuple(cursor.fetchall())
    finally:
        cursor.close()


@pytest.mark.parametrize("layer", LAYERS)
def test_mariadb_reads_back_every_field(mysql_lab: Lab, layer: str) -> None:
    session = mysql_lab.session(layer, MYSQLCLIENT, MARIADB_EVERYTHING)

    assert session.driver == MYSQLCLIENT
    assert session.rows(MARIADB_SELECT) == [(1.5, 3, 3, 4, 240)]


def test_connect_timeout_is_whole_seconds_and_accepted(mysql_lab: Lab) -> None:
    kwargs = mysqlclient_kwargs(MARIADB_EVERYTHING, flavor="mariadb")
    # mysqlclient takes an int: 2.5 s is rounded up, never down.
    assert kwargs["connect_timeout"] == 3
    conn = mysqlclient_connect(mysql_lab.url, **kwargs)
    try:
        assert type(conn).__module__ == "MySQLdb.connections"
        assert _select(conn, "SELECT @@wait_timeout") == ((240,),)
    finally:
        conn.close()


def test_zero_means_no_limit(mysql_lab: Lab) -> None:
    off = Timeouts(statement_seconds=0, lock_seconds=0, idle_session_seconds=0, connect_seconds=0)
    assert "connect_timeout" not in mysqlclient_kwargs(off, flavor="mariadb")
    session = mysql_lab.session("driver", MYSQLCLIENT, off)

    assert session.rows(MARIADB_SELECT)[0] == (0.0, 100000000, 31536000, 0, 31536000)


def test_auto_flavor_and_an_init_command_of_your_own(mysql_lab: Lab) -> None:
    timeouts = Timeouts(statement_seconds=0.75, lock_seconds=2, idle_session_seconds=60)
    kwargs = mysqlclient_kwargs(
        timeouts, flavor="auto", allow_partial=True, init_command="SET SESSION sql_mode = 'ANSI'"
    )
    conn = mysqlclient_connect(mysql_lab.url, **kwargs)
    try:
        rows = _select(
            conn,
            "SELECT @@sql_mode, @@max_statement_time, @@innodb_lock_wait_timeout, @@wait_timeout",
        )
    finally:
        conn.close()

    mode, statement, lock, idle = rows[0]
    assert "ANSI_QUOTES" in str(mode)
    assert (statement, lock, idle) == (0.75, 2, 60)


def test_apply_to_an_open_connection_detects_the_flavor(mysql_lab: Lab) -> None:
    conn = mysqlclient_connect(mysql_lab.url)
    try:
        apply_timeouts(conn, Timeouts(statement_seconds=0.5, idle_in_transaction_seconds=9))

        assert _select(conn, "SELECT @@max_statement_time, @@idle_transaction_timeout") == (
            (0.5, 9),
        )
    finally:
        conn.close()
