"""What ``harden()`` costs: single-row transactions per second, one thread.

For psycopg 3 and psycopg2 (on a throwaway embedded PostgreSQL), PyMySQL and
mysqlclient (on MariaDB/MySQL; mysqlclient when ``MySQLdb`` imports), four
engines on the same server, timed in the same run:

- plain: ``create_engine(url)``, which hands out dead connections;
- pre-ping: ``create_engine(url, pool_pre_ping=True)``, a round trip per checkout;
- harden: ``create_engine(url, plugins=["sessionward"],
  sessionward_skip_rollback_after_commit=True)``, which is ``harden()`` (a
  look at the socket per checkout, every statement tagged with its origin, a
  sqlcommenter comment) plus, on PyMySQL and mysqlclient, the pool's reset
  without the ``ROLLBACK`` after a commit (see
  ``sessionward.integrations.sqlalchemy._reset``);
- untagged: the same with ``sessionward_origin=False``: what tagging costs.

Round trips per transaction are counted for each engine, from what the server
or the wire saw: MariaDB's ``Questions`` counter, and on psycopg 3 libpq's
protocol trace (each ``Query`` or ``Sync`` the client sends ends a round trip).
Tagging must add none.

Each transaction checks a connection out, inserts one row, commits and checks
the connection back in.

How: every round makes the three engines afresh and takes turns: in each turn
every engine, in a shuffled order, runs ``RUN`` transactions back to back, as
an application does, so the code only one engine runs (harden()'s listener,
pre-ping's ping) stays as warm as it would in that application.  (Alternating
transaction by transaction instead lets the other engines' transactions evict
it each time: harden()'s checkout listener then took 10 µs instead of 5 µs on
PyMySQL, a cost no application pays.)  Turns are short (a few milliseconds),
so a slow moment of the machine lands on all three engines alike.  Each
transaction is timed; an engine's time in a turn is the mean of its
transactions leaving out the slowest (on a small shared machine a transaction
now and then waits milliseconds for the CPU).  The ratios are medians of the
per-turn ratios, the rates medians of the per-turn times.

MariaDB/MySQL: a throwaway ``mariadbd`` (the test suite's helper, with
``innodb_flush_log_at_trx_commit = 0`` like the embedded PostgreSQL's
``fsync = off``), or ``--mysql URL``: a server that flushes its log at every
commit spends milliseconds on the disk, which hides any per-checkout cost.

Run: ``make bench`` or ``.venv/bin/python bench/liveness.py [--rounds 40] [--async]``
(``--async``: the AsyncEngine rows of ``bench/_liveness_async.py`` too).
Prints a Markdown table and exits non-zero when harden() is below 1.0x plain
or below 1.3x pre-ping for any driver, when tagging costs more than 2 %, or when
it adds a round trip.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import Engine

from sessionward.embedded import EmbeddedPostgres

TARGET_VS_PLAIN = 1.0
TARGET_VS_PRE_PING = 1.3
#: Tagged against untagged: tagging costs at most 2 %.
TARGET_VS_UNTAGGED = 0.98
#: Transactions whose round trips are counted, per engine.
COUNTED = 50
_ids = itertools.count(1)
#: Transactions each engine runs in a round, in turns with the others.
BATCH = 200
#: Transactions an engine runs back to back in a turn.
RUN = 20
#: Transactions each fresh engine runs before it is timed.
WARM_UP = 20
#: The share of each engine's slowest transactions in a turn left out of its mean.
TRIM = 0.05
#: Connections in each engine's pool, used in turn (SQLAlchemy's pool is first in,
#: first out): how fast a server serves one connection differs from one to the next
#: (on MariaDB by up to ±10%), and several spread that.
POOLED = 4
SEED = 6
#: Checkouts timed alone each round, for the cost of the checkout itself.
CHECKOUTS = 200
MODES = ("plain", "pre-ping", "harden", "untagged")
SCHEMES = {
    "psycopg": "postgresql+psycopg",
    "psycopg2": "postgresql+psycopg2",
    "pymysql": "mysql+pymysql",
    "mysqldb": "mysql+mysqldb",
}


def mysql_drivers() -> list[str]:
    """PyMySQL, and mysqlclient when it is installed (it needs a C library to build)."""
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        print("mysqlclient (MySQLdb) is not installed: no mysqldb row", file=sys.stderr)
        return ["pymysql"]
    return ["pymysql", "mysqldb"]


def make_engine(url: str, mode: str, **pool: Any) -> Engine:
    """The engine of ``mode``; the hardened ones through the ``sessionward`` plugin, asked
    to leave out the ``ROLLBACK`` after a commit (PyMySQL and mysqlclient; psycopg and
    psycopg2 skip it themselves)."""
    if mode == "pre-ping":
        return sqlalchemy.create_engine(url, pool_pre_ping=True, **pool)
    if mode == "untagged":
        pool = {**pool, "sessionward_origin": False}
    if mode in ("harden", "untagged"):
        return sqlalchemy.create_engine(
            url, plugins=["sessionward"], sessionward_skip_rollback_after_commit=True, **pool
        )
    return sqlalchemy.create_engine(url, **pool)


def round_trips(url: str, mode: str, count: int) -> float | None:
    """Round trips per transaction (checkout and checkin included), as counted by the
    server (MariaDB) or on the wire (psycopg 3's protocol trace), on a pool of one."""
    engine = make_engine_sized(url, mode)
    try:
        for _ in range(3):
            transaction(engine)  # settled: connected, prepared
        name = engine.dialect.driver
        if name in ("pymysql", "mysqldb"):
            import pymysql

            target = sqlalchemy.engine.make_url(url)
            admin = pymysql.connect(host=target.host, port=target.port or 3306,
                                    user=target.username, password=target.password or "",
                                    autocommit=True)  # fmt: skip

            def questions() -> int:
                with admin.cursor() as cursor:
                    cursor.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
                    row = cursor.fetchone()
                return int(row[1]) if row else 0

            try:
                before = questions()
                for _ in range(count):
                    transaction(engine)
                after = questions()
            finally:
                admin.close()
            return (after - before - 1) / count  # less the second SHOW itself
        if name == "psycopg":
            import tempfile

            with engine.connect() as connection:
                raw = connection.connection.dbapi_connection
                pgconn = getattr(raw, "pgconn", None)
            if pgconn is None:
                return None
            with tempfile.TemporaryFile("w+") as trace:
                pgconn.trace(trace.fileno())  # the pool's one connection, from now on
                try:
                    for _ in range(count):
                        transaction(engine)
                finally:
                    pgconn.untrace()
                trace.seek(0)
                # "[timestamp\t]F\tlength\tMessage\t…": what the client sent.
                lines = [line.split("\t") for line in trace]
                sent = [p if p[0] == "F" else p[1:] for p in lines if "F" in p[:2]]
            ends = sum(1 for parts in sent if len(parts) > 2 and parts[2] in ("Query", "Sync"))
            return ends / count
        return None
    finally:
        engine.dispose()


def make_engine_sized(url: str, mode: str) -> Engine:
    """``make_engine``'s engine with one pooled connection, so every checkout gets it."""
    return make_engine(url, mode, pool_size=1, max_overflow=0)


_INSERT = text("INSERT INTO sw_bench_rows (id, v) VALUES (:id, 0)")


def transaction(engine: Engine) -> float:
    """Seconds taken by one single-row transaction."""
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(_INSERT, {"id": next(_ids)})
    return time.perf_counter() - started


def fill(engine: Engine) -> None:
    """Put ``POOLED`` connections in the engine's pool, which hands them out in turn."""
    taken = [engine.connect() for _ in range(POOLED)]
    for connection in taken:
        connection.close()


def trimmed_mean(seconds: list[float]) -> float:
    """The mean without the slowest ``TRIM`` share."""
    kept = sorted(seconds)[: max(1, round(len(seconds) * (1 - TRIM)))]
    return sum(kept) / len(kept)


def bench_driver(url: str, rounds: int) -> dict[str, float]:
    """Transactions per second of each engine, and harden()'s ratios to the others.

    Every round makes fresh engines, so each gets a new server process: where
    a backend lands moves throughput too, and fresh ones spread that over the
    rounds.  Each ratio is the median of the per-turn ratios.
    """
    rng = random.Random(SEED)
    #: Per turn: each engine's mean seconds per transaction.
    spent: dict[str, list[float]] = {mode: [] for mode in MODES}
    checkout: dict[str, list[float]] = {mode: [] for mode in MODES}
    trips: dict[str, float | None] = {}
    for _ in range(rounds):
        order = list(MODES)
        rng.shuffle(order)  # which engine connects first changes too
        engines = {mode: make_engine(url, mode) for mode in order}
        try:
            for engine in engines.values():
                fill(engine)
                for _ in range(WARM_UP):  # prepare, fill caches
                    transaction(engine)
            for _ in range(BATCH // RUN):
                rng.shuffle(order)
                for mode in order:
                    engine = engines[mode]
                    spent[mode].append(trimmed_mean([transaction(engine) for _ in range(RUN)]))
            for mode in order:
                checkout[mode].append(checkout_seconds(engines[mode], CHECKOUTS))
            if not trips:
                for mode in MODES:
                    trips[mode] = round_trips(url, mode, COUNTED)
        finally:
            for engine in engines.values():
                engine.dispose()
    result = {mode: 1 / statistics.median(times) for mode, times in spent.items()}
    for mode, times in checkout.items():
        result[f"{mode} µs"] = statistics.median(times) / CHECKOUTS * 1e6
    for other in ("plain", "pre-ping"):
        result[f"vs {other}"] = statistics.median(
            o / h for o, h in zip(spent[other], spent["harden"], strict=True)
        )
    result["vs untagged"] = statistics.median(
        u / h for u, h in zip(spent["untagged"], spent["harden"], strict=True)
    )
    for mode, count in trips.items():
        if count is not None:
            result[f"{mode} trips"] = count
    # What a liveness check costing nothing at all would reach against pre-ping.
    result["ceiling"] = statistics.median(
        o / h for o, h in zip(spent["pre-ping"], spent["plain"], strict=True)
    )
    return result


#: The CPUs this process may use, before ``pin`` narrows them.
_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def pin(server_pid: int | None) -> str:
    """Put this process on one CPU and the server on another, where the OS allows it.

    On a small machine a server process that shares the client's CPU, or not,
    moves throughput by more than what is measured here; pinning removes that.
    """
    cpus = _CPUS
    if server_pid is None or len(cpus) < 2:
        return "not pinned"
    try:
        os.sched_setaffinity(0, {cpus[0]})
        os.sched_setaffinity(server_pid, {cpus[1]})  # its new backends and threads inherit it
    except OSError as error:
        return f"not pinned ({error.strerror})"
    return f"client on CPU {cpus[0]}, server on CPU {cpus[1]}"


def checkout_seconds(engine: Engine, count: int) -> float:
    """Seconds taken by ``count`` checkouts and checkins with nothing run in between."""
    started = time.perf_counter()
    for _ in range(count):
        engine.connect().close()
    return time.perf_counter() - started


def prepare(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS sw_bench_rows"))
        connection.execute(text("CREATE TABLE sw_bench_rows (id bigint PRIMARY KEY, v bigint)"))
    engine.dispose()


def drop(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS sw_bench_rows"))
    engine.dispose()


@contextlib.contextmanager
def mysql_server(url: str | None) -> Iterator[tuple[str | None, int | None]]:
    """The server's URL, and its process id when it is ours."""
    if url:
        yield url, None
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.integrations.errors._own_servers import OwnMariaDB

    if OwnMariaDB.available() is not None:
        yield None, None
        return
    server = OwnMariaDB()
    try:
        server.start()
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root", autocommit=True)
        conn.cursor().execute("SET GLOBAL innodb_flush_log_at_trx_commit = 0")
        conn.close()
        yield server.url, server.process.pid if server.process else None
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=40, help=f"rounds of {BATCH} per engine (at least 3)"
    )
    parser.add_argument("--mysql", metavar="URL", help="instead of a throwaway mariadbd")
    parser.add_argument("--async", dest="async_rows", action="store_true", help="async rows too")
    args = parser.parse_args()
    async_results: list[tuple[str, dict[str, float]]] = []
    if args.async_rows:
        import _liveness_async  # bench/, beside this script: the async rows
    rounds = max(args.rounds, 3)
    results: list[tuple[str, dict[str, float]]] = []
    with EmbeddedPostgres() as pg:
        pid_file = pg.data_dir / "postmaster.pid"
        print("PostgreSQL:", pin(int(pid_file.read_text().split()[0])), file=sys.stderr)
        for driver in ("psycopg", "psycopg2"):
            url = f"{SCHEMES[driver]}://{pg.url.split('://', 1)[1]}"
            prepare(url)
            results.append((driver, bench_driver(url, rounds)))
        if args.async_rows:
            async_results += _liveness_async.run(pg.url, None, rounds)
    with mysql_server(args.mysql) as (mysql_url, mysql_pid):
        if mysql_url is None:
            print("no MariaDB/MySQL: give --mysql URL", file=sys.stderr)
            return 2
        print("MariaDB/MySQL:", pin(mysql_pid), file=sys.stderr)
        for driver in mysql_drivers():
            url = f"{SCHEMES[driver]}://{mysql_url.split('://', 1)[1]}"
            prepare(url)
            try:
                results.append((driver, bench_driver(url, rounds)))
            finally:
                drop(url)
        if args.async_rows:
            async_results += _liveness_async.run(None, mysql_url, rounds)
    missed = print_table(results, rounds)
    if args.async_rows:
        missed |= _liveness_async.print_table(async_results, rounds)
    return 1 if missed else 0


def print_table(results: list[tuple[str, dict[str, float]]], rounds: int) -> bool:
    print(
        f"Single-row transactions per second, one thread; {rounds} rounds of {BATCH} per "
        f"engine, fresh engines each round, in turns of {RUN} back to back; per turn the "
        f"mean without each engine's slowest {TRIM:.0%}; medians of the turns:\n"
    )
    print(
        "| driver | plain | pool_pre_ping | harden() | harden() vs plain | vs pre-ping "
        "| plain vs pre-ping |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    missed = False
    for driver, rates in results:
        vs_plain, vs_ping = rates["vs plain"], rates["vs pre-ping"]
        ok = vs_plain >= TARGET_VS_PLAIN and vs_ping >= TARGET_VS_PRE_PING
        missed |= not ok
        counts = " | ".join(f"{rates[mode]:,.0f}" for mode in MODES[:3])
        verdict = "" if ok else " **missed**"
        print(
            f"| {driver} | {counts} | {vs_plain:.3f}× | {vs_ping:.2f}× "
            f"| {rates['ceiling']:.2f}× |{verdict}"
        )
    print(f"\nTargets: harden() ≥ {TARGET_VS_PLAIN}× plain and ≥ {TARGET_VS_PRE_PING}× pre-ping.")
    print(
        "The last column is plain against pre-ping: the most a liveness check that cost "
        "nothing at all could reach against pre-ping on this machine, unless the hardened "
        "engine does less than plain (on PyMySQL and mysqlclient it leaves out the "
        "ROLLBACK after each commit)."
    )
    print(
        "\nTagging every statement with its origin, against the same hardened engine "
        "untagged (target ≥ "
        f"{TARGET_VS_UNTAGGED}×), and what each transaction sent (must be equal): round "
        "trips on psycopg 3's wire, statements MariaDB counted for the MySQL drivers "
        "(Questions, where a ping is not one); not counted on psycopg2:\n"
    )
    print("| driver | tagged vs untagged | round trips, tagged | untagged | plain |")
    print("|---|---:|---:|---:|---:|")
    for driver, rates in results:
        ratio = rates["vs untagged"]
        tagged, untagged = rates.get("harden trips"), rates.get("untagged trips")
        extra = tagged is not None and untagged is not None and tagged > untagged
        bad = ratio < TARGET_VS_UNTAGGED or extra
        missed |= bad

        def shown(value: float | None) -> str:
            return "not counted" if value is None else f"{value:.2f}"

        print(
            f"| {driver} | {ratio:.3f}× | {shown(tagged)} | {shown(untagged)} "
            f"| {shown(rates.get('plain trips'))} |{' **missed**' if bad else ''}"
        )
    print("\nOne checkout and checkin with no statement in between, µs (median):\n")
    print("| driver | plain | pool_pre_ping | harden() | harden(origin=False) |")
    print("|---|---:|---:|---:|---:|")
    for driver, rates in results:
        costs = " | ".join(f"{rates[f'{mode} µs']:.1f}" for mode in MODES)
        print(f"| {driver} | {costs} |")
    return missed


if __name__ == "__main__":
    sys.exit(main())
