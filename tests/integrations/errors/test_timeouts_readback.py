"""Every ``Timeouts`` field, set through each adapter, read back from a live connection."""

from __future__ import annotations

import sys

import pytest

from sessionward import Timeouts, UnsupportedSetting
from sessionward.psycopg import apply_timeouts as apply_psycopg
from sessionward.psycopg import psycopg_kwargs
from sessionward.psycopg2 import apply_timeouts as apply_psycopg2
from sessionward.pymysql import apply_timeouts as apply_pymysql
from sessionward.pymysql import pymysql_kwargs
from tests.fix_servers import mysql_connect
from tests.integrations.errors._client import client_settings
from tests.integrations.errors._layers import LAYERS, PG_DRIVERS
from tests.integrations.errors.conftest import Lab

PG_EVERYTHING = Timeouts(
    statement_seconds=1.5,
    lock_seconds=0.25,
    idle_in_transaction_seconds=3,
    idle_session_seconds=240,
    transaction_seconds=5,
    connect_seconds=1,  # libpq's floor is 2 s
    keepalive_idle_seconds=31,
    keepalive_interval_seconds=11,
    max_keepalive_probes=4,
    tcp_user_timeout_seconds=61.5,
)
PG_SHOWN = {
    "statement_timeout": "1500ms",
    "lock_timeout": "250ms",
    "idle_in_transaction_session_timeout": "3s",
    "idle_session_timeout": "4min",
    "transaction_timeout": "5s",
}
MARIADB_EVERYTHING = Timeouts(
    statement_seconds=1.5,
    lock_seconds=2.2,  # whole seconds, rounded up
    idle_in_transaction_seconds=3.5,
    idle_session_seconds=240,
    connect_seconds=2.5,
)
MARIADB_SELECT = (
    "SELECT @@max_statement_time, @@innodb_lock_wait_timeout, @@lock_wait_timeout, "
    "@@idle_transaction_timeout, @@wait_timeout"
)
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads TCP socket options the Linux way"
)


def _shown(lab: Lab, session: object, with_transaction: bool) -> dict[str, str]:
    names = [name for name in PG_SHOWN if with_transaction or name != "transaction_timeout"]
    return {name: session.rows(f"SHOW {name}")[0][0] for name in names}  # type: ignore[attr-defined]


@pytest.mark.parametrize("driver", PG_DRIVERS)
@pytest.mark.parametrize("layer", LAYERS)
def test_postgresql_reads_back_every_field(pg_lab: Lab, layer: str, driver: str) -> None:
    supported = pg_lab.version >= 170000
    timeouts = PG_EVERYTHING if supported else PG_EVERYTHING.evolve(transaction_seconds=None)
    session = pg_lab.session(layer, driver, timeouts)

    expected = {k: v for k, v in PG_SHOWN.items() if supported or k != "transaction_timeout"}
    assert _shown(pg_lab, session, supported) == expected
    client = session.client()
    assert client["connect_timeout"] == "2"
    if sys.platform.startswith("linux"):
        assert client["keepalive"] == 1
        assert client["keepalive_idle"] == 31
        assert client["keepalive_interval"] == 11
        assert client["keepalive_count"] == 4
        assert client["tcp_user_timeout_ms"] == 61500


@pytest.mark.parametrize("layer", LAYERS)
def test_postgresql_zero_turns_limits_off(pg_lab: Lab, layer: str) -> None:
    off = Timeouts(statement_seconds=0, lock_seconds=0, idle_in_transaction_seconds=0)
    session = pg_lab.session(layer, "psycopg", off)
    for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"):
        assert session.rows(f"SHOW {name}") == [("0",)]


@pytest.mark.parametrize("layer", LAYERS)
def test_mariadb_reads_back_every_field(mysql_lab: Lab, layer: str) -> None:
    session = mysql_lab.session(layer, "pymysql", MARIADB_EVERYTHING)

    assert session.rows(MARIADB_SELECT) == [(1.5, 3, 3, 4, 240)]


def test_mariadb_connect_timeout(mysql_lab: Lab) -> None:
    conn = mysql_connect(mysql_lab.url, **pymysql_kwargs(MARIADB_EVERYTHING, flavor="mariadb"))
    try:
        assert conn.connect_timeout == 2.5
    finally:
        conn.close()


def test_mariadb_zero_means_no_limit(mysql_lab: Lab) -> None:
    off = Timeouts(statement_seconds=0, lock_seconds=0, idle_session_seconds=0)
    session = mysql_lab.session("driver", "pymysql", off)
    # 0 would mean "do not wait" for InnoDB, so "no limit" is each variable's largest value.
    assert session.rows(MARIADB_SELECT)[0] == (0.0, 100000000, 31536000, 0, 31536000)


def test_mariadb_auto_flavor_runs_only_its_own_part(mysql_lab: Lab) -> None:
    """``flavor="auto"``: MariaDB runs ``/*M! */`` and skips MySQL's ``/*!80000 */``."""
    timeouts = Timeouts(statement_seconds=0.75, lock_seconds=2, idle_session_seconds=60)
    kwargs = pymysql_kwargs(timeouts, flavor="auto", allow_partial=True)
    assert "/*M!" in kwargs["init_command"]
    assert "/*!80000" in kwargs["init_command"]
    conn = mysql_connect(mysql_lab.url, **kwargs)
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT @@max_statement_time, @@innodb_lock_wait_timeout, @@wait_timeout")
        assert cursor.fetchall() == ((0.75, 2, 60),)
    finally:
        conn.close()


def test_mariadb_init_command_of_your_own_is_kept(mysql_lab: Lab) -> None:
    kwargs = pymysql_kwargs(
        Timeouts(lock_seconds=2), flavor="mariadb", init_command="SET SESSION sql_mode = 'ANSI'"
    )
    conn = mysql_connect(mysql_lab.url, **kwargs)
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT @@sql_mode, @@innodb_lock_wait_timeout")
        mode, lock = cursor.fetchone()
        assert "ANSI_QUOTES" in mode
        assert lock == 2
    finally:
        conn.close()


def test_libpq_options_of_your_own_are_kept(pg_lab: Lab) -> None:
    import psycopg

    kwargs = psycopg_kwargs(Timeouts(statement_seconds=2), options="-c application_name=sw_mine")
    with psycopg.connect(pg_lab.url, **kwargs) as conn:
        assert conn.execute("SHOW application_name").fetchone() == ("sw_mine",)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("2s",)


# --------------------------------------------------------------------------- open connections


def test_apply_to_an_open_psycopg_connection_survives_rollback(pg_lab: Lab) -> None:
    import psycopg

    with psycopg.connect(pg_lab.url) as conn:  # not autocommit
        apply_psycopg(conn, Timeouts(statement_seconds=0.5, lock_seconds=1))
        conn.rollback()
        assert conn.execute("SHOW statement_timeout").fetchone() == ("500ms",)
        assert conn.execute("SHOW lock_timeout").fetchone() == ("1s",)


def test_apply_refuses_a_connection_inside_a_transaction(pg_lab: Lab) -> None:
    import psycopg

    from sessionward import ConfigurationError

    with psycopg.connect(pg_lab.url) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(ConfigurationError, match="inside a transaction"):
            apply_psycopg(conn, Timeouts(statement_seconds=1))


def test_apply_to_an_open_psycopg2_connection(pg_lab: Lab) -> None:
    import psycopg2

    conn = psycopg2.connect(pg_lab.url)
    try:
        apply_psycopg2(conn, Timeouts(idle_in_transaction_seconds=7))
        conn.rollback()
        cursor = conn.cursor()
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        assert cursor.fetchone() == ("7s",)
    finally:
        conn.close()


def test_apply_checks_the_version_of_an_open_connection(pg_lab: Lab) -> None:
    import psycopg

    with psycopg.connect(pg_lab.url, autocommit=True) as conn:
        if pg_lab.version >= 170000:
            apply_psycopg(conn, Timeouts(transaction_seconds=9))
            assert conn.execute("SHOW transaction_timeout").fetchone() == ("9s",)
        else:
            with pytest.raises(UnsupportedSetting, match="transaction_timeout"):
                apply_psycopg(conn, Timeouts(transaction_seconds=9))


def test_apply_to_an_open_pymysql_connection_detects_the_flavor(mysql_lab: Lab) -> None:
    conn = mysql_connect(mysql_lab.url)
    try:
        apply_pymysql(conn, Timeouts(statement_seconds=0.5, idle_in_transaction_seconds=9))
        cursor = conn.cursor()
        cursor.execute("SELECT @@max_statement_time, @@idle_transaction_timeout")
        assert cursor.fetchall() == ((0.5, 9),)
    finally:
        conn.close()


@linux_only
def test_psycopg_pool_kwargs_and_configure(pg_lab: Lab) -> None:
    psycopg_pool = pytest.importorskip("psycopg_pool")
    timeouts = Timeouts(statement_seconds=2, keepalive_idle_seconds=45)
    with (
        psycopg_pool.ConnectionPool(
            pg_lab.url,
            min_size=1,
            kwargs=psycopg_kwargs(timeouts),
            configure=lambda conn: apply_psycopg(conn, timeouts.evolve(lock_seconds=3)),
            open=True,
        ) as pool,
        pool.connection() as conn,
    ):
        assert conn.execute("SHOW statement_timeout").fetchone() == ("2s",)
        assert conn.execute("SHOW lock_timeout").fetchone() == ("3s",)
        assert client_settings(conn)["keepalive_idle"] == 45
