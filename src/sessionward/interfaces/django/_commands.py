"""``manage.py sessions`` and ``manage.py endsessions``: the CLI on a Django database's server.

Same filters, protections, tables and JSON as ``sessionward ls`` and
``sessionward terminate``; ``--database`` is the Django alias (as in every
``manage.py`` command), so the database-name filter is ``--database-name``.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError  # type: ignore[import-untyped]
from django.db import DEFAULT_DB_ALIAS, connections  # type: ignore[import-untyped]
from rich.console import Console, RenderableType
from rich.text import Text

from ..._control import DEFAULT_WAIT_SECONDS, SessionControl, connect
from ...core import (
    ConfigurationError,
    EndResult,
    Outcome,
    Safety,
    SessionwardError,
    parse_duration,
    redact_url,
    root_blockers,
)
from ...core._endings import Action, candidates, failure_summary
from ...integrations.django._databases import server_url, vendor_of
from .._text import printable
from ..shell import _render
from ..shell._options import build_filter

#: Exit statuses, as the CLI's: 1 some session not ended, 2 bad input or no server.
EXIT_NOT_ALL_ENDED = 1
EXIT_ERROR = 2


def terminal_width() -> int:
    """The terminal's width, else ``COLUMNS``, else the CLI's width for pipes."""
    return shutil.get_terminal_size((_render.PIPE_WIDTH, 24)).columns


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ConfigurationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """The filters of ``sessionward ls``; their destinations are the CLI's ``FILTER_KEYS``."""
    many: dict[str, Any] = {"action": "append", "default": []}
    parser.add_argument(
        "--database-name",
        "-d",
        dest="databases",
        metavar="NAME",
        **many,
        help="Database name; * wildcards; repeat for any of several.",
    )
    parser.add_argument(
        "--user",
        "-U",
        dest="users",
        metavar="NAME",
        **many,
        help="User (role) name; * wildcards; repeatable.",
    )
    parser.add_argument(
        "--app",
        dest="applications",
        metavar="NAME",
        **many,
        help="Application name; * wildcards; repeatable.",
    )
    parser.add_argument(
        "--client",
        dest="clients",
        metavar="ADDR",
        **many,
        help="Client address or CIDR range, or 'local' for socket clients; repeatable.",
    )
    parser.add_argument(
        "--state",
        dest="states",
        metavar="STATE",
        **many,
        help="active, idle, idle-in-transaction, …; repeatable.",
    )
    parser.add_argument(
        "--query",
        dest="query",
        metavar="REGEX",
        help="Current or last statement matches this regex (case-insensitive).",
    )
    parser.add_argument(
        "--idle-over",
        dest="idle_over",
        type=_duration,
        metavar="DURATION",
        help="Idle (in a transaction or not) for longer than this.",
    )
    parser.add_argument(
        "--xact-over",
        dest="xact_over",
        type=_duration,
        metavar="DURATION",
        help="Transaction open for longer than this.",
    )
    parser.add_argument(
        "--query-over",
        dest="query_over",
        type=_duration,
        metavar="DURATION",
        help="Current statement running for longer than this (active sessions).",
    )
    parser.add_argument(
        "--blocking", action="store_true", help="Holds a lock another session waits for."
    )
    parser.add_argument("--blocked", action="store_true",
                        help="Waits for a lock another session holds.")  # fmt: skip


def _alias_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        default=DEFAULT_DB_ALIAS,
        metavar="ALIAS",
        help='The Django database whose server to read. Defaults to "default".',
    )


class _SessionsCommand(BaseCommand):  # type: ignore[misc]
    """What both commands share: the server of an alias, errors as one line, rich output."""

    def open_control(self, alias: str) -> SessionControl:
        if alias not in connections:
            raise CommandError(f"no database alias {alias!r} in DATABASES", returncode=EXIT_ERROR)
        settings_dict = connections[alias].settings_dict
        if vendor_of(settings_dict) is None:
            raise CommandError(
                f"database {alias!r} uses {settings_dict.get('ENGINE')!r}; sessionward reads "
                "PostgreSQL and MySQL/MariaDB servers only",
                returncode=EXIT_ERROR,
            )
        return connect(server_url(settings_dict))

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except SessionwardError as error:
            raise CommandError(printable(redact_url(str(error))), returncode=EXIT_ERROR) from None

    def use_color(self, options: dict[str, Any]) -> None:
        """Color as Django's own output: on a terminal, unless ``--no-color``."""
        self._color = bool(
            options.get("force_color") or (not options.get("no_color") and self.stdout.isatty())
        )

    def print_rich(self, renderable: RenderableType, *, style: str | None = None) -> None:
        buffer = io.StringIO()
        color = getattr(self, "_color", False)
        console = Console(
            file=buffer,
            width=terminal_width(),
            force_terminal=color,
            no_color=not color,
            highlight=False,
            soft_wrap=False,
        )
        console.print(renderable, style=style)
        self.stdout.write(buffer.getvalue(), ending="")


class SessionsCommand(_SessionsCommand):
    help = (
        "List the sessions of the server behind a Django database, idle ones included, "
        "with their ages, waits and blockers (like `sessionward ls`)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _alias_argument(parser)
        add_filter_arguments(parser)
        parser.add_argument(
            "--all",
            dest="include_background",
            action="store_true",
            help="Also list server background processes and replication senders.",
        )
        parser.add_argument(
            "--sort",
            choices=sorted(_render.SORT_KEYS),
            default="xact",
            help="Sort key; ages sort longest first. Defaults to xact.",
        )
        output = parser.add_mutually_exclusive_group()
        output.add_argument(
            "--json", dest="as_json", action="store_true", help="Print the snapshot as JSON."
        )
        output.add_argument("--csv", dest="as_csv", action="store_true",
                            help="Print CSV, one row per session.")  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        self.use_color(options)
        session_filter = build_filter(options, include_background=options["include_background"])
        with self.open_control(options["database"]) as control:
            snapshot = control.snapshot()
        sort_key = _render.SORT_KEYS[options["sort"]]
        shown = sorted(session_filter.select(snapshot), key=lambda s: (sort_key(s), s.pid))
        if options["as_json"]:
            self.stdout.write(_render.sessions_json(snapshot, shown))
            return
        if options["as_csv"]:
            self.stdout.write(_render.sessions_csv(snapshot, shown), ending="")
            for note in snapshot.degraded:
                self.stderr.write(printable(f"sessionward: note: {note}"))
            return
        if shown:
            self.print_rich(_render.sessions_table(snapshot, shown, width=terminal_width()))
        self.print_rich(Text(_render.summary_line(snapshot, shown), style="dim"))
        for note in snapshot.degraded:
            self.print_rich(_render.plain(f"note: {note}", style="dim"))


class EndSessionsCommand(_SessionsCommand):
    help = (
        "Terminate (or with --cancel, cancel the statement of) sessions of the server behind "
        "a Django database, chosen by PID or by filter, then confirm each ended (like "
        "`sessionward terminate`). Exits 1 when a chosen session was not ended."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "pids",
            nargs="*",
            type=int,
            metavar="PID",
            help="Sessions to end, by pid (or choose them with filters).",
        )
        _alias_argument(parser)
        add_filter_arguments(parser)
        parser.add_argument(
            "--all-matching",
            action="store_true",
            help="With no filter, choose every client session.",
        )
        parser.add_argument(
            "--roots",
            action="store_true",
            help="End the root blockers behind the chosen sessions instead of "
            "them; a root may lie outside the filter.",
        )
        parser.add_argument(
            "--cancel",
            action="store_true",
            help="Cancel the running statement instead of terminating the session.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would be ended; end nothing."
        )
        parser.add_argument("--yes", "-y", action="store_true", help="Do not ask for confirmation.")
        parser.add_argument(
            "--noinput",
            "--no-input",
            dest="interactive",
            action="store_false",
            help="Never prompt (same as --yes).",
        )
        parser.add_argument(
            "--wait",
            dest="wait_seconds",
            type=_duration,
            default=DEFAULT_WAIT_SECONDS,
            metavar="DURATION",
            help=f"How long to wait for each ending to show. Defaults to "
            f"{DEFAULT_WAIT_SECONDS:g}s.",
        )
        parser.add_argument(
            "--include-superusers", action="store_true", help="Allow ending superusers' sessions."
        )
        parser.add_argument(
            "--include-replication", action="store_true", help="Allow ending replication senders."
        )
        parser.add_argument("--json", dest="as_json", action="store_true",
                            help="Print the outcomes as JSON.")  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        self.use_color(options)
        action = "cancel" if options["cancel"] else "terminate"
        pids: list[int] = list(options["pids"])
        session_filter = build_filter(options)
        if pids and not session_filter.is_empty():
            raise ConfigurationError("give pids or filters, not both")
        if not pids and session_filter.is_empty() and not options["all_matching"]:
            raise ConfigurationError(
                f"no session chosen: give pids, a filter such as --database-name, or "
                f"--all-matching to {action} every client session"
            )
        safety = Safety(
            include_superusers=options["include_superusers"],
            include_replication=options["include_replication"],
        )
        with self.open_control(options["database"]) as control:
            snapshot = control.snapshot()
            chosen = pids or candidates(Action(action), session_filter, snapshot)
            if options["roots"]:
                chosen = list(root_blockers(snapshot, chosen))
            if not chosen:
                self.stdout.write("[]" if options["as_json"] else "No session matches.")
                return
            end = control.cancel if action == "cancel" else control.terminate
            ask = options["interactive"] and not options["yes"] and sys.stdin.isatty()
            if not options["dry_run"] and ask and len(chosen) > 1:
                # Planned on the same snapshot as the action that follows the answer.
                preview = end(chosen, dry_run=True, safety=safety, snapshot=snapshot)
                would_end = sum(1 for r in preview if r.outcome is Outcome.WOULD_END)
                if would_end > 1:
                    self.print_rich(self._table(preview))
                    answer = input(f"{action.capitalize()} these {would_end} sessions? [y/N]: ")
                    if answer.strip().lower() not in ("y", "yes"):
                        raise CommandError("nothing was ended", returncode=EXIT_NOT_ALL_ENDED)
            results = end(
                chosen,
                wait_seconds=options["wait_seconds"],
                safety=safety,
                dry_run=options["dry_run"],
                snapshot=snapshot,
            )
        if options["as_json"]:
            self.stdout.write(_render.results_json(results))
        else:
            self.print_rich(self._table(results))
        _raise_unless_all_ended(results, action)

    def _table(self, results: Sequence[EndResult]) -> RenderableType:
        return _render.results_table(results, width=terminal_width())


def _raise_unless_all_ended(results: Sequence[EndResult], action: str) -> None:
    summary = failure_summary(results, Action(action))
    if summary is not None:
        raise CommandError(printable(summary), returncode=EXIT_NOT_ALL_ENDED)
