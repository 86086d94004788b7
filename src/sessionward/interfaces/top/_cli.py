"""The ``top`` command: one frame with ``--once``, else the live Textual view."""

from __future__ import annotations

import sys
from typing import Any

import click

from ...core import ConfigurationError, Safety
from .._params import DURATION
from ..shell import _render
from ..shell._options import build_filter, filter_options
from ._frame import frame_csv, frame_json, frame_renderable, take_frame

DEFAULT_INTERVAL_SECONDS = 2.0


@click.command("top")
@click.option(
    "--dsn",
    metavar="URL",
    help="Server URL: postgresql://… mysql://… mariadb://…  "
    "[default: $DATABASE_URL, else the libpq variables PGHOST, PGUSER, …]",
)
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
@click.option("--once", is_flag=True, help="Print one frame and exit (for scripts).")
@click.option("--json", "as_json", is_flag=True, help="With --once: the frame as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="With --once: CSV, one row per session.")
@click.option(
    "--interval",
    "interval_seconds",
    type=DURATION,
    default=DEFAULT_INTERVAL_SECONDS,
    show_default=f"{DEFAULT_INTERVAL_SECONDS:g}s",
    help="Live view: time between refreshes.",
)
@click.option("--include-superusers", is_flag=True,
              help="Live view: allow ending superusers' sessions.")  # fmt: skip
@click.option("--include-replication", is_flag=True,
              help="Live view: allow ending replication senders.")  # fmt: skip
@click.option("--replay", "replay_path", metavar="FILE",
              help="Show a recording of 'sessionward record' instead of a server: [ and ] "
                   "step, n jumps to the next blocking episode.")  # fmt: skip
def top_command(dsn: str | None, include_background: bool, sort: str, once: bool,
                as_json: bool, as_csv: bool, interval_seconds: float, replay_path: str | None,
                include_superusers: bool, include_replication: bool,
                **filters: Any) -> None:  # fmt: skip
    """Watch sessions and the blocker forest live; --once prints one frame."""
    from ..shell._target import open_control

    if as_json and as_csv:
        raise ConfigurationError("choose one of --json and --csv")
    if (as_json or as_csv) and not once:
        raise ConfigurationError("--json and --csv need --once")
    if interval_seconds < 0.2:
        raise ConfigurationError("--interval: at least 0.2s")
    if replay_path is not None and (once or dsn is not None):
        raise ConfigurationError(
            "--replay takes no --once or --dsn (one recorded frame: 'sessionward history FILE "
            "--at TIME')"
        )
    session_filter = build_filter(filters, include_background=include_background)
    if not once:
        from ._live import run_live

        safety = Safety(
            include_superusers=include_superusers, include_replication=include_replication
        )
        run_live(dsn, session_filter, sort=sort, interval_seconds=interval_seconds,
                 replay=replay_path, safety=safety)  # fmt: skip
        return
    with open_control(dsn) as control:
        frame = take_frame(control, session_filter, sort=sort)
    if as_json:
        sys.stdout.write(frame_json(frame) + "\n")
    elif as_csv:
        sys.stdout.write(frame_csv(frame))
    else:
        console = _render.make_console()
        console.print(frame_renderable(frame, width=console.width))
