"""The ``sessionward`` command: list, explain, cancel and terminate sessions."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.text import Text

from ... import __version__
from ..._control import DEFAULT_WAIT_SECONDS, SessionControl
from ...core import (
    PLATFORMS,
    ConfigurationError,
    DatabaseInUse,
    DropResult,
    EndResult,
    Outcome,
    Safety,
    Session,
    SessionwardError,
    Snapshot,
    redact_url,
    root_blockers,
)
from ...core._endings import Action, candidates, failure_summary, unseen_note
from .._params import DURATION
from .._text import printable
from ..shell import _render
from ..shell._options import build_filter, filter_options, pop_filter_options
from ..shell._process import (
    EXIT_ERROR,
    EXIT_NOT_ALL_ENDED,
    EXIT_OK,
    OutputFailed,
    internal_error,
    say,
)
from ..shell._target import choose_platform, open_control


class NoAnswer(Exception):
    """End of input at a confirmation: nothing was done (exit 1)."""


dsn_option = click.option(
    "--dsn",
    metavar="URL",
    help="Server URL: postgresql://… mysql://… mariadb://…  "
    "[default: $DATABASE_URL, else the libpq variables PGHOST, PGUSER, …]",
)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    invoke_without_command=True,
)
@click.version_option(__version__, prog_name="sessionward")
@click.option(
    "--platform",
    type=click.Choice(PLATFORMS, case_sensitive=False),
    default="auto",
    show_default=True,
    envvar="SESSIONWARD_PLATFORM",
    help="Managed server: end sessions the platform's way (RDS/Aurora mysql.rds_kill, "
    "Azure mysql.az_kill); auto looks. Platform logins (rdsadmin …) are never ended.",
)
@click.pass_context
def cli(ctx: click.Context, platform: str) -> None:
    """See, explain and end PostgreSQL and MariaDB/MySQL sessions."""
    choose_platform(platform.lower())
    if ctx.invoked_subcommand is None:
        # Asked for nothing: the help is the answer, on stdout, as git and docker do.
        click.echo(ctx.get_help())
        ctx.exit(EXIT_OK)


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
@click.option(
    "--by",
    type=click.Choice(["origin"]),
    help="Group sessions by the service and code line their clients named, with counts.",
)
@click.option(
    "--pgbouncer",
    metavar="ADMIN_URL",
    help="Also read this PgBouncer admin console and show the pooler client holding each "
    "session, and the clients waiting for one.",
)
def ls_command(dsn: str | None, include_background: bool, sort: str, as_json: bool,
               as_csv: bool, by: str | None, **filters: Any) -> None:  # fmt: skip
    """List sessions, idle ones included, with their ages, waits and blockers."""
    if as_json and as_csv:
        raise ConfigurationError("choose one of --json and --csv")
    if by is not None and as_csv:
        raise ConfigurationError("--by origin prints a table or --json, not --csv")
    pgbouncer = filters.pop("pgbouncer", None)
    session_filter = build_filter(filters, include_background=include_background)
    if pgbouncer is not None:
        from ._pooler import pooled_ls

        if by is not None:
            raise ConfigurationError("--pgbouncer: not with --by")
        pooled_ls(dsn=dsn, pgbouncer=pgbouncer, session_filter=session_filter,
                  sort_key=_render.SORT_KEYS[sort], as_json=as_json, as_csv=as_csv)  # fmt: skip
        return
    with open_control(dsn) as control:
        snapshot = control.snapshot()
    shown = sorted(
        session_filter.select(snapshot), key=lambda s: (_render.SORT_KEYS[sort](s), s.pid)
    )
    if by is not None:
        _by_origin(snapshot, shown, as_json=as_json)
    elif as_json:  # the snapshot carries its own "degraded" notes
        _write(_render.sessions_json(snapshot, shown) + "\n")
    elif as_csv:
        _write(_render.sessions_csv(snapshot, shown))
        _notes_to_stderr(snapshot)
    else:
        console = _render.make_console()
        if shown:
            console.print(_render.sessions_table(snapshot, shown, width=console.width))
        console.print(Text(_render.summary_line(snapshot, shown), style="dim"))
        _print_notes(console, snapshot)


def _by_origin(snapshot: Snapshot, shown: Sequence[Session], *, as_json: bool) -> None:
    from ._by_origin import group_by_origin, groups_json, groups_table

    groups = group_by_origin(shown)
    if as_json:
        _write(groups_json(snapshot, groups) + "\n")
        return
    console = _render.make_console()
    if groups:
        console.print(groups_table(groups))
    console.print(Text(_render.summary_line(snapshot, shown), style="dim"))
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
        _write(_render.forest_json(forest) + "\n")
        _notes_to_stderr(snapshot)
        return
    console = _render.make_console()
    if forest:
        console.print(_render.forest_tree(forest))
    else:
        console.print(_render.plain("No session waits for a lock."))
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
            click.argument("pids", nargs=-1, type=click.IntRange(min=1)),
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
    if pids and all_matching:
        raise ConfigurationError("give pids or --all-matching, not both")
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
                console.print(_render.plain("No session matches."))
            else:
                click.echo("[]")
            _exit_for((), action, chosen_from=None if pids else snapshot)
            return
        end = control.cancel if action == "cancel" else control.terminate
        if not dry_run and not yes and len(chosen) > 1 and _interactive():
            # The same action, planned on the same snapshot, as the one that runs
            # after the answer: the prompt counts exactly what would be signalled.
            preview = end(chosen, dry_run=True, safety=safety, snapshot=snapshot)
            would_end = sum(1 for r in preview if r.outcome is Outcome.WOULD_END)
            if would_end > 1:
                console.print(_render.results_table(preview, width=console.width))
                _confirm(f"{action.capitalize()} these {would_end} sessions?", "nothing was ended")
        results = end(
            chosen, wait_seconds=wait_seconds, safety=safety, dry_run=dry_run, snapshot=snapshot
        )
    if as_json:
        _write(_render.results_json(results) + "\n")
    else:
        console.print(_render.results_table(results, width=console.width))
    _exit_for(results, action, chosen_from=None if pids else snapshot)


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
        _write(_render.drop_json(result, dry_run=dry_run) + "\n")
    else:
        if result.ended:
            console.print(_render.drop_table(result.ended, width=console.width))
        if not result.dropped:  # once dropped, nothing unseen held it
            for note in result.notes:
                console.print(_render.plain(f"note: {note}", style="dim"))
        if result.dropped:
            console.print(_render.plain(f"dropped database {name}"))
        elif not result.existed:
            console.print(_render.plain(f"database {name} does not exist; nothing to drop"))
        elif dry_run and not result.not_ended:
            console.print(_render.plain(f"would drop database {name}"))
    # A dry run that foresees a session it may not end foresees no drop either.
    if result.existed and not result.dropped and (not dry_run or result.not_ended):
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
    _confirm(f"Drop database {printable(name)}{also}?", "nothing was dropped")


def _refuse_in_use(console: Console, name: str, error: DatabaseInUse, *, force: bool,
                   dry_run: bool, as_json: bool) -> NoReturn:  # fmt: skip
    sessions = error.sessions
    if as_json:
        refused = DropResult(name, dropped=False, existed=True)
        _write(
            _render.drop_json(refused, dry_run=dry_run, in_use=sessions, error=str(error)) + "\n"
        )
    elif sessions:
        console.print(_render.in_use_table(sessions, width=console.width))
    if sessions and not force:
        noun = "session uses" if len(sessions) == 1 else "sessions use"
        line = f"database {name} not dropped: {len(sessions)} {noun} it (add --force to end them)"
    else:
        line = str(error)
    say(printable(redact_url(line)))
    sys.exit(EXIT_NOT_ALL_ENDED)


def _exit_not_dropped(result: DropResult) -> NoReturn:
    failed = result.not_ended
    counts: dict[str, int] = {}
    for r in failed:
        counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
    detail = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    say(
        printable(
            f"database {result.database} not dropped: {len(failed)} of "
            f"{len(result.ended)} sessions on it not ended ({detail})"
        )
    )
    not_permitted = [r for r in failed if r.outcome is Outcome.NOT_PERMITTED]
    if not_permitted:
        say(printable(not_permitted[0].detail or ""))
    sys.exit(EXIT_NOT_ALL_ENDED)


def _exit_for(
    results: Sequence[EndResult], action: str, *, chosen_from: Snapshot | None = None
) -> None:
    """Exit 1 when a session was not ended, or a filter could not see every session."""
    summary = failure_summary(results, Action(action))
    if summary is not None:
        say(printable(summary))
    unseen = unseen_note(chosen_from) if chosen_from is not None else None
    if unseen is not None:
        say(printable(unseen))
    if summary is not None or (chosen_from is not None and chosen_from.unlisted):
        sys.exit(EXIT_NOT_ALL_ENDED)


def _write(text: str) -> None:
    """Machine output (JSON, CSV): exactly the server's text, which click.echo would strip."""
    sys.stdout.write(text)


def _interactive() -> bool:
    """Whether a person can answer a question: stdin is a terminal (and not closed)."""
    return sys.stdin is not None and sys.stdin.isatty()


def _confirm(question: str, refusal: str) -> None:
    """Ask; anything but yes exits 1 having done nothing, and so does end of input."""
    click.echo(f"{question} [y/N]: ", nl=False)
    try:
        answer = input()
    except EOFError:
        click.echo()  # end the prompt's line
        raise NoAnswer(f"no answer; {refusal}") from None
    if answer.strip().lower() not in ("y", "yes"):
        say(refusal)
        sys.exit(EXIT_NOT_ALL_ENDED)


def _print_notes(console: Console, snapshot: Snapshot) -> None:
    """Say under a table what the server would not show, so it is not read as absent."""
    for note in snapshot.degraded:
        console.print(_render.plain(f"note: {note}", style="dim"))


def _notes_to_stderr(snapshot: Snapshot) -> None:
    for note in snapshot.degraded:
        say(printable(f"note: {note}"))


def _register_demo() -> None:
    from .._demo import demo_command

    cli.add_command(demo_command)


_register_demo()


def _register_reaper() -> None:
    from ..reaper import policy_group, reap_command

    cli.add_command(reap_command)
    cli.add_command(policy_group)


_register_reaper()


def _register_pooler() -> None:
    from ._pooler import pgbouncer_end_command

    cli.add_command(pgbouncer_end_command)


_register_pooler()


def _register_top() -> None:
    from ..top import register

    register(cli)


_register_top()


def run(argv: Sequence[str] | None) -> int:
    """Run one command and return its exit status; signals and output failures are main's."""
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        if os.environ.get("_SESSIONWARD_COMPLETE"):
            cli.main(args=args, prog_name="sessionward")  # click's shell completion; exits
        with cli.make_context("sessionward", args) as ctx:
            cli.invoke(ctx)
    except click.exceptions.Exit as done:
        return done.exit_code
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else int(done.code is not None)
    except NoAnswer as error:
        say(str(error))
        return EXIT_NOT_ALL_ENDED
    except click.UsageError as error:
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
        say(f"error: {printable(error.format_message())}{hint}")
        return EXIT_ERROR
    except click.ClickException as error:
        say(f"error: {printable(error.format_message())}")
        return EXIT_ERROR
    except SessionwardError as error:
        say(f"error: {printable(redact_url(str(error)))}")
        return EXIT_ERROR
    except OutputFailed:
        raise  # the process's edge reports it
    except Exception as error:
        return internal_error(error)
    return EXIT_OK
