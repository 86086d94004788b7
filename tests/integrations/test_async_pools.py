"""The drivers' own async pools with sessionward's hooks, against the real PostgreSQL:
asyncpg's ``Pool`` (``sessionward.asyncpg``) and psycopg_pool's ``AsyncConnectionPool``
(``sessionward.psycopg.async_pool``).

Each test's sessions carry an application name of their own, so the server's view
(``pg_stat_activity``) tells them apart from everything else on the shared server.
"""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from sessionward import Timeouts
from sessionward.core import ConfigurationError
from tests.fix_servers import PG_ENV, missing_server, unique

#: How long the server may take to let go of a session (its backend exiting).
LET_GO_SECONDS = 3.0


@pytest.fixture
def pg_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        missing_server(f"no PostgreSQL: set {PG_ENV}")
    assert url is not None
    return url


class Admin:
    """A psycopg connection of the test's own (autocommit), to watch and end sessions.
    Synchronous on purpose: while it waits, the event loop does not run, so the pool's
    driver cannot read what the server sent meanwhile."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.connection = psycopg.connect(url, autocommit=True)

    def rows(self, sql: str, params: Any = None) -> list[Any]:
        return self.connection.execute(sql, params).fetchall()

    def pids(self, app: str) -> list[int]:
        return [
            r[0]
            for r in self.rows(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,)
            )
        ]

    def busy(self, app: str) -> list[Any]:
        """Sessions of ``app`` running a statement or holding a transaction open."""
        return self.rows(
            "SELECT pid, state, query FROM pg_stat_activity "
            "WHERE application_name = %s AND state <> 'idle'",
            (app,),
        )

    def terminate_and_wait(self, pid: int) -> None:
        """End the backend, and wait (blocking the loop) until the server lists it no more."""
        assert self.rows("SELECT pg_terminate_backend(%s)", (pid,))[0][0]
        deadline = time.monotonic() + LET_GO_SECONDS
        while self.rows("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)):
            assert time.monotonic() < deadline, f"backend {pid} did not exit"
            time.sleep(0.02)

    def wait_idle(self, app: str) -> None:
        deadline = time.monotonic() + LET_GO_SECONDS
        while busy := self.busy(app):
            assert time.monotonic() < deadline, f"left behind on the server: {busy}"
            time.sleep(0.05)

    def wait_gone(self, app: str) -> None:
        deadline = time.monotonic() + LET_GO_SECONDS
        while pids := self.pids(app):
            assert time.monotonic() < deadline, f"sessions left: {pids}"
            time.sleep(0.05)

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def admin(pg_url: str) -> Iterator[Admin]:
    made = Admin(pg_url)
    yield made
    made.close()


# --------------------------------------------------------------------------- pools


class PoolKit:
    """One driver's pool, made the sessionward way, with the few calls the tests need."""

    def __init__(self, driver: str, url: str) -> None:
        self.driver = driver
        self.url = url
        self.app = unique("sw_apool")
        self.queries: list[str] = []

    @asynccontextmanager
    async def pool(self, **options: Any) -> AsyncIterator[Any]:
        if self.driver == "asyncpg":
            import sessionward.asyncpg

            async def note_queries(connection: Any) -> None:
                connection.add_query_logger(lambda record: self.queries.append(record.query))

            options.setdefault("max_size", 2)
            pool = await sessionward.asyncpg.create_pool(
                self.url,
                min_size=1,
                init=note_queries,
                server_settings={"application_name": self.app},
                **options,
            )
            try:
                yield pool
            finally:
                await pool.close()
        else:
            from psycopg_pool import AsyncConnectionPool

            import sessionward.psycopg

            options.setdefault("max_size", 2)
            pool = sessionward.psycopg.async_pool(
                self.url,
                min_size=1,
                open=False,
                kwargs={"application_name": self.app, "autocommit": True},
                **options,
            )
            assert isinstance(pool, AsyncConnectionPool)
            await pool.open(wait=True)
            try:
                yield pool
            finally:
                await pool.close()

    def acquire(self, pool: Any) -> Any:
        return pool.acquire() if self.driver == "asyncpg" else pool.connection()

    async def value(self, connection: Any, sql: str) -> Any:
        if self.driver == "asyncpg":
            return await connection.fetchval(sql)
        return (await (await connection.execute(sql)).fetchone())[0]

    async def pid(self, pool: Any) -> int:
        async with self.acquire(pool) as connection:
            return int(await self.value(connection, "SELECT pg_backend_pid()"))

    def holders(self, pool: Any) -> list[Any]:
        if self.driver == "asyncpg":
            import sessionward.asyncpg

            return sessionward.asyncpg.holders(pool)
        import sessionward.psycopg

        return sessionward.psycopg.async_pool_holders(pool)


DRIVERS = ["asyncpg", "psycopg_async"]


@pytest.fixture(params=DRIVERS)
def kit(request: pytest.FixtureRequest, pg_url: str) -> PoolKit:
    pytest.importorskip("asyncpg" if request.param == "asyncpg" else "psycopg_pool")
    return PoolKit(request.param, pg_url)


def run(coroutine: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coroutine

    return asyncio.run(main())


def test_a_backend_terminated_while_idle_in_the_pool_is_never_handed_out(
    kit: PoolKit, admin: Admin
) -> None:
    async def scenario() -> None:
        async with kit.pool(max_size=1) as pool:
            first = await kit.pid(pool)
            # The loop does not run while the admin waits: the driver has not read
            # the server's FATAL, and thinks its connection open.
            admin.terminate_and_wait(first)
            second = await kit.pid(pool)  # no error reaches the application
            assert second != first
            assert admin.pids(kit.app) == [second]

    run(scenario())


def test_a_quiet_connection_is_handed_out_without_a_round_trip(pg_url: str) -> None:
    """Counted with asyncpg's query logger, which sees every statement sent."""
    pytest.importorskip("asyncpg")
    kit = PoolKit("asyncpg", pg_url)

    async def scenario() -> None:
        async with kit.pool(max_size=1) as pool:
            await kit.pid(pool)
            kit.queries.clear()
            async with kit.acquire(pool) as connection:
                assert kit.queries == []  # acquire sent nothing
                await connection.execute("SELECT 1")
            assert kit.queries[0] == "SELECT 1"

    run(scenario())


def test_a_connection_idle_past_recycle_is_replaced(kit: PoolKit, admin: Admin) -> None:
    async def scenario() -> None:
        async with kit.pool(max_size=1, recycle=0.5) as pool:
            first = await kit.pid(pool)
            assert await kit.pid(pool) == first  # not idle long: kept
            await asyncio.sleep(0.8)
            second = await kit.pid(pool)
            assert second != first
        admin.wait_gone(kit.app)

    run(scenario())


def test_recycle_auto_retires_before_the_servers_idle_session_timeout(
    kit: PoolKit, admin: Admin
) -> None:
    """``idle_session_timeout`` = 2 s: retired after 1 s idle, before the server ends it,
    and the replacement is silent (the server never had to end a session: no FATAL)."""

    async def scenario() -> None:
        timeouts = Timeouts(idle_session_seconds=2)
        async with kit.pool(max_size=1, timeouts=timeouts) as pool:
            first = await kit.pid(pool)
            await asyncio.sleep(1.3)
            assert first in admin.pids(kit.app), "the server ended it first"
            second = await kit.pid(pool)
            assert second != first

    run(scenario())


def test_leaks_name_the_task_and_the_line(kit: PoolKit) -> None:
    async def scenario() -> None:
        async with kit.pool(max_size=2, hold_warning_seconds=0.2) as pool:
            taken = asyncio.Event()
            done = asyncio.Event()

            async def hold() -> None:
                async with kit.acquire(pool):  # THE LINE
                    taken.set()
                    await done.wait()

            task = asyncio.create_task(hold(), name="leaky-handler")
            await taken.wait()
            found = kit.holders(pool)
            assert len(found) == 1, found
            assert found[0].task == "leaky-handler"
            assert found[0].taken_at.startswith(f"{__file__}:{_line_of('# THE LINE')} in hold")
            await asyncio.sleep(0.3)
            with pytest.warns(ResourceWarning, match="leaky-handler"):
                await kit.pid(pool)  # an acquire looks for connections held too long
            done.set()
            await task
            assert kit.holders(pool) == []

    with warnings.catch_warnings():
        run(scenario())


def _line_of(marker: str) -> int:
    with open(__file__, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if line.rstrip().endswith(marker) and "_line_of" not in line:
                return number
    raise AssertionError(marker)


def test_a_task_cancelled_mid_statement_returns_its_connection_clean(
    kit: PoolKit, admin: Admin
) -> None:
    async def scenario() -> None:
        async with kit.pool(max_size=1) as pool:
            pid = await kit.pid(pool)

            async def work() -> None:
                async with kit.acquire(pool) as connection:
                    if kit.driver == "asyncpg":
                        async with connection.transaction():
                            await connection.execute("CREATE TEMP TABLE t_cancel (x int)")
                            await connection.execute("SELECT pg_sleep(30)")
                    else:
                        async with connection.transaction():
                            await connection.execute("CREATE TEMP TABLE t_cancel (x int)")
                            await connection.execute("SELECT pg_sleep(30)")

            with pytest.raises(asyncio.TimeoutError):  # not the builtin before 3.11
                await asyncio.wait_for(work(), 0.5)
            admin.wait_idle(kit.app)  # no statement running, no transaction open
            started = time.monotonic()
            async with kit.acquire(pool) as connection:
                # The transaction was rolled back: its temporary table is gone.
                assert await kit.value(connection, "SELECT to_regclass('pg_temp.t_cancel') IS NULL")
                assert await kit.value(connection, "SELECT pg_backend_pid()") in (
                    pid,
                    *admin.pids(kit.app),
                )
            assert time.monotonic() - started < 2.0

    run(scenario())


@pytest.mark.parametrize(
    "options",
    [
        {"recycle": "soon"},
        {"liveness": "sometimes"},
        {"timeouts": 30},
        {"hold_warning_seconds": 0},
        {"track_leaks": "yes"},
    ],
    ids=lambda options: next(iter(options)),
)
def test_a_wrong_argument_is_one_configuration_error(kit: PoolKit, options: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with kit.pool(**options):
            raise AssertionError("made a pool")

    with pytest.raises(ConfigurationError, match=next(iter(options))):
        run(scenario())


def test_the_public_names_are_pinned() -> None:
    import sessionward.asyncpg
    import sessionward.psycopg

    assert sessionward.asyncpg.__all__ == [
        "ConnectionReplaced",
        "Holder",
        "LeakWarning",
        "create_pool",
        "holders",
        "pool_kwargs",
    ]
    assert {"async_pool", "async_pool_args", "async_pool_holders"} <= set(
        sessionward.psycopg.__all__
    )


def test_holders_of_a_pool_not_made_by_sessionward_is_a_configuration_error() -> None:
    import sessionward.asyncpg
    import sessionward.psycopg

    with pytest.raises(ConfigurationError, match="create_pool"):
        sessionward.asyncpg.holders(object())
    with pytest.raises(ConfigurationError, match="async_pool"):
        sessionward.psycopg.async_pool_holders(object())
