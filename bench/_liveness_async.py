"""The async rows of ``bench/liveness.py``: what ``harden()`` costs on an ``AsyncEngine``.

For asyncpg and psycopg (async) on PostgreSQL and aiomysql on MariaDB/MySQL, three
``AsyncEngine``s on the same server, timed in the same run, with the method of the
sync rows (see ``liveness.py``): fresh engines each round, turns of ``RUN``
single-row transactions back to back in a shuffled order, each engine's time in a turn
the mean without its slowest ``TRIM`` share, ratios the medians of the per-turn ratios.

- plain: ``create_async_engine(url)``;
- pre-ping: ``create_async_engine(url, pool_pre_ping=True)`` (on asyncpg BEGIN, a
  ``;`` and ROLLBACK: about three round trips per checkout);
- harden: ``harden(create_async_engine(url))``.

All in one event loop, one task: the cost per transaction, not concurrency.

Run alone: ``.venv/bin/python bench/_liveness_async.py --pg URL [--mysql URL]``, or with
the sync rows: ``bench/liveness.py --async``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import sys
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sessionward.sqlalchemy import harden

#: harden() against plain, and against pool_pre_ping on asyncpg (the issue's targets).
TARGET_VS_PLAIN = 0.97
TARGET_VS_PRE_PING = 1.5
#: The driver whose pre-ping target is checked.
PRE_PING_TARGET_DRIVER = "asyncpg"
BATCH = 200
RUN = 20
WARM_UP = 20
TRIM = 0.05
POOLED = 4
SEED = 6
MODES = ("plain", "pre-ping", "harden")
SCHEMES = {
    "asyncpg": "postgresql+asyncpg",
    "psycopg (async)": "postgresql+psycopg",
    "aiomysql": "mysql+aiomysql",
}
PG_DRIVERS = ("asyncpg", "psycopg (async)")
MYSQL_DRIVERS = ("aiomysql",)

_ids = itertools.count(1)
_INSERT = text("INSERT INTO sw_bench_async_rows (id, v) VALUES (:id, 0)")


def url_for(driver: str, server_url: str) -> str:
    return f"{SCHEMES[driver]}://{server_url.split('://', 1)[1]}"


def make_engine(url: str, mode: str) -> AsyncEngine:
    if mode == "pre-ping":
        return create_async_engine(url, pool_pre_ping=True)
    engine = create_async_engine(url)
    return harden(engine) if mode == "harden" else engine


async def transaction(engine: AsyncEngine) -> float:
    """Seconds taken by one single-row transaction."""
    started = time.perf_counter()
    async with engine.begin() as connection:
        await connection.execute(_INSERT, {"id": next(_ids)})
    return time.perf_counter() - started


async def fill(engine: AsyncEngine) -> None:
    taken = [await engine.connect() for _ in range(POOLED)]
    for connection in taken:
        await connection.close()


def trimmed_mean(seconds: list[float]) -> float:
    kept = sorted(seconds)[: max(1, round(len(seconds) * (1 - TRIM)))]
    return sum(kept) / len(kept)


async def prepare(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE IF EXISTS sw_bench_async_rows"))
            await connection.execute(
                text("CREATE TABLE sw_bench_async_rows (id bigint PRIMARY KEY, v bigint)")
            )
    finally:
        await engine.dispose()


async def drop(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE IF EXISTS sw_bench_async_rows"))
    finally:
        await engine.dispose()


async def bench_driver(url: str, rounds: int) -> dict[str, float]:
    """Transactions per second of each engine, and harden()'s ratios to the others."""
    rng = random.Random(SEED)
    spent: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(rounds):
        order = list(MODES)
        rng.shuffle(order)
        engines = {mode: make_engine(url, mode) for mode in order}
        try:
            for engine in engines.values():
                await fill(engine)
                for _ in range(WARM_UP):
                    await transaction(engine)
            for _ in range(BATCH // RUN):
                rng.shuffle(order)
                for mode in order:
                    engine = engines[mode]
                    times = [await transaction(engine) for _ in range(RUN)]
                    spent[mode].append(trimmed_mean(times))
        finally:
            for engine in engines.values():
                await engine.dispose()
    result = {mode: 1 / statistics.median(times) for mode, times in spent.items()}
    for other in ("plain", "pre-ping"):
        result[f"vs {other}"] = statistics.median(
            o / h for o, h in zip(spent[other], spent["harden"], strict=True)
        )
    result["ceiling"] = statistics.median(
        o / h for o, h in zip(spent["pre-ping"], spent["plain"], strict=True)
    )
    return result


async def bench(
    pg_url: str | None, mysql_url: str | None, rounds: int
) -> list[tuple[str, dict[str, float]]]:
    """Every async driver whose server is given, in one run."""
    results: list[tuple[str, dict[str, float]]] = []
    for drivers, server_url in ((PG_DRIVERS, pg_url), (MYSQL_DRIVERS, mysql_url)):
        if server_url is None:
            continue
        for driver in drivers:
            url = url_for(driver, server_url)
            await prepare(url)
            try:
                results.append((driver, await bench_driver(url, rounds)))
            finally:
                await drop(url)
    return results


def run(pg_url: str | None, mysql_url: str | None, rounds: int) -> list[tuple[str, Any]]:
    return asyncio.run(bench(pg_url, mysql_url, rounds))


def print_table(results: list[tuple[str, dict[str, float]]], rounds: int) -> bool:
    """The async table; True when a target was missed."""
    print(
        f"\nAsync (AsyncEngine): single-row transactions per second, one task; {rounds} "
        f"rounds of {BATCH} per engine, in turns of {RUN}, as above:\n"
    )
    print(
        "| driver | plain | pool_pre_ping | harden() | harden() vs plain | vs pre-ping "
        "| plain vs pre-ping |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    missed = False
    for driver, rates in results:
        vs_plain, vs_ping = rates["vs plain"], rates["vs pre-ping"]
        ok = vs_plain >= TARGET_VS_PLAIN and (
            driver != PRE_PING_TARGET_DRIVER or vs_ping >= TARGET_VS_PRE_PING
        )
        missed |= not ok
        counts = " | ".join(f"{rates[mode]:,.0f}" for mode in MODES)
        print(
            f"| {driver} | {counts} | {vs_plain:.3f}× | {vs_ping:.2f}× "
            f"| {rates['ceiling']:.2f}× |{'' if ok else ' **missed**'}"
        )
    print(
        f"\nTargets: harden() ≥ {TARGET_VS_PLAIN}× plain; on {PRE_PING_TARGET_DRIVER} also "
        f"≥ {TARGET_VS_PRE_PING}× pre-ping."
    )
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL (postgresql://...)")
    parser.add_argument("--mysql", metavar="URL", help="MariaDB/MySQL (mysql://...)")
    parser.add_argument("--rounds", type=int, default=40, help="rounds (at least 3)")
    args = parser.parse_args()
    if args.pg is None and args.mysql is None:
        parser.error("give --pg URL and/or --mysql URL")
    rounds = max(args.rounds, 3)
    return 1 if print_table(run(args.pg, args.mysql, rounds), rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
