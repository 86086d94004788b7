"""Timeouts through PgBouncer in transaction mode: per transaction, never leaking.

``sw_tiny_transaction`` has a single server connection, so every client of it
runs on the same server session in turn: a setting that outlived its
transaction would show to the next client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from sessionward.core import Timeouts
from sessionward.errors import PoolerRefused, StatementTimeout, classify
from sessionward.psycopg import psycopg_kwargs
from sessionward.sqlalchemy import apply_timeouts, apply_transaction_timeouts
from tests.fix_pgbouncer import Bouncer

sqlalchemy = pytest.importorskip("sqlalchemy")
psycopg = pytest.importorskip("psycopg")

DRIVERS = ("psycopg", "psycopg2")
LIMITS = Timeouts(statement_seconds=0.2, lock_seconds=0.1)


def engine_for(bouncer: Bouncer, driver: str, **kwargs: Any) -> Any:
    url = bouncer.url_for("sw_tiny_transaction").replace("postgresql://", f"postgresql+{driver}://")
    return sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **kwargs)


@pytest.fixture
def engines() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for engine in made:
        engine.dispose()


def seen_by_another_client(bouncer: Bouncer) -> str:
    """``statement_timeout`` as the next client of the single server connection sees it."""
    with psycopg.connect(bouncer.url_for("sw_tiny_transaction"), autocommit=True) as other:
        return str(other.execute("SHOW statement_timeout").fetchone()[0])


@pytest.mark.parametrize("driver", DRIVERS)
def test_limits_hold_inside_each_transaction_and_leak_to_nobody(
    pgbouncer: Bouncer, engines: list[Any], driver: str
) -> None:
    engine = engine_for(pgbouncer, driver)
    engines.append(engine)
    apply_transaction_timeouts(engine, LIMITS)
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("SHOW statement_timeout")).scalar() == "200ms"
        assert conn.execute(sqlalchemy.text("SHOW lock_timeout")).scalar() == "100ms"
        with pytest.raises(sqlalchemy.exc.OperationalError) as raised:
            conn.execute(sqlalchemy.text("SELECT pg_sleep(2)"))
        assert classify(raised.value) is StatementTimeout
        conn.rollback()
        # A new transaction on the same connection gets the limits again.
        assert conn.execute(sqlalchemy.text("SHOW statement_timeout")).scalar() == "200ms"
        conn.commit()
    assert seen_by_another_client(pgbouncer) == "0"


@pytest.mark.parametrize("driver", DRIVERS)
def test_session_level_limits_would_leak_through_the_same_pool(
    pgbouncer: Bouncer, engines: list[Any], driver: str
) -> None:
    """What the per-transaction way avoids: ``apply_timeouts``' session SET outlives its client."""
    engine = engine_for(pgbouncer, driver)
    engines.append(engine)
    apply_timeouts(engine, LIMITS)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
            conn.commit()
        assert seen_by_another_client(pgbouncer) == "200ms"
    finally:
        with psycopg.connect(pgbouncer.url_for("sw_tiny_transaction"), autocommit=True) as other:
            other.execute("RESET ALL")


@pytest.mark.parametrize("driver", DRIVERS)
def test_startup_options_refused_by_the_pooler_move_into_each_transaction(
    pgbouncer: Bouncer, engines: list[Any], driver: str
) -> None:
    options = psycopg_kwargs(LIMITS)["options"]
    plain = engine_for(pgbouncer, driver, connect_args={"options": options})
    engines.append(plain)
    with pytest.raises(sqlalchemy.exc.OperationalError) as refused:
        plain.connect()
    assert classify(refused.value) is PoolerRefused

    engine = engine_for(pgbouncer, driver, connect_args={"options": options})
    engines.append(engine)
    apply_transaction_timeouts(engine, Timeouts())
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("SHOW statement_timeout")).scalar() == "200ms"
        with pytest.raises(sqlalchemy.exc.OperationalError) as raised:
            conn.execute(sqlalchemy.text("SELECT pg_sleep(2)"))
        assert classify(raised.value) is StatementTimeout
        conn.rollback()
    assert seen_by_another_client(pgbouncer) == "0"
    with contextlib.suppress(Exception):
        plain.dispose()
