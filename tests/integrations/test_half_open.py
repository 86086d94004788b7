"""Half-open TCP: a connection whose peer vanishes silently fails within the configured
``tcp_user_timeout``, not the kernel's default (about 15 minutes of retransmissions).

A throwaway PostgreSQL listens on an extra loopback address of its own; the clients
connect to it there.  Then the address is deleted and a blackhole route put in its
place: from then on every packet to it is dropped without a reset or an ICMP error, as
when a peer's host or a middlebox disappears.  (Checked: the kernel then retransmits
silently and a socket with ``TCP_USER_TIMEOUT`` 2 s fails with ``ETIMEDOUT`` after
about 2.2 s.)  Changing addresses and routes needs root with ``CAP_NET_ADMIN``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sessionward import Timeouts
from sessionward.core import ConnectionLost, classify
from tests.fix_servers import missing_server

pytest.importorskip("asyncpg")
pytest.importorskip("greenlet")

#: A private address no real host of the test machine uses, one per test process, so
#: matrix cells running side by side (``noxfile.py``) never share it.
ADDRESS = f"10.213.{os.getpid() // 254 % 256}.{os.getpid() % 254 + 1}"
TCP_USER_TIMEOUT_SECONDS = 2.0
#: The kernel retransmits on its own schedule, the machine is loaded: generous margin.
DETECTED_WITHIN_SECONDS = TCP_USER_TIMEOUT_SECONDS + 4.0
#: A client without ``tcp_user_timeout`` still waits then (the kernel gives up after
#: about 15 minutes; keepalives, 30 s idle by default, do not fire during a statement).
STILL_HANGING_AT_SECONDS = 15.0


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def vanishing_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """An embedded PostgreSQL also listening on ``ADDRESS``, an address of its own."""
    added = _ip("addr", "add", f"{ADDRESS}/32", "dev", "lo")
    if added.returncode != 0:
        missing_server(
            f"half-open TCP needs root with CAP_NET_ADMIN to add {ADDRESS} to lo: "
            f"{added.stderr.strip()}"
        )
    try:
        from sessionward.embedded import EmbeddedPostgres

        server = EmbeddedPostgres(
            max_connections=20, settings={"listen_addresses": f"127.0.0.1,{ADDRESS}"}
        )
        try:
            server.start()
        except Exception as error:
            missing_server(f"embedded PostgreSQL could not start: {error}")
        try:
            # Trust the test's own address too (initdb trusts only loopback), then reload.
            with open(server.data_dir / "pg_hba.conf", "a", encoding="utf-8") as hba:
                hba.write(f"host all all {ADDRESS}/32 trust\n")
            import psycopg

            with psycopg.connect(server.url, autocommit=True) as connection:
                connection.execute("SELECT pg_reload_conf()")
            yield server
        finally:
            server.stop()
    finally:
        _ip("route", "del", "blackhole", f"{ADDRESS}/32")
        _ip("addr", "del", f"{ADDRESS}/32", "dev", "lo")


def _vanish() -> None:
    """Every packet to ``ADDRESS`` dropped from now on, silently."""
    for args in (
        ("addr", "del", f"{ADDRESS}/32", "dev", "lo"),
        ("route", "add", "blackhole", f"{ADDRESS}/32"),
    ):
        done = _ip(*args)
        assert done.returncode == 0, done.stderr


async def _fails_within(what: str, run: Any, started: float) -> float:
    """Seconds from ``started`` until ``run`` failed; the error must be ConnectionLost."""
    failed: Exception | None = None
    try:
        await asyncio.wait_for(run, STILL_HANGING_AT_SECONDS)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what}: still hanging after {STILL_HANGING_AT_SECONDS}s") from None
    except Exception as error:
        failed = error
    seconds = time.monotonic() - started
    assert failed is not None, f"{what}: the statement succeeded through a vanished peer"
    assert classify(failed) is ConnectionLost, (what, repr(failed))
    return seconds


def test_a_silently_vanished_peer_is_detected_within_tcp_user_timeout(
    vanishing_server: Any,
) -> None:
    import asyncpg
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    import sessionward.asyncpg
    import sessionward.psycopg
    from sessionward.sqlalchemy import harden

    port = vanishing_server.port
    timeouts = Timeouts(tcp_user_timeout_seconds=TCP_USER_TIMEOUT_SECONDS)
    dsn = f"postgresql://postgres@{ADDRESS}:{port}/postgres"

    async def scenario() -> None:
        engines = {
            "asyncpg engine": harden(
                create_async_engine(f"postgresql+asyncpg://postgres@{ADDRESS}:{port}/postgres"),
                timeouts=timeouts,
            ),
            "psycopg async engine": harden(
                create_async_engine(f"postgresql+psycopg://postgres@{ADDRESS}:{port}/postgres"),
                timeouts=timeouts,
            ),
        }
        pool = await sessionward.asyncpg.create_pool(dsn, min_size=1, max_size=1, timeouts=timeouts)
        psycopg_pool = sessionward.psycopg.async_pool(
            dsn, min_size=1, max_size=1, open=False, timeouts=timeouts
        )
        await psycopg_pool.open(wait=True)
        plain = await asyncpg.connect(dsn)  # nothing of sessionward: the kernel's default
        try:
            # Warm: one pooled connection each, its socket known and configured.
            for engine in engines.values():
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
            await pool.fetchval("SELECT 1")
            async with psycopg_pool.connection() as connection:
                await connection.execute("SELECT 1")
            await plain.fetchval("SELECT 1")

            _vanish()
            started = time.monotonic()

            async def through(engine: Any) -> None:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))

            async def through_psycopg_pool() -> None:
                async with psycopg_pool.connection() as connection:
                    await connection.execute("SELECT 1")

            hanging = asyncio.ensure_future(plain.fetchval("SELECT 1"))
            detected = await asyncio.gather(
                *(
                    _fails_within(name, through(engine), started)
                    for name, engine in engines.items()
                ),
                _fails_within("asyncpg pool", pool.fetchval("SELECT 1"), started),
                _fails_within("psycopg async pool", through_psycopg_pool(), started),
            )
            names = [*engines, "asyncpg pool", "psycopg async pool"]
            late = {
                n: round(s, 1)
                for n, s in zip(names, detected, strict=True)
                if s > DETECTED_WITHIN_SECONDS
            }
            assert not late, f"detected later than {DETECTED_WITHIN_SECONDS}s: {late}"
            # The contrast: without tcp_user_timeout the same statement still waits.
            await asyncio.wait(
                {hanging}, timeout=STILL_HANGING_AT_SECONDS - (time.monotonic() - started)
            )
            assert not hanging.done(), "the plain connection failed early: the test proves nothing"
        finally:
            plain.terminate()  # no network: a cancel request would go nowhere
            with contextlib.suppress(BaseException):
                await hanging
            pool.terminate()
            await psycopg_pool.close(timeout=1)
            for engine in engines.values():
                await engine.dispose(close=False)

    asyncio.run(scenario())
