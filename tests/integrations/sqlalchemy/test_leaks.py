"""Leak tracking: who holds each connection, warnings for long holds and lost ones, and a
pool timeout that names the holders."""

from __future__ import annotations

import gc
import inspect
import logging
import time
import warnings
from collections.abc import Iterator

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine

from sessionward.sqlalchemy import LeakWarning, PoolTimeout, QueuePool, harden, holders
from tests.fix_servers import Server
from tests.integrations.sqlalchemy.conftest import sqlalchemy_url

HERE = __file__


@pytest.fixture
def engine(pg_server: Server) -> Iterator[Engine]:
    made = sqlalchemy.create_engine(
        sqlalchemy_url(pg_server.url, "psycopg"),
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.2,
    )
    yield made
    made.dispose()


def test_holders_name_the_line_that_took_the_connection(engine: Engine) -> None:
    harden(engine)
    assert holders(engine) == []
    connection = engine.connect()
    (holder,) = holders(engine)
    assert holder.taken_at.startswith(f"{HERE}:")
    assert holder.taken_at.endswith("in test_holders_name_the_line_that_took_the_connection")
    assert holder.thread == "MainThread"
    assert 0 <= holder.held_seconds < 5
    connection.close()
    assert holders(engine) == []


def test_a_connection_held_too_long_is_reported(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    second = sqlalchemy.create_engine(engine.url, pool_size=2)
    harden(second, hold_warning_seconds=0.05)
    try:
        first = second.connect()
        time.sleep(0.1)
        with (
            caplog.at_level(logging.WARNING, "sessionward.sqlalchemy"),
            pytest.warns(LeakWarning, match="held for") as warned,
        ):
            second.connect().close()
        assert HERE in str(warned[0].message)
        assert "held for" in caplog.text
        first.close()
    finally:
        second.dispose()


def test_a_connection_garbage_collected_unreturned_is_reported(engine: Engine) -> None:
    harden(engine)

    def leak() -> None:
        connection = engine.connect()
        connection.exec_driver_sql("SELECT 1")
        # returns without closing it

    def leak_and_collect() -> None:
        leak()
        gc.collect()

    with pytest.warns(LeakWarning, match="garbage-collected without being returned") as warned:
        leak_and_collect()
    assert "in leak" in str(warned[0].message)
    assert holders(engine) == []


def test_a_connection_lost_in_a_reference_cycle_is_reported(engine: Engine) -> None:
    harden(engine)

    def leak_in_a_cycle() -> None:
        proxy = engine.raw_connection()
        proxy.cycle = proxy  # type: ignore[attr-defined]  # only the collector frees it now

    leak_in_a_cycle()
    assert len(holders(engine)) == 1
    with pytest.warns(LeakWarning, match="garbage-collected without being returned") as warned:
        gc.collect()
    assert "in leak_in_a_cycle" in str(warned[0].message)
    assert holders(engine) == []
    with engine.connect() as connection:  # and the pool has it back
        assert connection.exec_driver_sql("SELECT 1").scalar() == 1


def test_a_returned_connection_is_not_held_while_its_proxy_lives_on(engine: Engine) -> None:
    harden(engine)
    proxy = engine.raw_connection()
    proxy.close()
    assert holders(engine) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error", LeakWarning)
        with engine.connect():
            assert len(holders(engine)) == 1
        del proxy
        gc.collect()
    assert holders(engine) == []


def test_a_pool_timeout_names_the_holders(engine: Engine) -> None:
    harden(engine)
    held = engine.connect()
    with pytest.raises(sqlalchemy.exc.TimeoutError) as timeout:
        engine.connect()
    assert isinstance(timeout.value, PoolTimeout)
    assert "in test_a_pool_timeout_names_the_holders" in str(timeout.value)
    assert len(timeout.value.holders) == 1
    held.close()


def test_holders_give_the_exact_line_for_each_way_in(engine: Engine) -> None:
    with engine.connect() as used_before:  # a connection made before harden() is adopted
        used_before.exec_driver_sql("SELECT 1")
    second = sqlalchemy.create_engine(engine.url, pool_size=2)
    harden(second)
    try:
        first_line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        first = second.connect()
        with second.begin():
            second_line = first_line + 1
            taken = sorted(holder.taken_at for holder in holders(second))
        first.close()
    finally:
        second.dispose()
    name = "test_holders_give_the_exact_line_for_each_way_in"
    assert taken == sorted(f"{HERE}:{line} in {name}" for line in (first_line, second_line))
    harden(engine)
    with engine.connect():
        (holder,) = holders(engine)
    assert holder.taken_at.startswith(f"{HERE}:")
