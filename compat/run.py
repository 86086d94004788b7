"""Run Django's and SQLAlchemy's own test suites plain and with sessionward, and compare.

For each suite and server, the released sdist's tests run twice: plain, then
with sessionward plugged in as a user would (Django: our ENGINE and
TEST_RUNNER; SQLAlchemy: our ``sqlalchemy.plugins`` entry point on every
engine). Every test that passes plain must pass with sessionward, except the
ones listed in ``compat/intended_differences.txt``; otherwise exit 1.

    .venv/bin/python compat/run.py [--suite django|sqlalchemy] [--server postgresql|mysql]

Servers: ``SESSIONWARD_TEST_PG_DSN`` and ``SESSIONWARD_TEST_MYSQL_DSN`` (host,
port, user and password only), else 127.0.0.1 as postgres / root. The sdists
are downloaded once with pip into ``$SESSIONWARD_COMPAT_CACHE`` (default
``${XDG_CACHE_HOME:-~/.cache}/sessionward-compat``) and unpacked there; logs
and per-test results go to its ``logs/`` folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

# The released versions whose own tests are run; each run imports the library
# from its sdist, so the venv's installed versions do not matter.
DJANGO_VERSION = "5.2.20"
SQLALCHEMY_VERSION = "2.1.9"

DJANGO_LABELS = [
    "backends",
    "transactions",
    "transaction_hooks",
    "test_runner",
    "test_utils",
    "db_utils",
    "select_for_update",
    "servers",
]
SQLALCHEMY_FILES = [
    "test/engine/test_reconnect.py",
    "test/engine/test_pool.py",
    "test/engine/test_execute.py",
]
SQLALCHEMY_DB = "sw_compat_sqla"
# The drivers each suite runs with, per server; Django picks its own (psycopg 3
# when installed, mysqlclient always), SQLAlchemy is told in the URL.
DRIVERS = {
    "django": {"postgresql": ["psycopg"], "mysql": ["mysqlclient"]},
    "sqlalchemy": {"postgresql": ["psycopg"], "mysql": ["pymysql", "mysqldb"]},
}
DRIVER_NAMES = {
    "psycopg": "psycopg 3",
    "pymysql": "PyMySQL",
    "mysqlclient": "mysqlclient",
    "mysqldb": "mysqlclient",
}
RUN_TIMEOUT_SECONDS = 900

HERE = Path(__file__).resolve().parent
SIDES = ("plain", "sessionward")


@dataclass(frozen=True)
class Server:
    name: str  # "postgresql" or "mysql", as in Django's backend names
    label: str
    host: str
    port: int
    user: str
    password: str

    def sqlalchemy_url(self, driver: str, database: str) -> str:
        auth = quote(self.user, safe="") + (
            ":" + quote(self.password, safe="") if self.password else ""
        )
        return f"{self.name}+{driver}://{auth}@{self.host}:{self.port}/{database}"


@dataclass
class Run:
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> outcome
    messages: dict[str, str] = field(default_factory=dict)  # test id -> first line
    returncode: int | None = None
    seconds: float = 0.0
    problem: str = ""  # why the run gave no usable results

    def counts(self) -> str:
        if self.problem:
            return "did not run"
        c = Counter(self.outcomes.values())
        return (
            f"{c['passed']} passed, {c['failed'] + c['error']} failed, "
            f"{c['skipped'] + c['xfailed']} skipped"
        )


def server_from_env(name: str, variable: str, default_port: int, default_user: str) -> Server:
    parts = urlsplit(os.environ.get(variable, ""))
    return Server(
        name=name,
        label="PostgreSQL" if name == "postgresql" else "MariaDB",
        host=parts.hostname or "127.0.0.1",
        port=parts.port or default_port,
        user=unquote(parts.username or default_user),
        password=unquote(parts.password or ""),
    )


def cache_dir() -> Path:
    explicit = os.environ.get("SESSIONWARD_COMPAT_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sessionward-compat"


def unpacked_sdist(cache: Path, project: str, version: str) -> Path:
    """The sdist's folder, downloaded with pip and unpacked on first use."""
    target = cache / "src" / f"{project.lower()}-{version}"
    if (target / ".unpacked").exists():
        return target
    sdists = cache / "sdists"
    archive = sdists / f"{project.lower()}-{version}.tar.gz"
    if not archive.exists():
        print(f"compat: downloading the {project} {version} sdist (once)", flush=True)
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--no-binary", ":all:", f"{project}=={version}", "-d", str(sdists)),
            ],
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(target.parent, filter="data")
    (target / ".unpacked").touch()
    return target


def prepare_sqlalchemy_database(server: Server) -> None:
    """A fresh database, with the extra schemas SQLAlchemy's README.unittests asks for."""
    if server.name == "postgresql":
        import psycopg

        def pg(dbname: str) -> psycopg.Connection[tuple[object, ...]]:
            return psycopg.connect(
                host=server.host,
                port=server.port,
                user=server.user,
                password=server.password or None,
                dbname=dbname,
                autocommit=True,
            )

        with pg("postgres") as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SQLALCHEMY_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {SQLALCHEMY_DB} ENCODING 'utf8' TEMPLATE template0")
        with pg(SQLALCHEMY_DB) as conn:
            conn.execute("CREATE SCHEMA test_schema")
            conn.execute("CREATE SCHEMA test_schema_2")
    else:
        import pymysql

        my = pymysql.connect(
            host=server.host, port=server.port, user=server.user, password=server.password
        )
        try:
            with my.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {SQLALCHEMY_DB}")
                cur.execute(f"CREATE DATABASE {SQLALCHEMY_DB} CHARACTER SET utf8mb4")
                # SQLAlchemy's "other schema" on MySQL is a database of this name.
                cur.execute("CREATE DATABASE IF NOT EXISTS test_schema CHARACTER SET utf8mb4")
        finally:
            my.close()


def run_logged(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> tuple[int, float]:
    started = time.monotonic()
    with log.open("w") as out:
        try:
            code = subprocess.run(
                cmd,
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT_SECONDS,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            out.write(f"\ncompat: killed after {RUN_TIMEOUT_SECONDS}s\n")
            code = -1
    return code, time.monotonic() - started


def base_env(server: Server, side: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        COMPAT_SERVER=server.name,
        COMPAT_SESSIONWARD="1" if side == "sessionward" else "0",
        COMPAT_DB_HOST=server.host,
        COMPAT_DB_PORT=str(server.port),
        COMPAT_DB_USER=server.user,
        COMPAT_DB_PASSWORD=server.password,
    )
    return env


def run_django(sdist: Path, server: Server, driver: str, side: str, logs: Path) -> Run:
    stem = f"django-{server.name}-{driver}-{side}"
    results = logs / f"{stem}.json"
    results.unlink(missing_ok=True)
    env = base_env(server, side)
    # Our settings and runner first, then the sdist's own Django.
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(sdist)])
    env["COMPAT_RESULTS"] = str(results)
    cmd = [sys.executable, "runtests.py", "--settings=django_settings", "--parallel=1"]
    cmd += ["--noinput", "--verbosity=2", *DJANGO_LABELS]
    code, seconds = run_logged(cmd, cwd=sdist / "tests", env=env, log=logs / f"{stem}.log")
    run = Run(returncode=code, seconds=seconds)
    if not results.exists():
        run.problem = f"no results (exit {code}), see {logs / f'{stem}.log'}"
        return run
    for test_id, (outcome, message) in json.loads(results.read_text()).items():
        run.outcomes[test_id] = outcome
        if message:
            run.messages[test_id] = message
    return run


def run_sqlalchemy(sdist: Path, server: Server, driver: str, side: str, logs: Path) -> Run:
    stem = f"sqlalchemy-{server.name}-{driver}-{side}"
    junit = logs / f"{stem}.xml"
    junit.unlink(missing_ok=True)
    if side == "sessionward" and not entry_points(group="sqlalchemy.plugins", name="sessionward"):
        return Run(problem="sessionward's sqlalchemy.plugins entry point is not installed")
    try:
        prepare_sqlalchemy_database(server)
    except Exception as error:  # the server's own message, on one line
        return Run(problem=f"could not prepare {SQLALCHEMY_DB}: {first_line(str(error))}")
    env = base_env(server, side)
    env["PYTHONPATH"] = str(HERE)
    env["COMPAT_ENGINE_COUNTS"] = str(logs / f"{stem}.engines.json")
    (logs / f"{stem}.engines.json").unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", *SQLALCHEMY_FILES, "-p", "sqla_plugin"]
    cmd += ["-p", "no:cacheprovider", f"--dburi={server.sqlalchemy_url(driver, SQLALCHEMY_DB)}"]
    cmd += [f"--junitxml={junit}", "-o", "junit_family=xunit1"]
    code, seconds = run_logged(cmd, cwd=sdist, env=env, log=logs / f"{stem}.log")
    run = Run(returncode=code, seconds=seconds)
    if not junit.exists():
        run.problem = f"no results (exit {code}), see {logs / f'{stem}.log'}"
        return run
    counts = logs / f"{stem}.engines.json"
    if side == "sessionward" and (
        not counts.exists() or not json.loads(counts.read_text()).get("with sessionward")
    ):
        run.problem = f"no engine got the sessionward plugin, see {logs / f'{stem}.log'}"
        return run
    for case in ET.parse(junit).iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        outcome, message = "passed", ""
        for child in case:
            kind = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(child.tag)
            if kind and (outcome == "passed" or kind == "error"):
                outcome, message = kind, child.get("message", "")
        run.outcomes[test_id] = outcome
        if message:
            run.messages[test_id] = message
    return run


def intended_differences() -> dict[str, str]:
    """Test id -> reason, from ``intended_differences.txt`` (``<test id> | <reason>``)."""
    allowed: dict[str, str] = {}
    for line in (HERE / "intended_differences.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            test_id, _, reason = line.partition(" | ")
            allowed[test_id.strip()] = reason.strip()
    return allowed


#: Fewer passing tests than this in a plain run means the run itself is broken.
MIN_PLAIN_PASSED = 100


def compare(plain: Run, with_sw: Run, allowed: dict[str, str]) -> tuple[list[str], set[str]]:
    """One line per test that passes plain but not with sessionward, and the allowances used."""
    if plain.problem:
        return [f"plain run unusable: {plain.problem}"], set()
    if with_sw.problem:
        return [f"sessionward run unusable: {with_sw.problem}"], set()
    # A plain run that passed little proves little: a broken set-up must not pass as
    # "no regressions".
    passed_plain = sum(outcome == "passed" for outcome in plain.outcomes.values())
    if passed_plain < MIN_PLAIN_PASSED:
        return [f"plain run passed only {passed_plain} tests (set-up broken?)"], set()
    found: list[str] = []
    used: set[str] = set()
    for test_id, outcome in sorted(plain.outcomes.items()):
        now = with_sw.outcomes.get(test_id, "not run")
        if outcome != "passed" or now == "passed":
            continue
        if test_id in allowed:
            used.add(test_id)
            continue
        why = first_line(with_sw.messages.get(test_id, ""))
        found.append(f"{test_id}: {now}" + (f": {why}" if why else ""))
    if not found and not used and with_sw.returncode not in (0, plain.returncode):
        # Every test passed, yet something (a teardown, our runner) failed.
        found.append(f"the run exited {with_sw.returncode} (plain: {plain.returncode})")
    return found, used


def first_line(message: str) -> str:
    text = " ".join(message.split())
    return text[:200] + ("…" if len(text) > 200 else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=["django", "sqlalchemy"], action="append")
    parser.add_argument("--server", choices=["postgresql", "mysql"], action="append")
    args = parser.parse_args()
    suites = args.suite or ["django", "sqlalchemy"]
    servers = [
        s
        for s in (
            server_from_env("postgresql", "SESSIONWARD_TEST_PG_DSN", 5432, "postgres"),
            server_from_env("mysql", "SESSIONWARD_TEST_MYSQL_DSN", 3306, "root"),
        )
        if s.name in (args.server or ["postgresql", "mysql"])
    ]

    cache = cache_dir()
    logs = cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    projects = {
        "django": ("Django", DJANGO_VERSION),
        "sqlalchemy": ("SQLAlchemy", SQLALCHEMY_VERSION),
    }
    try:
        sdists = {suite: unpacked_sdist(cache, *projects[suite]) for suite in suites}
    except (subprocess.CalledProcessError, OSError, tarfile.TarError) as error:
        print(f"compat: could not fetch or unpack an sdist into {cache}: {error}", file=sys.stderr)
        return 2
    runners = {"django": run_django, "sqlalchemy": run_sqlalchemy}
    allowed = intended_differences()
    used_allowances: set[str] = set()
    started = time.monotonic()

    rows: list[tuple[str, ...]] = []
    regressions: list[str] = []
    for suite in suites:
        (project, version), sdist = projects[suite], sdists[suite]
        for server in servers:
            for driver in DRIVERS[suite][server.name]:
                where = f"{server.label} ({DRIVER_NAMES[driver]})"
                runs: dict[str, Run] = {}
                for side in SIDES:
                    print(f"compat: {project} {version} on {where}, {side} …", flush=True)
                    runs[side] = runners[suite](sdist, server, driver, side, logs)
                    print(
                        f"compat:   {runs[side].counts()} ({runs[side].seconds:.0f}s)", flush=True
                    )
                found, allowances = compare(runs["plain"], runs["sessionward"], allowed)
                used_allowances |= allowances
                regressions += [f"{project} {version} on {where}: {line}" for line in found]
                rows.append(
                    (
                        *(project, version, where),
                        *(runs["plain"].counts(), runs["sessionward"].counts(), str(len(found))),
                    )
                )

    header = ("suite", "version", "server", "plain", "with sessionward", "regressions")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"\ncompat: {time.monotonic() - started:.0f}s in all; logs in {logs}")
    for test_id in sorted(set(allowed) - used_allowances):
        print(f"compat: note: intended difference not seen in this run: {test_id}")
    if regressions:
        print(f"\ncompat: {len(regressions)} regression(s) with sessionward:", file=sys.stderr)
        for line in regressions:
            print(f"  {line}", file=sys.stderr)
        return 1
    print("compat: no test that passes plain fails with sessionward")
    return 0


if __name__ == "__main__":
    sys.exit(main())
