"""``harden(async_engine, timeouts=...)`` and default TCP keepalives, on real servers:
the server shows the limits, the driver's socket shows the options."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("greenlet")

from sqlalchemy import event, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from sessionward import ConfigurationError, Timeouts, UnsupportedSetting
from sessionward.integrations.sqlalchemy._liveness import find_socket
from sessionward.sqlalchemy import harden
from tests.fix_servers import PG_ENV, _mysql_server, _pg_server, missing_server
from tests.integrations.sqlalchemy.conftest import Lab, _Databases
from tests.integrations.sqlalchemy.test_async_harden import DRIVERS, FD_KEY, MYSQL_MODULES, AsyncLab

LIMITS = Timeouts(statement_seconds=1.5, lock_seconds=2, idle_in_transaction_seconds=30)
#: What the server shows for ``LIMITS``: PostgreSQL in milliseconds, MariaDB in seconds.
PG_SHOWN = {
    "statement_timeout": "1500",
    "lock_timeout": "2000",
    "idle_in_transaction_session_timeout": "30000",
}
MARIADB_SHOWN = {
    "max_statement_time": 1.5,
    "innodb_lock_wait_timeout": 2,
    "lock_wait_timeout": 2,
    "idle_transaction_timeout": 30,
}


@pytest.fixture(params=list(DRIVERS))
def async_lab(request: pytest.FixtureRequest, sqla_databases: _Databases) -> Iterator[AsyncLab]:
    _, module, admin_driver = DRIVERS[request.param]
    pytest.importorskip(module)
    if module in MYSQL_MODULES:
        server = _mysql_server()
    else:
        if not os.environ.get(PG_ENV):
            missing_server(f"no PostgreSQL: set {PG_ENV}")
        server = _pg_server(request, "env")
    admin = Lab(server, sqla_databases.on(server), admin_driver)
    yield AsyncLab(admin, request.param)
    admin.close()


def _postgresql(lab: AsyncLab) -> bool:
    return lab.admin.engine_kind == "postgresql"


async def _shown(lab: AsyncLab, connection: AsyncConnection) -> dict[str, Any]:
    if _postgresql(lab):
        rows = await connection.execute(
            text("SELECT name, setting FROM pg_settings WHERE name = ANY(:names)"),
            {"names": list(PG_SHOWN)},
        )
        return {str(row[0]): row[1] for row in rows}
    row = (
        await connection.execute(text("SELECT " + ", ".join(f"@@{name}" for name in MARIADB_SHOWN)))
    ).one()
    return {name: float(value) for name, value in zip(MARIADB_SHOWN, row, strict=True)}


def _expected(lab: AsyncLab) -> dict[str, Any]:
    return PG_SHOWN if _postgresql(lab) else MARIADB_SHOWN


def test_timeouts_are_set_on_every_new_connection_and_survive_a_rollback(
    async_lab: AsyncLab,
) -> None:
    async def run() -> None:
        engine = harden(async_lab.engine(), timeouts=LIMITS)
        plain = async_lab.engine()
        async with plain.connect() as connection:
            assert await _shown(async_lab, connection) != _expected(async_lab)
        async with engine.connect() as connection:
            assert await _shown(async_lab, connection) == _expected(async_lab)
            await connection.rollback()
            assert await _shown(async_lab, connection) == _expected(async_lab)
        async with engine.connect() as first:
            first_pid = await async_lab.pid_of(first)
            await first.invalidate()
        async with engine.connect() as second:
            assert await async_lab.pid_of(second) != first_pid
            assert await _shown(async_lab, second) == _expected(async_lab)

    async_lab.run(run)


def test_the_statement_limit_ends_a_long_statement(async_lab: AsyncLab) -> None:
    sleep = "SELECT pg_sleep(10)" if _postgresql(async_lab) else "SELECT SLEEP(10)"

    async def run() -> None:
        engine = harden(async_lab.engine(), timeouts=LIMITS)
        started = time.monotonic()
        with pytest.raises(DBAPIError):
            async with engine.connect() as connection:
                await connection.execute(text(sleep))
        assert 1.4 < time.monotonic() - started < 5

    async_lab.run(run)


def test_recycle_auto_sees_the_idle_limit_set_by_timeouts(async_lab: AsyncLab) -> None:
    async def run() -> None:
        engine = harden(
            async_lab.engine(), timeouts=Timeouts(idle_session_seconds=2), recycle="auto"
        )
        retired: list[str] = []
        event.listen(
            engine.sync_engine, "invalidate", lambda conn, rec, error: retired.append(str(error))
        )
        pid, _ = await async_lab.park(engine)
        await asyncio.sleep(1.7)  # past 80 % of the limit, before it
        new_pid, error = await async_lab.next_use(engine)
        assert error is None
        assert new_pid != pid
        assert any("retired" in why for why in retired), retired

    async_lab.run(run)


def test_a_limit_the_server_lacks_is_refused(async_lab: AsyncLab) -> None:
    engine = async_lab.engine()
    if not _postgresql(async_lab):
        # No MariaDB/MySQL has one: refused before anything is registered.
        with pytest.raises(UnsupportedSetting, match="no transaction timeout"):
            harden(engine, timeouts=Timeouts(transaction_seconds=5))
        assert not engine.sync_engine.pool.dispatch.checkout
        return
    version = int(async_lab.admin.sql("SHOW server_version_num")[0][0])
    if version >= 170000:
        pytest.fail("this test needs a PostgreSQL older than 17 (transaction_timeout)")
    harden(engine, timeouts=Timeouts(transaction_seconds=5))

    async def run() -> None:
        with pytest.raises(UnsupportedSetting, match="needs PostgreSQL 17"):
            async with engine.connect():
                pass

    async_lab.run(run)


def test_a_limit_no_server_accepts_is_refused_before_anything_is_applied() -> None:
    pytest.importorskip("asyncpg")
    engine = create_async_engine("postgresql+asyncpg://u@127.0.0.1:1/db")
    with pytest.raises(ConfigurationError, match="too long"):
        harden(engine, timeouts=Timeouts(statement_seconds=10**8))
    assert not engine.sync_engine.pool.dispatch.checkout
    assert not engine.sync_engine.dialect.dispatch.do_connect


# --------------------------------------------------------------------------- sockets

_OPTIONS = {
    "SO_KEEPALIVE": (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    "TCP_KEEPIDLE": (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
    "TCP_KEEPINTVL": (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
    "TCP_KEEPCNT": (socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    "TCP_USER_TIMEOUT": (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
}
DEFAULT_OPTIONS = {
    "SO_KEEPALIVE": 1,
    "TCP_KEEPIDLE": 30,
    "TCP_KEEPINTVL": 10,
    "TCP_KEEPCNT": 3,
    "TCP_USER_TIMEOUT": 60000,
}


async def _socket_options(lab: AsyncLab, connection: AsyncConnection) -> dict[str, int]:
    """The options of the connection's own socket: the one whose local port the server
    names as this session's client port."""
    raw = await connection.get_raw_connection()
    driver_connection = raw.driver_connection
    fd = driver_connection.fileno() if lab.driver == "psycopg_async" else raw.info[FD_KEY]
    if _postgresql(lab):
        query = "SELECT inet_client_port()"
    else:
        query = (
            "SELECT SUBSTRING_INDEX(HOST, ':', -1) FROM information_schema.PROCESSLIST "
            "WHERE ID = CONNECTION_ID()"
        )
    client_port = int((await connection.execute(text(query))).scalar_one())
    with socket.socket(fileno=os.dup(fd)) as sock:
        assert sock.getsockname()[1] == client_port, "not the connection's socket"
        return {name: sock.getsockopt(*where) for name, where in _OPTIONS.items()}


def test_keepalives_and_tcp_user_timeout_are_on_by_default(async_lab: AsyncLab) -> None:
    async def run() -> None:
        hardened = harden(async_lab.engine())
        async with hardened.connect() as connection:
            assert await _socket_options(async_lab, connection) == DEFAULT_OPTIONS
        # Not the driver's or the system's doing: a plain engine's socket has none.
        async with async_lab.engine().connect() as connection:
            options = await _plain_options(async_lab, connection)
            assert options["TCP_USER_TIMEOUT"] == 0, options

    async_lab.run(run)


async def _plain_options(lab: AsyncLab, connection: AsyncConnection) -> dict[str, int]:
    """The options of a plain engine's connection, its socket found as harden() finds it."""
    if _postgresql(lab):
        row = (
            await connection.execute(text("SELECT host(inet_client_addr()), inet_client_port()"))
        ).one()
        address = f"{row[0]}:{row[1]}"
    else:
        address = (
            await connection.execute(
                text("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()")
            )
        ).scalar_one()
    fd = find_socket(address, make_url(lab.url).port or 0)
    assert fd is not None, f"no socket of this process is the server's client {address}"
    with socket.socket(fileno=os.dup(fd)) as sock:
        return {name: sock.getsockopt(*where) for name, where in _OPTIONS.items()}


def test_timeouts_choose_the_keepalives(async_lab: AsyncLab) -> None:
    chosen = Timeouts(
        keepalive_idle_seconds=7,
        keepalive_interval_seconds=2,
        max_keepalive_probes=4,
        tcp_user_timeout_seconds=5,
    )

    async def run() -> None:
        engine = harden(async_lab.engine(), timeouts=chosen)
        async with engine.connect() as connection:
            assert await _socket_options(async_lab, connection) == {
                "SO_KEEPALIVE": 1,
                "TCP_KEEPIDLE": 7,
                "TCP_KEEPINTVL": 2,
                "TCP_KEEPCNT": 4,
                "TCP_USER_TIMEOUT": 5000,
            }

    async_lab.run(run)


@pytest.mark.parametrize("async_lab", ["psycopg_async"], indirect=True)
def test_keepalive_arguments_the_application_gave_are_kept(async_lab: AsyncLab) -> None:
    """libpq takes keepalive arguments: the defaults never override the application's."""

    async def run() -> None:
        engine = harden(
            async_lab.engine(connect_args={"keepalives_idle": 11, "tcp_user_timeout": 9000})
        )
        async with engine.connect() as connection:
            assert await _socket_options(async_lab, connection) == {
                **DEFAULT_OPTIONS,
                "TCP_KEEPIDLE": 11,
                "TCP_USER_TIMEOUT": 9000,
            }

    async_lab.run(run)
