"""``transaction()`` on coroutines, for real: reruns apply once, COMMIT is never rerun,
cancellation leaves nothing behind, and the wrong side is one ``ConfigurationError``.

Each test drives its engine with ``asyncio.run`` (``AsyncLab.run``); sessions are ended
from a synchronous admin connection, after which the loop is given a moment, as a
running service's loop would have had.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

pytest.importorskip("greenlet")

import sqlalchemy
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

from sessionward import ConfigurationError
from sessionward.errors import CommitOutcomeUnknown, SessionEnded
from sessionward.sqlalchemy import Backoff, harden, transaction
from tests.fix_proxy import Proxy
from tests.fix_servers import PG_ENV, _mysql_server, _pg_server, missing_server
from tests.integrations.sqlalchemy.conftest import Lab, _Databases
from tests.integrations.sqlalchemy.test_async_harden import DRIVERS, MYSQL_MODULES, AsyncLab

_keys = itertools.count(int(time.time() * 1000) % 10**9 * 1000 + 500)
FAST = Backoff(initial_seconds=0.01, jitter=0)
#: The drivers tested here: each server's, and both of PostgreSQL's.
TESTED = ["asyncpg", "psycopg_async", "aiomysql", "asyncmy"]
#: Drivers whose COMMIT after an ending while idle is reported unknown, not rerun: they
#: read their socket eagerly and keep what they read (see ``_ended_before_commit``).
NO_LOOK_BEFORE_COMMIT = {"aiomysql", "asyncmy"}


@pytest.fixture(params=TESTED)
def lab(request: pytest.FixtureRequest, sqla_databases: _Databases) -> Iterator[AsyncLab]:
    driver = request.param
    _, module, admin_driver = DRIVERS[driver]
    pytest.importorskip(module)
    if module in MYSQL_MODULES:
        server = _mysql_server()
    else:
        if not os.environ.get(PG_ENV):
            missing_server(f"no PostgreSQL: set {PG_ENV}")
        server = _pg_server(request, "env")
    admin = Lab(server, sqla_databases.on(server), admin_driver)
    made = AsyncLab(admin, driver)
    yield made
    admin.close()


def _count(lab: AsyncLab, key: int) -> int:
    return int(lab.admin.sql("SELECT count(*) FROM sw_items WHERE id = %s", (key,))[0][0])


async def _insert(unit: AsyncSession | AsyncConnection, key: int) -> None:
    await unit.execute(text("INSERT INTO sw_items (id, note) VALUES (:id, 'x')"), {"id": key})


async def _pid(lab: AsyncLab, unit: AsyncSession | AsyncConnection) -> int:
    connection = await unit.connection() if isinstance(unit, AsyncSession) else unit
    return await lab.pid_of(connection)


async def _terminate(lab: AsyncLab, pid: int) -> None:
    lab.admin.terminate(pid)
    await asyncio.sleep(0.05)  # the loop reads what the server sent, as it would have


def test_the_decorator_reruns_the_whole_unit_and_the_row_exists_once(lab: AsyncLab) -> None:
    key = next(_keys)
    attempts: list[int] = []

    async def run() -> None:
        factory = async_sessionmaker(harden(lab.engine()))

        @transaction(factory, backoff=FAST)
        async def unit(session: AsyncSession, key: int) -> str:
            attempts.append(1)
            await _insert(session, key)
            if len(attempts) == 1:
                await _terminate(lab, await _pid(lab, session))
            await session.execute(text("SELECT 1"))
            return "done"

        assert await unit(key) == "done"

    lab.run(run)
    assert len(attempts) == 2
    assert _count(lab, key) == 1


@pytest.mark.parametrize("loop_ran", [True, False], ids=["loop-ran", "at-once"])
def test_a_session_ended_while_idle_before_commit(lab: AsyncLab, loop_ran: bool) -> None:
    """Rerun where the driver shows the ending before COMMIT; else reported unknown.

    ``at-once``: COMMIT comes before the event loop has read the server's goodbye, which
    is then still on the socket (asyncpg's, as ``harden()`` found it, or psycopg's).
    """
    key = next(_keys)
    attempts: list[int] = []
    outcome: list[BaseException] = []

    async def run() -> None:
        engine = harden(lab.engine())

        @transaction(async_sessionmaker(engine), backoff=FAST)
        async def unit(session: AsyncSession) -> None:
            attempts.append(1)
            await _insert(session, key)
            if len(attempts) == 1:
                pid = await _pid(lab, session)
                if loop_ran:
                    await _terminate(lab, pid)
                else:
                    lab.admin.terminate(pid)

        try:
            await unit()
        except CommitOutcomeUnknown as unknown:
            outcome.append(unknown)
        async with transaction(engine) as connection:  # the pool serves a live one
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1

    lab.run(run)
    if lab.driver in NO_LOOK_BEFORE_COMMIT:
        assert len(outcome) == 1
        assert isinstance(outcome[0].__cause__, DBAPIError)
        assert len(attempts) == 1
        assert _count(lab, key) == 0  # the server rolled it back when it ended the session
    else:
        assert outcome == []
        assert len(attempts) == 2
        assert _count(lab, key) == 1


def _kill_at_first_commit(lab: AsyncLab, engine: AsyncEngine) -> None:
    """End the session just as COMMIT is about to be sent, the first time only."""
    done: list[int] = []
    query = (
        "SELECT pg_backend_pid()"
        if lab.admin.engine_kind == "postgresql"
        else "SELECT CONNECTION_ID()"
    )

    @event.listens_for(engine.sync_engine, "commit")
    def kill(connection: Any) -> None:
        if not done:
            done.append(1)
            lab.admin.terminate(int(connection.exec_driver_sql(query).scalar()))


def test_an_interrupted_commit_is_not_rerun(lab: AsyncLab) -> None:
    key = next(_keys)
    attempts: list[int] = []

    async def run() -> None:
        engine = lab.engine()
        _kill_at_first_commit(lab, engine)

        @transaction(async_sessionmaker(engine), backoff=FAST)
        async def unit(session: AsyncSession) -> None:
            attempts.append(1)
            await _insert(session, key)

        with pytest.raises(CommitOutcomeUnknown) as unknown:
            await unit()
        assert isinstance(unknown.value.__cause__, DBAPIError)

    lab.run(run)
    assert len(attempts) == 1
    assert _count(lab, key) <= 1


def test_an_idempotent_unit_is_rerun_after_an_interrupted_commit(lab: AsyncLab) -> None:
    key = next(_keys)
    attempts: list[int] = []

    async def run() -> None:
        engine = lab.engine()
        _kill_at_first_commit(lab, engine)

        @transaction(engine, idempotent=True, backoff=FAST)
        async def unit(connection: AsyncConnection) -> None:
            attempts.append(1)
            await connection.execute(
                text("DELETE FROM sw_items WHERE id = :id"), {"id": key}
            )  # idempotent: whatever the first COMMIT did, one row in the end
            await _insert(connection, key)

        await unit()

    lab.run(run)
    assert len(attempts) == 2
    assert _count(lab, key) == 1


def test_a_block_ended_mid_way_raises_the_ending_and_the_session_stays_usable(
    lab: AsyncLab,
) -> None:
    key = next(_keys)

    async def run() -> None:
        session = AsyncSession(harden(lab.engine()))

        async def unit_of_work() -> None:
            async with transaction(session) as unit:
                await _insert(unit, key)
                await _terminate(lab, await _pid(lab, unit))
                await unit.execute(text("SELECT 1"))

        with pytest.raises(SessionEnded) as ended:
            await unit_of_work()
        assert isinstance(ended.value.__cause__, DBAPIError)
        # No PendingRollbackError: the session was rolled back and closed.
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
        await session.close()

    lab.run(run)
    assert _count(lab, key) == 0


def test_other_errors_roll_back_and_pass_through(lab: AsyncLab) -> None:
    key = next(_keys)

    async def run() -> None:
        engine = lab.engine()
        async with transaction(engine) as connection:
            await _insert(connection, key)

        async def duplicate() -> None:
            async with transaction(async_sessionmaker(engine)) as session:
                await _insert(session, key + 1)
                await _insert(session, key)

        async def failing() -> None:
            async with transaction(engine) as connection:
                await _insert(connection, key + 2)
                raise RuntimeError("the unit failed")

        with pytest.raises(IntegrityError):
            await duplicate()
        with pytest.raises(RuntimeError, match="the unit failed"):
            await failing()
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]

    lab.run(run)
    assert [_count(lab, key + n) for n in range(3)] == [1, 0, 0]


def test_a_cancelled_unit_is_not_rerun_and_leaves_nothing_open(lab: AsyncLab) -> None:
    key = next(_keys)
    attempts: list[int] = []
    sleep = "SELECT pg_sleep(5)" if lab.admin.engine_kind == "postgresql" else "SELECT SLEEP(5)"

    async def run() -> None:
        engine = harden(lab.engine())
        sleeping = asyncio.Event()

        @transaction(async_sessionmaker(engine), backoff=FAST)
        async def unit(session: AsyncSession) -> None:
            attempts.append(1)
            await _insert(session, key)
            sleeping.set()
            await session.execute(text(sleep))

        # Cancelled once its statement runs on the server, however long a loaded
        # machine took to get there (a fixed deadline from the start could fire
        # before the unit even began).
        task = asyncio.ensure_future(unit())
        await asyncio.wait_for(sleeping.wait(), 30)
        await asyncio.sleep(0.3)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 3
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        async with transaction(engine) as connection:  # the pool still serves
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1

    lab.run(run)
    assert len(attempts) == 1
    assert _count(lab, key) == 0


def test_one_transaction_object_entered_by_concurrent_tasks(lab: AsyncLab) -> None:
    keys = [next(_keys) for _ in range(4)]

    async def run() -> None:
        engine = create_async_engine(lab.url, pool_size=4)
        lab.engines.append(engine)
        shared = transaction(async_sessionmaker(engine))

        async def insert(key: int, pause: float) -> None:
            async with shared as session:
                await asyncio.sleep(pause)
                await _insert(session, key)
                await asyncio.sleep(pause)

        # The first in leaves first: not the last-in, first-out order of nested blocks.
        await asyncio.gather(*(insert(key, 0.02 * (n + 1)) for n, key in enumerate(keys)))

    lab.run(run)
    assert [_count(lab, key) for key in keys] == [1, 1, 1, 1]


def _on_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{port}")))


@pytest.mark.parametrize("bind", ["engine", "sessionmaker"])
def test_a_server_out_of_reach_at_checkout_is_rerun_until_it_is_back(
    lab: AsyncLab, bind: str
) -> None:
    """Nothing of the unit ran, so the connect is retried with the unit; when the server
    stays away, the last attempt's ending is raised."""
    key = next(_keys)
    target = urlsplit(lab.url)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 0)
    with socket.socket() as unused:  # a port nobody listens on: connects are refused
        unused.bind(("127.0.0.1", 0))
        refused_port = unused.getsockname()[1]
    connects: list[int] = []
    bodies: list[int] = []

    async def body(unit: Any) -> None:
        bodies.append(1)
        await _insert(unit, key)

    def unit_on(port: int, retries: int) -> Any:
        engine = create_async_engine(_on_port(lab.url, port))
        lab.engines.append(engine)
        event.listen(engine.sync_engine, "do_connect", lambda *args: connects.append(1))
        made: Any = engine if bind == "engine" else async_sessionmaker(engine)
        return transaction(made, retries=retries, backoff=FAST)(body)

    async def run() -> None:
        with pytest.raises(SessionEnded) as ended:
            await unit_on(refused_port, 2)()
        assert ended.value.__cause__ is not None
        assert (len(connects), len(bodies)) == (2, 0)

        connects.clear()
        proxy.down()  # accepts, then hangs up: a server going away
        asyncio.get_running_loop().call_later(0.3, proxy.up)
        await unit_on(proxy.port, 50)()
        assert len(connects) > 2
        assert len(bodies) == 1

    try:
        lab.run(run)
    finally:
        proxy.close()
    assert _count(lab, key) == 1


# --------------------------------------------------------------------------- bad input

URL = "postgresql+asyncpg://nobody@127.0.0.1:1/none"


def test_a_sync_bind_in_a_coroutine_is_one_configuration_error() -> None:
    pytest.importorskip("asyncpg")
    engine = sqlalchemy.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")

    async def run() -> None:
        for bind in (engine, Session(engine), sessionmaker(engine)):
            with pytest.raises(ConfigurationError, match="create_async_engine"):
                async with transaction(bind):
                    pass
        with pytest.raises(ConfigurationError, match="async_sessionmaker"):

            @transaction(sessionmaker(engine))
            async def unit(session: Any) -> None:
                pass

        # A plain callable that makes a synchronous Session: found when it is called.
        with pytest.raises(ConfigurationError, match="synchronous Session in a coroutine"):
            async with transaction(lambda: Session(engine)):
                pass

    asyncio.run(run())
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    engine.dispose()


def test_an_async_bind_outside_a_coroutine_is_one_configuration_error() -> None:
    pytest.importorskip("asyncpg")
    engine = create_async_engine(URL)
    for bind in (engine, AsyncSession(engine), async_sessionmaker(engine)):
        with pytest.raises(ConfigurationError, match="async with"), transaction(bind):
            pass
    with pytest.raises(ConfigurationError, match="decorate an async def"):

        @transaction(async_sessionmaker(engine))
        def unit(session: Any) -> None:
            pass

    with pytest.raises(ConfigurationError, match="pass the AsyncEngine itself"):
        transaction(engine.sync_engine)
    with pytest.raises(ConfigurationError, match="AsyncEngine, an AsyncSession"):
        transaction(42)  # type: ignore[call-overload]
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
