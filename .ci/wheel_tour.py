"""The README's 30-second tour, run from an installed wheel, outside the checkout.

``nox -s wheel`` builds the wheel, installs it (``[all]``) into a fresh venv in a
temporary directory and runs this file with that venv's Python, from that
directory.  It reads the README from the installed wheel's metadata (the text
PyPI shows) and checks that everything the README points a user at is in the
wheel: the extras it tells them to install, every ``sessionward`` command it
names, the Python names it imports, the plugins, ``LICENSE``, the example
policy (``sessionward policy example``) and ``sessionward demo`` (what
``make demo`` runs).  Then it runs every line of the tour, in order, with the
venv's ``sessionward`` script against a throwaway PostgreSQL (the wheel's own
``sessionward.embedded``: the tour ends sessions, so never on a shared server)
staged with what each line needs: a blocker, a slow statement, leftover
sessions on ``test_app``.  Lines that cannot run as written in a script get
the least change that lets them (``--once``, ``--count``, a real pid or time),
and a tour line this file does not know fails the run, so the check follows the
README.  MariaDB and PgBouncer come from ``SESSIONWARD_TEST_MYSQL_DSN`` and
``SESSIONWARD_TEST_PGBOUNCER_ADMIN_DSN`` (read-only: ``ls``).

Usage: ``python wheel_tour.py REPORT.xml CHECKOUT`` (exit status 1 on any failure;
``REPORT.xml`` is a JUnit report for ``.ci/matrix_table.py``; ``CHECKOUT`` is
the source tree the package must not be imported from).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
SESSIONWARD = str(BIN / "sessionward")
TIMEOUT = 120  # seconds per command: generous on a loaded 2-core machine


class Failed(Exception):
    pass


def check(condition: object, message: str) -> None:
    if not condition:
        raise Failed(message)


def run(*args: str, stdin: str = "", expect: tuple[int, ...] = (0,)) -> str:
    """The installed ``sessionward`` script; its stdout, after checking its exit status."""
    done = subprocess.run(
        [SESSIONWARD, *args], input=stdin, capture_output=True, text=True, timeout=TIMEOUT
    )
    print(f"$ sessionward {shlex.join(args)}  -> {done.returncode}")
    print(done.stdout.rstrip()[:3000])
    if done.stderr.strip():
        print(done.stderr.rstrip()[:3000])
    check(
        done.returncode in expect,
        f"`sessionward {shlex.join(args)}` exited {done.returncode}: {done.stderr.strip()[-800:]}",
    )
    return done.stdout


def readme() -> str:
    text = importlib.metadata.metadata("sessionward").get_payload()  # type: ignore[attr-defined]
    check(isinstance(text, str) and "## A tour in 30 seconds" in text, "no README in the wheel")
    return str(text)


def code_blocks(text: str, language: str = "") -> list[str]:
    return re.findall(rf"^```{language}[^\n]*\n(.*?)^```", text, flags=re.S | re.M)


def section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    check(match, f"the README has no section {title!r}")
    assert match is not None
    return match.group(1)


# --------------------------------------------------------------------------- the package


def installed_outside(checkout: Path) -> None:
    import sessionward

    where = Path(sessionward.__file__).resolve()
    check(Path(sys.prefix).resolve() in where.parents, f"sessionward imported from {where}")
    check(
        checkout.resolve() not in where.parents, f"sessionward imported from the checkout: {where}"
    )
    check(Path.cwd().resolve() != checkout.resolve(), "the tour runs inside the checkout")


def license_shipped() -> None:
    files = importlib.metadata.files("sessionward") or []
    check(any(file.name == "LICENSE" for file in files), "no LICENSE in the wheel")


def extras_exist(text: str) -> None:
    offered = set(importlib.metadata.metadata("sessionward").get_all("Provides-Extra") or [])
    named: set[str] = set()
    for line in text.splitlines():
        if "pip install" in line and "sessionward" in line:
            named.update(re.findall(r"\[([a-z0-9-]+)\]", line))
    check(named, "the README names no extra")
    check(named <= offered, f"extras the README names but the wheel lacks: {named - offered}")


def commands_exist(text: str) -> None:
    named: set[str] = set()
    for block in code_blocks(text):
        named.update(re.findall(r"^(?:\$ )?sessionward ([a-z][a-z-]*)", block, flags=re.M))
    named.update(re.findall(r"`sessionward ([a-z][a-z-]*)", text))
    check(named, "the README names no command")
    for command in sorted(named):
        run(command, "--help")


def names_import(text: str) -> None:
    names: set[str] = set()
    for block in code_blocks(text, "python"):
        for module, members in re.findall(r"^from (\S+) import (.+)$", block, flags=re.M):
            names.update(f"{module}.{member.strip()}" for member in members.split(","))
    names.update(re.findall(r"`(sessionward(?:\.\w+)+)", text))
    check(names, "the README names no Python module")
    for name in sorted(names):
        resolve(name)


def resolve(name: str) -> Any:
    """A module, or a member of the longest module prefix of ``name``."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            check(hasattr(found, attribute), f"the README names {name}, which does not exist")
            found = getattr(found, attribute)
        return found
    raise Failed(f"the README names {name}, which does not import")


def links_resolve(text: str, checkout: Path) -> None:
    """Relative links resolve in the source tree (the repository's pages): none is in a
    wheel, so the README on PyPI needs them to be pages of the docs site or the repository."""
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    relative = sorted({link for link in links if "://" not in link})
    print("relative links:", ", ".join(relative))
    missing = [link for link in relative if not (checkout / link).exists()]
    check(not missing, f"README links to files that do not exist: {missing}")


def plugins_load() -> None:
    found = importlib.metadata.entry_points()
    for group in ("pytest11", "sqlalchemy.plugins"):
        points = [point for point in found.select(group=group) if point.name == "sessionward"]
        check(points, f"no {group} entry point 'sessionward'")
        if group == "pytest11":
            # pytest is not a dependency (a pytest user has it): present, not imported.
            check(importlib.util.find_spec(points[0].module), f"no module {points[0].value}")
        else:
            points[0].load()


def policy_example(workdir: Path) -> None:
    policy = workdir / "policy.toml"
    policy.write_text(run("policy", "example"))
    run("policy", "check", str(policy))


# --------------------------------------------------------------------------- the tour


class Stage:
    """A throwaway PostgreSQL with an application role and the tour's sessions."""

    def __init__(self, server: Any) -> None:
        import psycopg

        self.psycopg = psycopg
        self.server = server
        self.connections: list[Any] = []
        self.threads: list[threading.Thread] = []
        self.errors: dict[str, BaseException | None] = {}
        self.admin = psycopg.connect(server.url, autocommit=True)
        # A plain login role: sessionward never ends superusers' sessions unless asked.
        self.admin.execute("CREATE ROLE app LOGIN")
        for database in ("shop", "test_app"):
            self.admin.execute(f"CREATE DATABASE {database} OWNER app")
        with self.connect("shop", "setup", autocommit=True) as conn:
            conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance numeric)")
            conn.execute("INSERT INTO accounts VALUES (1, 100)")

    def connect(self, database: str, app: str, *, autocommit: bool = False) -> Any:
        conn = self.psycopg.connect(
            self.server.url_for(database, user="app"),
            autocommit=autocommit,
            application_name=app,
        )
        self.connections.append(conn)
        return conn

    def pid(self, conn: Any) -> int:
        return int(conn.info.backend_pid)

    def alive(self, pid: int) -> bool:
        row = self.admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        return bool(row and row[0])

    def wait_for(self, what: str, sql: str, params: tuple[Any, ...] = ()) -> None:
        deadline = time.monotonic() + 30
        while not (self.admin.execute(sql, params).fetchone() or [False])[0]:
            check(time.monotonic() < deadline, f"timed out waiting for {what}")
            time.sleep(0.05)

    def in_thread(self, name: str, conn: Any, sql: str) -> None:
        def target() -> None:
            try:
                conn.execute(sql)
                self.errors[name] = None
            except BaseException as error:
                self.errors[name] = error

        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def finished(self, name: str) -> BaseException | None:
        for thread in self.threads:
            if thread.name == name:
                thread.join(TIMEOUT)
        check(name in self.errors, f"{name} did not finish")
        return self.errors[name]

    def blocker(self, app: str) -> int:
        """A worker idle in a transaction holding a row lock, and a request blocked on it."""
        holder = self.connect("shop", app)
        holder.execute("UPDATE accounts SET balance = balance - 42.00 WHERE id = 1")
        waiter = self.connect("shop", f"{app}-waiter", autocommit=True)
        self.in_thread(
            f"{app}-waiter", waiter, "UPDATE accounts SET balance = balance + 1 WHERE id = 1"
        )
        self.wait_for(
            "the blocked update",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            " AND wait_event_type = 'Lock'",
            (f"{app}-waiter",),
        )
        return self.pid(holder)

    def close(self) -> None:
        for conn in self.connections:
            with contextlib.suppress(Exception):
                conn.close()
        with contextlib.suppress(Exception):
            self.admin.close()


def tour(text: str, workdir: Path, stage: Stage, case: Callable[[str], Any]) -> None:
    lines = [
        shlex.split(line, comments=True)
        for block in code_blocks(section(text, "A tour in 30 seconds"), "sh")
        for line in block.splitlines()
        if line.strip()
    ]
    check(lines, "the tour has no command")
    holder = stage.blocker("billing-worker")
    report = stage.connect("shop", "report-daily", autocommit=True)
    report_pid = stage.pid(report)
    stage.in_thread("report", report, "SELECT pg_sleep(600)")
    stage.wait_for(
        "the slow report",
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'report-daily'"
        " AND query LIKE 'SELECT pg_sleep%%' AND state = 'active'",
    )
    leftovers = [stage.pid(stage.connect("test_app", "leftover")) for _ in range(2)]
    recorded_blocker = 0

    def known(argv: list[str]) -> Callable[[], None]:
        nonlocal recorded_blocker
        words = argv[1:]
        if words == ["ls"]:
            return lambda: check(str(holder) in run("ls"), "ls does not list the blocker")
        if words[:1] == ["ls"] and "--json" in words and "--pgbouncer" not in words:
            return lambda: json.loads(run(*words)) and None
        if words == ["blockers"]:
            return lambda: check(str(holder) in run("blockers"), "blockers misses the root")
        if words == ["terminate", "--blocked", "--roots"]:

            def terminate() -> None:
                run(*words, stdin="y\n")  # it asks first: answer as a user would
                check(not stage.alive(holder), "the root blocker is still there")
                check(stage.finished("billing-worker-waiter") is None, "the waiter failed")

            return terminate
        if words[:1] == ["cancel"] and len(words) == 2 and words[1].isdigit():

            def cancel() -> None:
                run("cancel", str(report_pid), stdin="y\n")
                error = stage.finished("report")
                check(
                    getattr(error, "sqlstate", None) == "57014",
                    f"the report was not cancelled: {error!r}",
                )
                check(stage.alive(report_pid), "cancel ended the session")

            return cancel
        if words == ["dropdb", "test_app", "--force"]:

            def dropdb() -> None:
                run(*words, stdin="y\n")
                check(not any(stage.alive(pid) for pid in leftovers), "leftovers remain")
                stage.wait_for(
                    "test_app gone",
                    "SELECT count(*) = 0 FROM pg_database WHERE datname = 'test_app'",
                )

            return dropdb
        if words == ["reap", "--policy", "policy.toml"]:
            # One sweep of the example policy (`sessionward policy example`).
            return lambda: run(*words, "--once") and None
        if words == ["top"]:
            # The live screen needs a terminal; the README's scripted form of it:
            return lambda: json.loads(run("top", "--once", "--json")) and None
        if words[:1] == ["record"] and "--to" in words:

            def record() -> None:
                nonlocal recorded_blocker
                recorded_blocker = stage.blocker("ledger-worker")
                run(*words, "--interval", "1s", "--count", "2")
                check((workdir / words[words.index("--to") + 1]).exists(), "no recording")

            return record
        if words[:1] == ["history"] and "--at" in words:

            def history() -> None:
                at = words.index("--at") + 1
                now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
                shown = run(*words[:at], now, *words[at + 1 :])
                if "--blockers" in words:
                    check(str(recorded_blocker) in shown, "history misses the recorded blocker")
                stage.admin.execute("SELECT pg_terminate_backend(%s)", (recorded_blocker,))

            return history
        if words[:1] == ["ls"] and "--pgbouncer" in words:

            def pgbouncer() -> None:
                admin = os.environ.get("SESSIONWARD_TEST_PGBOUNCER_ADMIN_DSN")
                check(admin, "SESSIONWARD_TEST_PGBOUNCER_ADMIN_DSN is not set")
                at = words.index("--pgbouncer") + 1
                # The server behind that PgBouncer, not the throwaway one.
                server = os.environ.get("SESSIONWARD_TEST_PG_DSN")
                check(server, "SESSIONWARD_TEST_PG_DSN is not set")
                run(*words[:at], str(admin), *words[at + 1 :], "--dsn", str(server))

            return pgbouncer
        raise Failed(f"a tour line .ci/wheel_tour.py does not know: {shlex.join(argv)}")

    for argv in lines:
        check(argv[0] == "sessionward", f"not a sessionward command: {shlex.join(argv)}")
        case(f"tour: {shlex.join(argv)}")(known(argv))


# --------------------------------------------------------------------------- the report


class Report:
    def __init__(self) -> None:
        self.cases: list[tuple[str, float, str | None]] = []

    def case(self, name: str) -> Callable[[Callable[[], Any]], None]:
        def run_case(body: Callable[[], Any]) -> None:
            print(f"\n=== {name}", flush=True)
            started = time.monotonic()
            failure = None
            try:
                body()
            except Failed as error:
                failure = str(error)
            except Exception:
                failure = traceback.format_exc()
            if failure:
                print(f"FAILED: {failure}", flush=True)
            self.cases.append((name, time.monotonic() - started, failure))

        return run_case

    def write(self, path: Path) -> bool:
        failed = [case for case in self.cases if case[2]]
        suite = ET.Element(
            "testsuite", name="wheel", tests=str(len(self.cases)), failures=str(len(failed)),
            errors="0", skipped="0",
        )  # fmt: skip
        for name, seconds, failure in self.cases:
            element = ET.SubElement(
                suite, "testcase", classname="wheel_tour", name=name, time=f"{seconds:.3f}"
            )
            if failure:
                ET.SubElement(element, "failure", message=failure.splitlines()[0]).text = failure
        path.parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
        print(f"\n{len(self.cases) - len(failed)} of {len(self.cases)} checks passed")
        return not failed


@contextlib.contextmanager
def embedded() -> Iterator[Any]:
    from sessionward.embedded import EmbeddedPostgres

    server = EmbeddedPostgres()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def main(report_path: str, checkout: str) -> int:
    workdir = Path.cwd()
    report = Report()
    case = report.case
    text = ""

    def load() -> None:
        nonlocal text
        text = readme()

    case("README in the wheel's metadata")(load)
    case("imported from the venv, not the checkout")(lambda: installed_outside(Path(checkout)))
    case("LICENSE in the wheel")(license_shipped)
    if text:
        case("every extra the README names")(lambda: extras_exist(text))
        case("every command the README names")(lambda: commands_exist(text))
        case("every Python name the README names")(lambda: names_import(text))
        case("the README's relative links resolve")(lambda: links_resolve(text, Path(checkout)))
    case("the pytest and SQLAlchemy plugins")(plugins_load)
    case("policy.toml from `sessionward policy example`")(lambda: policy_example(workdir))
    case("`sessionward demo` (make demo)")(lambda: run("demo") and None)

    def mariadb() -> None:
        url = os.environ.get("SESSIONWARD_TEST_MYSQL_DSN")
        check(url, "SESSIONWARD_TEST_MYSQL_DSN is not set")
        run("ls", "--dsn", str(url))
        run("blockers", "--dsn", str(url))

    case("ls and blockers on MariaDB (a mysql:// URL)")(mariadb)

    def on_embedded() -> None:
        with embedded() as server:
            os.environ["DATABASE_URL"] = server.url
            stage = Stage(server)
            try:
                tour(text, workdir, stage, case)
            finally:
                stage.close()

    if text:
        case("the tour, on a throwaway PostgreSQL")(on_embedded)
    return 0 if report.write(Path(report_path)) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
