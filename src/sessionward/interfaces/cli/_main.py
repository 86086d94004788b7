"""The ``sessionward`` command: list, explain, cancel and terminate sessions."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click
from rich.console import Console

from ... import __version__
from ..._control import DEFAULT_WAIT_SECONDS, SessionControl, connect
from ...core import (
    ConfigurationError,
    ConnectionFailed,
    DatabaseInUse,
    DropResult,
    EndResult,
    Outcome,
    Safety,
    SessionwardError,
    Snapshot,
    redact_url,
    root_blockers,
)
from ...core._endings import Action, candidates, failure_summary
from .._params import DURATION
from . import _render
from ._options import build_filter, filter_options, pop_filter_options
from ._target import resolve_url

#: Exit codes: 0 all done, 1 some session not ended, 2 bad input or no server.
EXIT_NOT_ALL_ENDED = 1
EXIT_ERROR = 2
EXIT_INTERNAL = 3


dsn_option = click.option(
    "--dsn",
    metavar="URL",
    help="Server URL: postgresql://… mysql://… mariadb://…  "
    "[default: $DATABASE_URL, else the libpq variables PGHOST, PGUSER, …]",
)


def open_control(dsn: str | None) -> SessionControl:
    resolved = resolve_url(dsn)
    try:
        return connect(resolved.url)
    except ConnectionFailed as error:
        if resolved.source == "libpq":
            raise ConnectionFailed(
                f"{error} (no --dsn or DATABASE_URL given, so libpq defaults and PG* "
                "variables were used)"
            ) from None
        raise


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="sessionward")
def cli() -> None:
    """See, explain and end PostgreSQL and MariaDB/MySQL sessions."""


@cli.command("ls")
@dsn_option
@filter_options
@click.option(
    "--all",
    "include_background",
    is_flag=True,
    help="Also list server background processes and replication senders.",
)
@click.option(
    "--sort",
    type=click.Choice(sorted(_render.SORT_KEYS)),
    default="xact",
    show_default=True,
    help="Sort key; ages sort longest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV, one row per session.")
def ls_command(dsn: str | None, include_background: bool, sort: str, as_json: bool,
               as_csv: bool, **filters: Any) -> None:  # fmt: skip
    """List sessions, idle ones included, with their ages, waits and blockers."""
    if as_json and as_csv:
        raise ConfigurationError("choose one of --json and --csv")
    session_filter = build_filter(filters, include_background=include_background)
    with open_control(dsn) as control:
        snapshot = control.snapshot()
    shown = sorted(
        session_filter.select(snapshot), key=lambda s: (_render.SORT_KEYS[sort](s), s.pid)
    )
    if as_json:  # the snapshot carries its own "degraded" notes
        click.echo(_render.sessions_json(snapshot, shown))
    elif as_csv:
        click.echo(_render.sessions_csv(snapshot, shown), nl=False)
        _notes_to_stderr(snapshot)
    else:
        console = _render.make_console()
        if shown:
            console.print(_render.sessions_table(snapshot, shown, width=console.width))
        console.print(_render.summary_line(snapshot, shown), style="dim")
        _print_notes(console, snapshot)


@cli.command("blockers")
@dsn_option
@click.option("--json", "as_json", is_flag=True, help="Print the lock-wait forest as JSON.")
def blockers_command(dsn: str | None, as_json: bool) -> None:
    """Show who blocks whom: root blockers first, the chain waiting behind each."""
    with open_control(dsn) as control:
        snapshot = control.snapshot()
        forest = control.blockers(snapshot)
    if as_json:
        click.echo(_render.forest_json(forest))
        _notes_to_stderr(snapshot)
        return
    console = _render.make_console()
    if forest:
        console.print(_render.forest_tree(forest))
    else:
        console.print("No session waits for a lock.")
    _print_notes(console, snapshot)


def _ending_command(action: str) -> Callable[[Callable[..., None]], click.Command]:
    verb = "Cancel the running statement of" if action == "cancel" else "Terminate"

    def decorate(function: Callable[..., None]) -> click.Command:
        function.__doc__ = (
            f"{verb} sessions chosen by PID or by filter, then confirm each ended.\n\n"
            "Exit status: 0 when every chosen session ended, 1 when one did not "
            "(still running, not permitted, protected, already gone), 2 on bad input."
        )
        options = [
            click.argument("pids", nargs=-1, type=int),
            dsn_option,
            filter_options,
            click.option("--all-matching", is_flag=True,
                         help="With no filter, choose every client session."),
            click.option("--roots", is_flag=True,
                         help="End the root blockers behind the chosen sessions instead of "
                              "them; a root may lie outside the filter."),
            click.option("--dry-run", is_flag=True, help="Show what would be ended; end nothing."),
            click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation."),
            click.option("--wait", "wait_seconds", type=DURATION,
                         default=DEFAULT_WAIT_SECONDS, show_default=f"{DEFAULT_WAIT_SECONDS:g}s",
                         help="How long to wait for each ending to show."),
            click.option("--include-superusers", is_flag=True,
                         help="Allow ending superusers' sessions."),
            click.option("--include-replication", is_flag=True,
                         help="Allow ending replication senders."),
            click.option("--json", "as_json", is_flag=True, help="Print the outcomes as JSON."),
        ]  # fmt: skip
        for option in reversed(options):
            function = option(function)
        return cli.command(action)(function)

    return decorate


@_ending_command("cancel")
def cancel_command(**kwargs: Any) -> None:
    _end("cancel", **kwargs)


@_ending_command("terminate")
def terminate_command(**kwargs: Any) -> None:
    _end("terminate", **kwargs)


def _end(action: str, *, pids: Sequence[int], dsn: str | None, all_matching: bool, roots: bool,
         dry_run: bool, yes: bool, wait_seconds: float, include_superusers: bool,
         include_replication: bool, as_json: bool, **kwargs: Any) -> None:  # fmt: skip
    session_filter = build_filter(pop_filter_options(kwargs))
    if pids and not session_filter.is_empty():
        raise ConfigurationError("give pids or filters, not both")
    if not pids and session_filter.is_empty() and not all_matching:
        raise ConfigurationError(
            f"no session chosen: give pids, a filter such as --database, or --all-matching "
            f"to {action} every client session"
        )
    safety = Safety(include_superusers=include_superusers, include_replication=include_replication)
    console = _render.make_console()
    with open_control(dsn) as control:
        snapshot = control.snapshot()
        chosen = list(pids) or candidates(Action(action), session_filter, snapshot)
        if roots:
            chosen = list(root_blockers(snapshot, chosen))
        if not chosen:
            if not as_json:
                console.print("No session matches.")
            else:
                click.echo("[]")
            return
        end = control.cancel if action == "cancel" else control.terminate
        if not dry_run and not yes and len(chosen) > 1 and _interactive():
            # The same action, planned on the same snapshot, as the one that runs
            # after the answer: the prompt counts exactly what would be signalled.
            preview = end(chosen, dry_run=True, safety=safety, snapshot=snapshot)
            would_end = sum(1 for r in preview if r.outcome is Outcome.WOULD_END)
            if would_end > 1:
                console.print(_render.results_table(preview, width=console.width))
                if not click.confirm(f"{action.capitalize()} these {would_end} sessions?"):
                    click.echo("sessionward: nothing was ended", err=True)
                    sys.exit(EXIT_NOT_ALL_ENDED)
        results = end(
            chosen, wait_seconds=wait_seconds, safety=safety, dry_run=dry_run, snapshot=snapshot
        )
    if as_json:
        click.echo(_render.results_json(results))
    else:
        console.print(_render.results_table(results, width=console.width))
    _exit_for(results, action)


@cli.command("dropdb")
@click.argument("name")
@dsn_option
@click.option(
    "--force",
    is_flag=True,
    help="End every session on the database first (confirmed gone), then drop it.",
)
@click.option("--if-exists", is_flag=True, help="Succeed when there is no such database.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show the sessions that would be ended; change and drop nothing.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--wait",
    "wait_seconds",
    type=DURATION,
    default=DEFAULT_WAIT_SECONDS,
    show_default=f"{DEFAULT_WAIT_SECONDS:g}s",
    help="How long to wait for each session to end.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def dropdb_command(name: str, dsn: str | None, force: bool, if_exists: bool, dry_run: bool,
                   yes: bool, wait_seconds: float, as_json: bool) -> None:  # fmt: skip
    """Drop database NAME; with --force, first end every session on it.

    PostgreSQL: new connections are refused first (ALLOW_CONNECTIONS false), every
    session on it is terminated and confirmed gone, then DROP DATABASE … WITH (FORCE).
    MariaDB/MySQL: the sessions using it as their schema or holding locks on its
    tables are ended, then DROP DATABASE. Without --force, sessions on it make
    dropdb refuse and change nothing. Never the database sessionward connects to.

    Exit status: 0 when dropped (or it would be, with --dry-run; or it does not
    exist, with --if-exists), 1 when not dropped (sessions on it without --force,
    a session that could not be ended, no confirmation), 2 on bad input.
    """
    console = _render.make_console()
    with open_control(dsn) as control:
        try:
            if not dry_run and not yes and _interactive():
                _confirm_drop(control, console, name, force=force, if_exists=if_exists)
            result = control.drop_database(
                name, force=force, if_exists=if_exists, dry_run=dry_run, wait_seconds=wait_seconds
            )
        except DatabaseInUse as error:
            _refuse_in_use(console, name, error, force=force, dry_run=dry_run, as_json=as_json)
    if as_json:
        click.echo(_render.drop_json(result, dry_run=dry_run))
    else:
        if result.ended:
            console.print(_render.drop_table(result.ended, width=console.width))
        if not result.dropped:  # once dropped, nothing unseen held it
            for note in result.notes:
                console.print(f"note: {note}", style="dim")
        if result.dropped:
            console.print(f"dropped database {name}")
        elif not result.existed:
            console.print(f"database {name} does not exist; nothing to drop")
        elif dry_run:
            console.print(f"would drop database {name}")
    if result.existed and not result.dropped and not dry_run:
        _exit_not_dropped(result)


def _confirm_drop(
    control: SessionControl, console: Console, name: str, *, force: bool, if_exists: bool
) -> None:
    """Show what the drop would end and ask; the preview raises as the real run would."""
    preview = control.drop_database(name, force=force, if_exists=if_exists, dry_run=True)
    if not preview.existed:
        return
    count = len(preview.ended)
    if count:
        console.print(_render.drop_table(preview.ended, width=console.width))
    also = (
        f" and end {'this session' if count == 1 else f'these {count} sessions'}" if count else ""
    )
    if not click.confirm(f"Drop database {name}{also}?"):
        click.echo("sessionward: nothing was dropped", err=True)
        sys.exit(EXIT_NOT_ALL_ENDED)


def _refuse_in_use(console: Console, name: str, error: DatabaseInUse, *, force: bool,
                   dry_run: bool, as_json: bool) -> NoReturn:  # fmt: skip
    sessions = error.sessions
    if as_json:
        refused = DropResult(name, dropped=False, existed=True)
        click.echo(_render.drop_json(refused, dry_run=dry_run, in_use=sessions, error=str(error)))
    elif sessions:
        console.print(_render.in_use_table(sessions, width=console.width))
    if sessions and not force:
        noun = "session uses" if len(sessions) == 1 else "sessions use"
        line = f"database {name} not dropped: {len(sessions)} {noun} it (add --force to end them)"
    else:
        line = str(error)
    click.echo(f"sessionward: {redact_url(line)}", err=True)
    sys.exit(EXIT_NOT_ALL_ENDED)


def _exit_not_dropped(result: DropResult) -> NoReturn:
    failed = result.not_ended
    counts: dict[str, int] = {}
    for r in failed:
        counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
    detail = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    click.echo(
        f"sessionward: database {result.database} not dropped: {len(failed)} of "
        f"{len(result.ended)} sessions on it not ended ({detail})",
        err=True,
    )
    not_permitted = [r for r in failed if r.outcome is Outcome.NOT_PERMITTED]
    if not_permitted:
        click.echo(f"sessionward: {not_permitted[0].detail}", err=True)
    sys.exit(EXIT_NOT_ALL_ENDED)


def _exit_for(results: Sequence[EndResult], action: str) -> None:
    summary = failure_summary(results, Action(action))
    if summary is not None:
        click.echo(f"sessionward: {summary}", err=True)
        sys.exit(EXIT_NOT_ALL_ENDED)


def _interactive() -> bool:
    return sys.stdin.isatty()


def _print_notes(console: Console, snapshot: Snapshot) -> None:
    """Say under a table what the server would not show, so it is not read as absent."""
    for note in snapshot.degraded:
        console.print(f"note: {note}", style="dim")


def _notes_to_stderr(snapshot: Snapshot) -> None:
    for note in snapshot.degraded:
        click.echo(f"sessionward: note: {note}", err=True)


def _register_demo() -> None:
    from .._demo import demo_command

    cli.add_command(demo_command)


_register_demo()


def _register_reaper() -> None:
    from ..reaper import policy_group, reap_command

    cli.add_command(reap_command)
    cli.add_command(policy_group)


_register_reaper()


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the command line; every expected failure is one stderr line and exit 2."""
    try:
        cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="sessionward",
            standalone_mode=False,
        )
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except (click.Abort, KeyboardInterrupt):
        # click turns Ctrl-C (and end of input at a prompt) into Abort.
        click.echo("sessionward: interrupted", err=True)
        sys.exit(130)
    except click.UsageError as error:
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
        click.echo(f"sessionward: error: {error.format_message()}{hint}", err=True)
        sys.exit(EXIT_ERROR)
    except click.ClickException as error:
        click.echo(f"sessionward: error: {error.format_message()}", err=True)
        sys.exit(EXIT_ERROR)
    except SessionwardError as error:
        click.echo(f"sessionward: error: {redact_url(str(error))}", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as error:
        if os.environ.get("SESSIONWARD_DEBUG"):
            raise
        click.echo(
            f"sessionward: internal error: {type(error).__name__}: {redact_url(str(error))} "
            "(set SESSIONWARD_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
    sys.exit(0)
