"""Session endings through the asyncio drivers, raw and under SQLAlchemy's AsyncEngine.

asyncpg and psycopg's ``AsyncConnection`` on PostgreSQL, aiomysql on MariaDB:
each ending is provoked for real and the error the application sees must
classify (and translate) to the ending, with the server's code where the
driver keeps one.  Plain ``asyncio.run`` inside sync tests: no async test
plugin is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from sessionward.errors import (
    ConnectionLost,
    QueryCanceled,
    SessionTerminated,
    StatementTimeout,
    classify,
    translate,
)
from tests.fix_servers import Server, unique

SLEEP_SECONDS = 30
LAYERS = ("raw", "sqlalchemy")
MYSQL_DRIVERS = ("aiomysql", "asyncmy")


@dataclass
class AsyncSession:
    """One async connection through one driver and layer, and its server session id."""

    pid: int
    run: Callable[[str], Awaitable[Any]]
    close: Callable[[], Awaitable[Any]]


async def _open(driver: str, layer: str, url: str, name: str) -> AsyncSession:
    if layer == "sqlalchemy":
        return await _open_sqlalchemy(driver, url, name)
    if driver == "asyncpg":
        import asyncpg

        raw_pg = await asyncpg.connect(url, server_settings={"application_name": name})
        return AsyncSession(raw_pg.get_server_pid(), raw_pg.execute, raw_pg.close)
    if driver == "psycopg":
        import psycopg

        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, application_name=name)
        return AsyncSession(conn.info.backend_pid, conn.execute, conn.close)
    from sqlalchemy.engine import make_url

    if driver == "asyncmy":
        return await _open_asyncmy(make_url(url))
    import aiomysql

    parts = make_url(url)
    my = await aiomysql.connect(
        host=parts.host,
        port=parts.port or 3306,
        user=parts.username,
        password=parts.password or "",
        db=parts.database,
        autocommit=True,
    )

    async def run_mysql(sql: str) -> Any:
        async with my.cursor() as cursor:
            await cursor.execute(sql)
            return await cursor.fetchall()

    async def close_mysql() -> None:
        my.close()

    return AsyncSession(my.thread_id(), run_mysql, close_mysql)


async def _open_asyncmy(parts: Any) -> AsyncSession:
    import asyncmy

    my = await asyncmy.connect(
        host=parts.host,
        port=parts.port or 3306,
        user=parts.username,
        password=parts.password or "",
        database=parts.database,
        autocommit=True,
    )

    async def run_mysql(sql: str) -> Any:
        async with my.cursor() as cursor:
            await cursor.execute(sql)
            return await cursor.fetchall()

    async def close_mysql() -> None:
        my.close()

    return AsyncSession(my.thread_id(), run_mysql, close_mysql)


async def _open_sqlalchemy(driver: str, url: str, name: str) -> AsyncSession:
    pytest.importorskip("greenlet", reason="SQLAlchemy's AsyncEngine needs greenlet")
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    parts = make_url(url)
    dialect = f"mysql+{driver}" if driver in MYSQL_DRIVERS else f"postgresql+{driver}"
    # Only psycopg takes libpq's application_name in the URL.
    query = {"application_name": name} if driver == "psycopg" else {}
    engine = create_async_engine(parts.set(drivername=dialect).update_query_dict(query))
    conn = await engine.connect()
    pid_sql = "SELECT CONNECTION_ID()" if driver in MYSQL_DRIVERS else "SELECT pg_backend_pid()"
    pid = (await conn.exec_driver_sql(pid_sql)).scalar_one()
    await conn.commit()

    async def run(sql: str) -> Any:
        result = await conn.exec_driver_sql(sql)
        return result.all() if result.returns_rows else None

    async def close() -> None:
        await conn.close()
        await engine.dispose()

    return AsyncSession(int(pid), run, close)


@dataclass(frozen=True)
class Seen:
    """What the application saw, judged by ``classify`` and ``translate``."""

    raised: str
    classified: type[BaseException] | None
    translated: type[BaseException] | None
    code: str | None


def _judge(error: BaseException) -> Seen:
    translated: BaseException | None = None
    try:
        with translate():
            raise error
    except Exception as caught:
        translated = caught
    assert translated is not None
    code = getattr(translated, "code", None) if translated is not error else None
    if translated is not error:
        assert translated.__cause__ is error
    return Seen(
        raised=f"{type(error).__module__}.{type(error).__qualname__}: {error}",
        classified=classify(error),
        translated=type(translated) if translated is not error else None,
        code=code,
    )


# --------------------------------------------------------------------------- server side


def _sleep_sql(server: Server) -> str:
    return (
        f"SELECT pg_sleep({SLEEP_SECONDS})"
        if server.engine == "postgresql"
        else (f"SELECT SLEEP({SLEEP_SECONDS})")
    )


def _running(server: Server, pid: int) -> bool:
    if server.engine == "postgresql":
        sql = "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active'"
    else:
        sql = "SELECT 1 FROM information_schema.processlist WHERE id = %s AND command = 'Query'"
    return bool(server.execute(sql, (pid,)))


def _gone(server: Server, pid: int) -> bool:
    if server.engine == "postgresql":
        sql = "SELECT 1 FROM pg_stat_activity WHERE pid = %s"
    else:
        sql = "SELECT 1 FROM information_schema.processlist WHERE id = %s"
    return not server.execute(sql, (pid,))


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.02)


def _end(server: Server, pid: int, *, whole_session: bool) -> None:
    if server.engine == "postgresql":
        verb = "terminate" if whole_session else "cancel"
        assert server.execute(f"SELECT pg_{verb}_backend(%s)", (pid,)) == [(True,)]
    else:
        server.execute(f"KILL {'' if whole_session else 'QUERY '}%s", (pid,))


# --------------------------------------------------------------------------- scenarios


async def _during_a_statement(
    server: Server, driver: str, layer: str, *, whole_session: bool
) -> Seen:
    session = await _open(driver, layer, server.url, unique("sw_async"))
    try:
        statement = asyncio.ensure_future(session.run(_sleep_sql(server)))
        await _until(lambda: _running(server, session.pid), "the statement runs")
        await asyncio.to_thread(_end, server, session.pid, whole_session=whole_session)
        return _judge(await _failure(asyncio.wait_for(statement, timeout=10)))
    finally:
        await _quietly(session.close())


async def _while_idle(server: Server, driver: str, layer: str) -> Seen:
    session = await _open(driver, layer, server.url, unique("sw_async"))
    try:
        await asyncio.to_thread(_end, server, session.pid, whole_session=True)
        await _until(lambda: _gone(server, session.pid), "the session is gone")
        await asyncio.sleep(0.2)  # let the driver read the FATAL (or the EOF) while idle
        return _judge(await _failure(session.run("SELECT 1")))
    finally:
        await _quietly(session.close())


async def _statement_timeout(server: Server, driver: str, layer: str) -> Seen:
    session = await _open(driver, layer, server.url, unique("sw_async"))
    try:
        if server.engine == "postgresql":
            await session.run("SET statement_timeout = 100")
        else:
            await session.run("SET SESSION max_statement_time = 0.1")
        return _judge(await _failure(session.run(_sleep_sql(server))))
    finally:
        await _quietly(session.close())


async def _failure(statement: Awaitable[Any]) -> Exception:
    """The error ``statement`` raised; the test fails if it succeeded."""
    try:
        outcome = await statement
    except Exception as error:
        return error
    pytest.fail(f"the statement succeeded ({outcome!r}) instead of failing")


async def _quietly(closing: Awaitable[Any]) -> None:
    # Closing a connection the server already ended may complain.
    with contextlib.suppress(Exception):
        await closing


# --------------------------------------------------------------------------- PostgreSQL

PG_DRIVERS = ("asyncpg", "psycopg")


def _need(driver: str) -> None:
    pytest.importorskip(driver, reason=f"{driver} is not installed (extra: sessionward[{driver}])")


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("driver", PG_DRIVERS)
def test_pg_cancel(pg_server: Server, driver: str, layer: str) -> None:
    _need(driver)
    seen = asyncio.run(_during_a_statement(pg_server, driver, layer, whole_session=False))
    assert (seen.classified, seen.translated, seen.code) == (
        QueryCanceled,
        QueryCanceled,
        "57014",
    ), seen.raised


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("driver", PG_DRIVERS)
def test_pg_terminate_during_a_statement(pg_server: Server, driver: str, layer: str) -> None:
    _need(driver)
    seen = asyncio.run(_during_a_statement(pg_server, driver, layer, whole_session=True))
    # asyncpg says 08003 ("connection does not exist") and chains the server's 57P01.
    assert (seen.classified, seen.translated, seen.code) == (
        SessionTerminated,
        SessionTerminated,
        "57P01",
    ), seen.raised


@pytest.mark.parametrize("layer", LAYERS)
def test_pg_terminate_while_idle_psycopg(pg_server: Server, layer: str) -> None:
    _need("psycopg")
    seen = asyncio.run(_while_idle(pg_server, "psycopg", layer))
    assert (seen.classified, seen.translated, seen.code) == (
        SessionTerminated,
        SessionTerminated,
        "57P01",
    ), seen.raised


@pytest.mark.parametrize("layer", LAYERS)
def test_pg_terminate_while_idle_asyncpg(pg_server: Server, layer: str) -> None:
    """asyncpg closes the connection on an idle FATAL and keeps no trace of its SQLSTATE."""
    _need("asyncpg")
    seen = asyncio.run(_while_idle(pg_server, "asyncpg", layer))
    assert (seen.classified, seen.translated, seen.code) == (
        ConnectionLost,
        ConnectionLost,
        None,
    ), seen.raised
    assert "InternalClientError" not in seen.raised


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("driver", PG_DRIVERS)
def test_pg_statement_timeout(pg_server: Server, driver: str, layer: str) -> None:
    _need(driver)
    seen = asyncio.run(_statement_timeout(pg_server, driver, layer))
    assert (seen.classified, seen.translated, seen.code) == (
        StatementTimeout,
        StatementTimeout,
        "57014",
    ), seen.raised


# --------------------------------------------------------------------------- MariaDB


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("driver", MYSQL_DRIVERS)
def test_mariadb_kill_query(mysql_server: Server, driver: str, layer: str) -> None:
    _need(driver)
    seen = asyncio.run(_during_a_statement(mysql_server, driver, layer, whole_session=False))
    assert (seen.classified, seen.translated, seen.code) == (
        QueryCanceled,
        QueryCanceled,
        "1317",
    ), seen.raised


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("driver", MYSQL_DRIVERS)
def test_mariadb_kill_during_a_statement(mysql_server: Server, driver: str, layer: str) -> None:
    _need(driver)
    seen = asyncio.run(_during_a_statement(mysql_server, driver, layer, whole_session=True))
    # MariaDB just closes the socket on KILL: the client reports 2013 with no reason.
    assert (seen.classified, seen.translated, seen.code) == (
        ConnectionLost,
        ConnectionLost,
        "2013",
    ), seen.raised


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("driver", MYSQL_DRIVERS)
def test_mariadb_kill_while_idle(mysql_server: Server, driver: str, layer: str) -> None:
    _need(driver)
    seen = asyncio.run(_while_idle(mysql_server, driver, layer))
    # aiomysql reads the server's close as 2013, asyncmy as 2006 ("gone away").
    assert (seen.classified, seen.translated, seen.code) == (
        ConnectionLost,
        ConnectionLost,
        "2013" if driver == "aiomysql" else "2006",
    ), seen.raised


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("driver", MYSQL_DRIVERS)
def test_mariadb_statement_timeout(mysql_server: Server, driver: str, layer: str) -> None:
    _need(driver)
    seen = asyncio.run(_statement_timeout(mysql_server, driver, layer))
    assert (seen.classified, seen.translated, seen.code) == (
        StatementTimeout,
        StatementTimeout,
        "1969",
    ), seen.raised


async def _terminated_just_before_a_statement(server: Server, tries: int) -> list[Seen]:
    """sqlalchemy#13241: a termination racing the next statement under the AsyncEngine.

    Depending on where the FATAL lands, asyncpg raises ``ConnectionDoesNotExistError``
    (with the server's 57P01 chained), ``InterfaceError`` or ``InternalClientError``
    ("cannot switch to state …; another operation is in progress").
    """
    pytest.importorskip("greenlet", reason="SQLAlchemy's AsyncEngine needs greenlet")
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    url = make_url(server.url).set(drivername="postgresql+asyncpg")
    engine = create_async_engine(url, pool_size=1, max_overflow=0)
    killer = create_async_engine(url)
    seen: list[Seen] = []
    try:
        async with killer.connect() as admin:
            for _ in range(tries):
                async with engine.connect() as conn:
                    pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()
                    await admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
                    try:
                        await conn.exec_driver_sql("SELECT 2")
                    except Exception as error:
                        seen.append(_judge(error))
    finally:
        await engine.dispose()
        await killer.dispose()
    return seen


def test_asyncpg_termination_racing_a_statement(pg_server: Server) -> None:
    _need("asyncpg")
    seen = asyncio.run(_terminated_just_before_a_statement(pg_server, tries=60))
    assert seen, "no statement failed after its session was terminated"
    for one in seen:
        assert (one.classified, one.code) in ((SessionTerminated, "57P01"), (ConnectionLost, None))
        assert one.translated is one.classified, one.raised
        if "InternalClientError" in one.raised:  # the race of sqlalchemy#13241
            assert one.classified is ConnectionLost, one.raised
