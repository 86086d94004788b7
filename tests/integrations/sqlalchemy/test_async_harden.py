"""``harden()`` on SQLAlchemy ``AsyncEngine``s (asyncpg, psycopg async, aiomysql, asyncmy),
real servers.

Each test drives its engine with ``asyncio.run`` inside a plain test function; the admin
connection that ends sessions is synchronous, so the event loop is paused while it works
and then given a moment, as a running service's loop would have had.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("greenlet")

from sqlalchemy import event, text
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from sessionward import ConfigurationError
from sessionward.sqlalchemy import harden, holders
from tests.fix_servers import PG_ENV, _mysql_server, _pg_server, missing_server
from tests.integrations.sqlalchemy.conftest import Lab, _Databases

#: Our name for each async driver: its SQLAlchemy scheme, the module it needs, and the
#: sync driver the admin connection uses.
DRIVERS = {
    "asyncpg": ("postgresql+asyncpg", "asyncpg", "psycopg"),
    "psycopg_async": ("postgresql+psycopg", "psycopg", "psycopg"),
    "aiomysql": ("mysql+aiomysql", "aiomysql", "pymysql"),
    "aiomysql-mariadb": ("mariadb+aiomysql", "aiomysql", "pymysql"),
    "asyncmy": ("mysql+asyncmy", "asyncmy", "pymysql"),
}
#: The modules of the drivers that talk to MariaDB/MySQL.
MYSQL_MODULES = ("aiomysql", "asyncmy")
#: How harden() says it replaced a connection because of its socket or the driver's flag.
SOCKET_OR_FLAG = (
    "sessionward: the driver reports the connection closed",
    "sessionward: ping failed (the server sent something while it was idle)",
)
#: Where harden() keeps a connection's socket descriptor (in the pool entry's ``info``).
FD_KEY = "sessionward.fd"


class AsyncLab:
    def __init__(self, admin: Lab, driver: str) -> None:
        self.admin = admin
        self.driver = driver
        scheme = DRIVERS[driver][0]
        self.url = f"{scheme}://{admin.server.url_for(admin.database).split('://', 1)[1]}"
        self.engines: list[AsyncEngine] = []

    def engine(self, **kwargs: Any) -> AsyncEngine:
        made = create_async_engine(self.url, pool_size=1, max_overflow=0, **kwargs)
        self.engines.append(made)
        return made

    async def pid_of(self, connection: AsyncConnection) -> int:
        query = (
            "SELECT pg_backend_pid()"
            if self.admin.engine_kind == "postgresql"
            else "SELECT CONNECTION_ID()"
        )
        return int((await connection.execute(text(query))).scalar_one())

    async def park(self, engine: AsyncEngine) -> tuple[int, Any]:
        """Use one connection and return it to the pool: its server pid and pool ``info``."""
        async with engine.connect() as connection:
            pid = await self.pid_of(connection)
            raw = await connection.get_raw_connection()
            info = dict(raw.info)
            await connection.rollback()
        return pid, info

    async def next_use(self, engine: AsyncEngine) -> tuple[int | None, BaseException | None]:
        """The pid the next checkout runs on (after a ``SELECT 1``), or the error seen."""
        try:
            async with engine.connect() as connection:
                assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
                return await self.pid_of(connection), None
        except DBAPIError as error:
            return None, error

    def run(self, body: Callable[[], Awaitable[None]]) -> None:
        """Run ``body`` in a new event loop, and dispose of the engines in that loop."""

        async def run_and_dispose() -> None:
            try:
                await body()
            finally:
                for engine in self.engines:
                    await engine.dispose()

        asyncio.run(run_and_dispose())


@pytest.fixture(params=list(DRIVERS))
def async_lab(request: pytest.FixtureRequest, sqla_databases: _Databases) -> Iterator[AsyncLab]:
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


def _invalidations(engine: AsyncEngine) -> list[str]:
    """Why the pool replaced connections: the messages of the errors it was given."""
    seen: list[str] = []

    def on_invalidate(dbapi_connection: Any, record: Any, error: BaseException | None) -> None:
        seen.append(str(error))

    event.listen(engine.sync_engine, "invalidate", on_invalidate)
    return seen


def test_harden_returns_the_async_engine_it_was_given(async_lab: AsyncLab) -> None:
    async def run() -> None:
        engine = async_lab.engine()
        assert harden(engine) is engine
        with pytest.raises(ConfigurationError, match="already applied"):
            harden(engine.sync_engine)

    async_lab.run(run)


def test_a_terminated_idle_connection_is_replaced_at_checkout(async_lab: AsyncLab) -> None:
    async def run() -> None:
        plain = async_lab.engine()
        hardened = harden(async_lab.engine())
        replaced = _invalidations(hardened)
        plain_pid, _ = await async_lab.park(plain)
        pid, info = await async_lab.park(hardened)
        # The socket is known, so liveness is a look at it rather than a ping.
        assert isinstance(info.get(FD_KEY), int), f"no socket found for {async_lab.driver}"
        for ended in (plain_pid, pid):
            async_lab.admin.terminate(ended)
        await asyncio.sleep(0.1)  # the event loop runs on, as in a service

        new_pid, error = await async_lab.next_use(hardened)
        assert error is None, f"harden() let the application see: {error}"
        assert new_pid is not None
        assert new_pid != pid
        assert replaced, "the pool replaced nothing"
        # Found by the socket or the driver's own flag, not by pinging a connection
        # whose socket is unknown: a readable socket is confirmed by one ping, which
        # fails at once (as in the sync path).
        assert all(why.startswith(SOCKET_OR_FLAG) for why in replaced), replaced

        _, error = await async_lab.next_use(plain)
        assert error is not None, "the plain engine was expected to hand out the dead connection"

    async_lab.run(run)


def test_a_live_connection_is_reused(async_lab: AsyncLab) -> None:
    async def run() -> None:
        hardened = harden(async_lab.engine())
        replaced = _invalidations(hardened)
        pid, _ = await async_lab.park(hardened)
        assert await async_lab.next_use(hardened) == (pid, None)
        assert replaced == []

    async_lab.run(run)


def test_a_terminated_connection_is_replaced_by_a_sync_engine_of_an_async_dialect(
    async_lab: AsyncLab,
) -> None:
    async def run() -> None:
        engine = async_lab.engine()
        harden(engine.sync_engine)
        pid, info = await async_lab.park(engine)
        assert isinstance(info.get(FD_KEY), int)
        async_lab.admin.terminate(pid)
        await asyncio.sleep(0.1)
        new_pid, error = await async_lab.next_use(engine)
        assert error is None
        assert new_pid != pid

    async_lab.run(run)


def _idle_limit_args(driver: str, seconds: int) -> dict[str, Any]:
    """``connect_args`` that give every session a server idle limit of ``seconds``."""
    if driver == "asyncpg":
        return {"server_settings": {"idle_session_timeout": str(seconds * 1000)}}
    if driver == "psycopg_async":
        return {"options": f"-c idle_session_timeout={seconds * 1000}"}
    return {"init_command": f"SET SESSION wait_timeout = {seconds}"}


def test_recycle_auto_retires_a_connection_before_the_server_idle_limit(
    async_lab: AsyncLab,
) -> None:
    async def run() -> None:
        engine = harden(
            async_lab.engine(connect_args=_idle_limit_args(async_lab.driver, 2)),
            recycle="auto",
        )
        replaced = _invalidations(engine)
        first, _ = await async_lab.park(engine)
        await asyncio.sleep(1.7)  # past 80 % of the limit, still before it
        new_pid, error = await async_lab.next_use(engine)
        assert error is None
        assert new_pid != first
        assert any("retired" in why for why in replaced), replaced

    async_lab.run(run)


def test_holders_names_the_checked_out_connection(async_lab: AsyncLab) -> None:
    async def run() -> None:
        engine = harden(async_lab.engine())
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            assert len(holders(engine)) == 1
        assert holders(engine) == []

    async_lab.run(run)


class _OtherAsyncDialect(PGDialect_asyncpg):
    """An async driver harden() does not know, registered through SQLAlchemy's public
    dialect registry (none such is installed here: aiosqlite, ...)."""

    driver = "sw_other_async"


registry.register("postgresql.sw_other_async", __name__, "_OtherAsyncDialect")


def test_an_unsupported_async_driver_is_refused_and_nothing_applied() -> None:
    pytest.importorskip("asyncpg")
    engine = create_async_engine("postgresql+sw_other_async://u@127.0.0.1:1/db")
    assert engine.sync_engine.dialect.is_async
    with pytest.raises(ConfigurationError) as raised:
        harden(engine)
    message = str(raised.value)
    assert "postgresql+sw_other_async" in message
    for supported in ("asyncpg", "psycopg", "aiomysql", "asyncmy"):
        assert supported in message
    assert not event.contains(engine.sync_engine, "checkout", lambda *args: None)
    with pytest.raises(ConfigurationError, match="needs an engine given to harden"):
        holders(engine)


def test_check_threads_is_not_offered_for_async_engines() -> None:
    pytest.importorskip("asyncpg")
    engine = create_async_engine("postgresql+asyncpg://u@127.0.0.1:1/db")
    with pytest.raises(ConfigurationError, match="check_threads"):
        harden(engine, check_threads=True)
    # Nothing half-applied: no listener on the pool or on the dialect's connect.
    assert not engine.sync_engine.pool.dispatch.checkout
    assert not engine.sync_engine.dialect.dispatch.do_connect
    with pytest.raises(ConfigurationError, match="needs an engine given to harden"):
        holders(engine)
