"""Async chaos: money transfers under terminated sessions and a server restart.

8 asyncio tasks move money between 100 accounts, each transfer under a unique id,
through a ``harden()``ed ``AsyncEngine`` and ``@transaction`` on an ``async def``.
A chaos thread terminates a random application session every 200 ms
(``pg_terminate_backend`` / ``KILL``) and restarts the server once.  A plain
SQLAlchemy task runs beside them as the control.  Afterwards, as in the sync
``test_chaos.py``:

- the total balance is what it was;
- each transfer id is applied at most once;
- every transfer the application was told succeeded is applied;
- the only error the application saw is ``CommitOutcomeUnknown``, and each of
  those transfers is applied zero or one times;
- no connection is held, and the pool works;
- the control saw errors.

Runs on servers of our own (an embedded PostgreSQL, a throwaway ``mariadbd``),
which it restarts: asyncpg and psycopg (async) on PostgreSQL, aiomysql on MariaDB.
On PostgreSQL it runs straight to the server and through a PgBouncer in
transaction mode in front of it, as the sync test does (``postgresql_route``):
psycopg with ``prepare_threshold=None``, asyncpg with no statement cache
(``prepared_statement_cache_size=0``, ``statement_cache_size=0``) and a unique
name per prepared statement, since SQLAlchemy's asyncpg dialect prepares every
statement and PgBouncer 1.18 keeps none across transactions.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("greenlet")

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from sessionward.errors import CommitOutcomeUnknown
from sessionward.sqlalchemy import Backoff, harden, holders, transaction
from tests.fix_pgbouncer import Bouncer
from tests.integrations.errors._own_servers import OwnMariaDB, OwnPostgres
from tests.integrations.sqlalchemy.conftest import wait_until
from tests.integrations.sqlalchemy.test_chaos import (
    ACCOUNTS,
    CHAOS_INTERVAL_SECONDS,
    OPENING_BALANCE,
    RESTART_AFTER_SECONDS,
    RETRIES,
    RUN_SECONDS,
    Chaos,
    Outcomes,
    _prefix,
    _prepare,
    postgresql_route,
    went_through,
)

TASKS = 8

pytestmark = pytest.mark.slow


async def _transfer(
    session: AsyncSession, transfer_id: int, source: int, target: int, amount: int
) -> None:
    # Lock in id order, so the tasks rarely deadlock (a deadlock is rerun anyway).
    for account, delta in sorted(((source, -amount), (target, amount))):
        await session.execute(
            text("UPDATE sw_accounts SET balance = balance + :delta WHERE id = :id"),
            {"delta": delta, "id": account},
        )
    await session.execute(
        text("INSERT INTO sw_transfers (id, amount) VALUES (:id, :amount)"),
        {"id": transfer_id, "amount": amount},
    )


def _chaos_thread(chaos: Chaos, outcomes: Outcomes, stop: threading.Event) -> threading.Thread:
    """Terminate a random application session every 200 ms; restart the server once."""

    def make_chaos() -> None:
        rng = random.Random(42)
        started = time.monotonic()
        restarted = False
        while not stop.wait(CHAOS_INTERVAL_SECONDS):
            if not restarted and time.monotonic() - started > RESTART_AFTER_SECONDS:
                chaos.restart()
                chaos.close()
                restarted = True
                outcomes.restarts += 1
                continue
            pids = chaos.app_pids()
            if pids:
                chaos.terminate(rng.choice(pids))
                outcomes.kills += 1

    def run() -> None:
        try:
            make_chaos()
        except BaseException as error:
            outcomes.chaos_errors.append(error)

    return threading.Thread(target=run, name="sw-async-chaos")


async def _run_async(
    chaos: Chaos,
    app_url: str,
    connect_args: dict[str, Any],
    outcomes: Outcomes,
    pooler: Bouncer | None = None,
) -> None:
    engine = harden(create_async_engine(app_url, pool_size=TASKS, connect_args=connect_args))
    control_engine = create_async_engine(app_url, pool_size=1, connect_args=connect_args)
    factory = async_sessionmaker(engine)
    fast = Backoff(initial_seconds=0.02, max_seconds=1.0)
    transfer = transaction(factory, retries=RETRIES, backoff=fast)(_transfer)
    ids = itertools.count(1)
    stop = asyncio.Event()
    chaos_stop = threading.Event()

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            transfer_id = next(ids)
            source, target = rng.sample(range(1, ACCOUNTS + 1), 2)
            try:
                await transfer(transfer_id, source, target, rng.randint(1, 50))
            except CommitOutcomeUnknown:
                outcomes.unknown.add(transfer_id)
            except Exception as error:
                outcomes.unexpected.append(error)
            else:
                outcomes.succeeded.add(transfer_id)

    async def control() -> None:
        rng = random.Random(0)
        session = AsyncSession(control_engine)
        while not stop.is_set():
            source, target = rng.sample(range(1, ACCOUNTS + 1), 2)
            try:
                await _transfer(session, -next(ids), source, target, 1)
                await session.commit()
                outcomes.control_ok += 1
            except Exception as error:
                outcomes.control_errors.append(error)
                await session.rollback()  # what a careful application does
                await asyncio.sleep(0.05)
        await session.close()

    monkey = _chaos_thread(chaos, outcomes, chaos_stop)
    tasks = [asyncio.ensure_future(worker(n)) for n in range(TASKS)]
    tasks.append(asyncio.ensure_future(control()))
    monkey.start()
    try:
        await asyncio.sleep(RUN_SECONDS)
    finally:
        stop.set()
        chaos_stop.set()
        done, pending = await asyncio.wait(tasks, timeout=60)
        await asyncio.get_running_loop().run_in_executor(None, monkey.join, 60)
    try:
        assert not pending, "tasks still running a minute after the stop"
        for task in done:
            task.result()  # nothing escaped a task
        assert not monkey.is_alive()
        print(
            f"{chaos.kind} {app_url.split(':', 1)[0]}: {len(outcomes.succeeded)} transfers "
            f"done, {len(outcomes.unknown)} outcome unknown, {outcomes.kills} sessions "
            f"terminated, {outcomes.restarts} restart; the control: {outcomes.control_ok} "
            f"done, {len(outcomes.control_errors)} errors"
        )
        assert outcomes.chaos_errors == []
        assert outcomes.restarts == 1
        assert outcomes.unexpected == [], f"the application saw: {outcomes.unexpected[:3]}"
        assert outcomes.kills >= 5
        assert len(outcomes.succeeded) > 50, "too few transfers to mean anything"
        ((total,),) = chaos.sql(f"SELECT sum(balance) FROM {_prefix(chaos)}sw_accounts")
        assert int(total) == ACCOUNTS * OPENING_BALANCE
        applied = {
            int(transfer_id): int(times)
            for transfer_id, times in chaos.sql(
                f"SELECT id, count(*) FROM {_prefix(chaos)}sw_transfers WHERE id > 0 GROUP BY id"
            )
        }
        assert max(applied.values()) == 1, "a transfer was applied twice"
        missing = outcomes.succeeded - applied.keys()
        assert not missing, f"transfers reported done but not applied: {sorted(missing)[:10]}"
        assert set(applied) <= outcomes.succeeded | outcomes.unknown
        assert holders(engine) == []
        async with transaction(factory) as session:
            count = (await session.execute(text("SELECT count(*) FROM sw_accounts"))).scalar()
            assert count == ACCOUNTS
        assert outcomes.control_errors, "the plain control was expected to see errors"
        if pooler is not None:
            went_through(pooler, len(outcomes.succeeded))
    finally:
        await engine.dispose()
        await control_engine.dispose()
        chaos.close()


def _run(
    chaos: Chaos, app_url: str, connect_args: dict[str, Any], pooler: Bouncer | None = None
) -> None:
    _prepare(chaos)
    asyncio.run(_run_async(chaos, app_url, connect_args, Outcomes(), pooler))


@pytest.mark.parametrize("via", ["direct", "pgbouncer"])
@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_async_chaos_on_postgresql(
    own_pg: OwnPostgres, start_pgbouncer: Callable[..., Bouncer], driver: str, via: str
) -> None:
    pytest.importorskip(driver)
    chaos = Chaos("postgresql", own_pg.url, own_pg.restart)
    url, connect_args, pooler = postgresql_route(via, own_pg, start_pgbouncer, driver)
    _run(chaos, f"postgresql+{driver}://{url.split('://', 1)[1]}", connect_args, pooler)


def test_async_chaos_on_mariadb(own_mariadb: OwnMariaDB) -> None:
    pytest.importorskip("aiomysql")
    chaos = Chaos("mysql", own_mariadb.url, own_mariadb.restart)
    wait_until("MariaDB answers", lambda: bool(chaos.sql("SELECT 1")))
    url = own_mariadb.url.rsplit("/", 1)[0] + "/sw_chaos"
    _run(chaos, f"mysql+aiomysql://{url.split('://', 1)[1]}", {})
