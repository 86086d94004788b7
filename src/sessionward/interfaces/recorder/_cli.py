"""``sessionward record`` (the flight recorder) and ``sessionward history`` (what it saw)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from ..._control import SessionControl
from ...core import (
    ConfigurationError,
    PermissionDenied,
    SessionwardError,
    Snapshot,
    format_age,
    lock_forest,
    redact_url,
)
from ...core._snapshot_json import snapshot_to_dict
from .._params import DURATION
from .._text import printable
from ..shell import _render
from ..shell._process import say
from ..shell._signals import raise_pending
from ._episodes import find_episodes
from ._store import Recorder, Recording, StoredFrame
from ._values import MOMENT, SIZE

DEFAULT_INTERVAL_SECONDS = 5.0
DEFAULT_RETAIN_SECONDS = 7 * 86400.0
DEFAULT_MAX_SIZE = "512MiB"
HISTORY_SCHEMA = "sessionward.history/1"
#: A moment this long after the last frame (or three intervals, if longer) is past the end.
_END_SLACK_SECONDS = 60.0
_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_LATEST = dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)


@click.command("record")
@click.option(
    "--dsn", metavar="URL", help="Server URL [default: $DATABASE_URL, else the libpq variables]."
)
@click.option("--to", "path", required=True, metavar="FILE", help="The recording (SQLite).")
@click.option(
    "--interval",
    "interval_seconds",
    type=DURATION,
    default=DEFAULT_INTERVAL_SECONDS,
    show_default=f"{DEFAULT_INTERVAL_SECONDS:g}s",
    help="Time between frames.",
)
@click.option(
    "--retain",
    "--keep",
    "retain_seconds",
    type=DURATION,
    default=DEFAULT_RETAIN_SECONDS,
    show_default="7d",
    help="Drop frames older than this.",
)
@click.option(
    "--max-size",
    "max_bytes",
    type=SIZE,
    default=DEFAULT_MAX_SIZE,
    show_default=True,
    help="Drop the oldest frames to keep the file under this size (512MiB, 500MB).",
)
@click.option(
    "--count", type=click.IntRange(min=1), help="Stop after this many frames [default: never]."
)
def record_command(dsn: str | None, path: str, interval_seconds: float, retain_seconds: float,
                   max_bytes: int, count: int | None) -> None:  # fmt: skip
    """Record a snapshot of every session every --interval into a SQLite file.

    Sessions, ages, queries and lock waits, compressed; frames past --retain or
    over --max-size are dropped, oldest first. A lost server is retried every
    interval. SIGTERM or Ctrl-C stops it between two frames, the file intact.
    One recorder per file: a second one is refused.
    """
    from ..shell._target import open_control

    if interval_seconds < 0.1:
        raise ConfigurationError("--interval: at least 0.1s")
    if retain_seconds <= 0:
        raise ConfigurationError("--retain: must be longer than 0s")
    with Recorder(
        path, interval_seconds=interval_seconds, retain_seconds=retain_seconds, max_bytes=max_bytes
    ) as recorder:
        control: SessionControl | None = open_control(dsn)
        try:
            _record(recorder, control, dsn, interval_seconds=interval_seconds, count=count)
        finally:
            if control is not None:
                control.close()


def _record(recorder: Recorder, control: SessionControl | None, dsn: str | None, *,
            interval_seconds: float, count: int | None) -> None:  # fmt: skip
    from ..shell._target import open_control

    written = 0
    outage = False
    try:
        while True:
            raise_pending()  # a signal whose exception a lazy import swallowed
            started = time.monotonic()
            try:
                if control is None:
                    control = open_control(dsn)
                snapshot = control.snapshot()
                own_pids = (control.own_pid,)
            except (ConfigurationError, PermissionDenied):
                raise
            except SessionwardError as error:
                # The server went away (restart, failover, our session ended): keep trying.
                if not outage:
                    say(f"server lost, retrying every {format_age(interval_seconds)}: "
                        f"{printable(redact_url(str(error)))}")  # fmt: skip
                outage = True
                if control is not None:
                    control.close()
                control = None
            else:
                if outage:
                    say("server back, recording again")
                    outage = False
                try:
                    recorder.write(snapshot, own_pids=own_pids)
                except sqlite3.Error as error:
                    raise ConfigurationError(f"{recorder.path}: cannot write: {error}") from None
                written += 1
                if count is not None and written >= count:
                    return
            time.sleep(max(0.0, started + interval_seconds - time.monotonic()))
    finally:
        if control is not None:
            control.close()


@click.command("history")
@click.argument("path", metavar="FILE")
@click.option("--at", "at", type=MOMENT, metavar="TIME",
              help="Show the frame nearest TIME, at or before it ('2026-12-07 03:12', local "
                   "time unless an offset is given).")  # fmt: skip
@click.option("--between", nargs=2, type=MOMENT, metavar="START END",
              help="Frames from START to END.")  # fmt: skip
@click.option("--pid", type=click.IntRange(min=1), help="With --between: one session's life.")
@click.option("--blockers", is_flag=True, help="With --at: the lock-wait forest, not the table.")
@click.option("--episodes", is_flag=True,
              help="Blocking episodes (root blocker, start, end, waiters), in --between "
                   "or the whole recording.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history_command(path: str, at: dt.datetime | None,
                    between: tuple[dt.datetime, dt.datetime] | None, pid: int | None,
                    blockers: bool, episodes: bool, as_json: bool) -> None:  # fmt: skip
    """Show what a recording saw: who blocked whom --at a moment, a session's life, or
    the blocking episodes.

    Without --at, --between or --episodes: what the file holds (frames, first, last).
    """
    if at is not None and between:
        raise ConfigurationError("choose one of --at and --between")
    if pid is not None and not between:
        raise ConfigurationError("--pid needs --between START END")
    if blockers and at is None:
        raise ConfigurationError("--blockers needs --at")
    if episodes and (at is not None or pid is not None):
        raise ConfigurationError("--episodes goes with --between only")
    if between and between[1] < between[0]:
        raise ConfigurationError("--between: END is before START")
    with _reading(path) as recording:
        if episodes:
            _show_episodes(recording, between, as_json=as_json)
        elif at is not None:
            _show_at(recording, at, blockers=blockers, as_json=as_json)
        elif between:
            start, end = between
            if pid is not None:
                _show_life(recording, start, end, pid, as_json=as_json)
            else:
                _show_frames(recording, start, end, as_json=as_json)
        else:
            _show_summary(recording, as_json=as_json)


@contextmanager
def _reading(path: str) -> Iterator[Recording]:
    recording = Recording(path)
    try:
        yield recording
    except sqlite3.Error as error:
        raise ConfigurationError(f"{path}: unreadable recording ({error})") from None
    finally:
        recording.close()


def _without_own(frame: StoredFrame) -> Snapshot:
    """The frame's snapshot without the recorder's own sessions (the listing already
    leaves them out; this holds for a recording made by another tool too)."""
    own = set(frame.own_pids)
    return frame.snapshot.with_sessions(
        tuple(s for s in frame.snapshot.sessions if s.pid not in own)
    )


def _show_at(recording: Recording, at: dt.datetime, *, blockers: bool, as_json: bool) -> None:
    summary = recording.summary()
    if summary.first is None or summary.last is None:
        raise ConfigurationError(f"{recording.path}: the recording holds no frame")
    if at < summary.first:
        raise ConfigurationError(
            f"--at {at.isoformat()}: before the recording starts ({summary.first.isoformat()})"
        )
    slack = max(_END_SLACK_SECONDS, 3 * (summary.interval_seconds or 0.0))
    if (at - summary.last).total_seconds() > slack:
        raise ConfigurationError(
            f"--at {at.isoformat()}: after the recording ends ({summary.last.isoformat()})"
        )
    frame = recording.at_or_before(at)
    assert frame is not None
    snapshot = _without_own(frame)
    forest = lock_forest(snapshot)
    if as_json:
        document = {
            "schema": HISTORY_SCHEMA,
            "requested": at.isoformat(),
            "taken_at": frame.taken_at.isoformat(),
            "own_pids": list(frame.own_pids),
            "snapshot": snapshot_to_dict(snapshot),
            "forest": [_render._node_dict(node) for node in forest],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    console = _render.make_console()
    console.print(
        Text(
            f"frame of {frame.taken_at.isoformat()} (nearest at or before {at.isoformat()})",
            style="bold",
        )
    )
    if blockers:
        if forest:
            console.print(_render.forest_tree(forest))
        else:
            console.print(_render.plain("No session waited for a lock."))
        return
    shown = sorted(
        (s for s in snapshot.sessions if s.is_client),
        key=lambda s: (_render.SORT_KEYS["xact"](s), s.pid),
    )
    if shown:
        console.print(_render.sessions_table(snapshot, shown, width=console.width))
    console.print(Text(_render.summary_line(snapshot, shown), style="dim"))


def _show_life(recording: Recording, start: dt.datetime, end: dt.datetime, pid: int, *,
               as_json: bool) -> None:  # fmt: skip
    rows: list[dict[str, Any]] = []
    for frame in recording.between(start, end):
        session = frame.snapshot.get(pid)
        if session is None or pid in frame.own_pids:
            continue
        (row,) = snapshot_to_dict(frame.snapshot, sessions=(session,))["sessions"]
        rows.append({"taken_at": frame.taken_at.isoformat(), **row})
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    console = _render.make_console()
    if not rows:
        console.print(_render.plain(f"pid {pid} is in no frame from {start} to {end}."))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("TIME", "STATE", "XACT", "WAIT", "BLOCKED BY", "BLOCKING", "QUERY"):
        table.add_column(name, overflow="ellipsis", no_wrap=True)
    for row in rows:
        table.add_row(
            row["taken_at"],
            _render.safe(row["state"]),
            format_age(row["xact_age_seconds"]),
            _render.safe(row["wait_target"] or row["wait"]),
            " ".join(map(str, row["blocked_by"])),
            " ".join(map(str, row["blocking"])),
            _render.safe(_render.one_line(row["query"])[:120]),
        )
    console.print(table)


def _show_frames(recording: Recording, start: dt.datetime, end: dt.datetime, *,
                 as_json: bool) -> None:  # fmt: skip
    rows: list[dict[str, Any]] = []
    for frame in recording.between(start, end):
        snapshot = _without_own(frame)
        forest = lock_forest(snapshot)
        rows.append({
            "taken_at": frame.taken_at.isoformat(),
            "sessions": len(snapshot.sessions),
            "waiting": sum(1 for s in snapshot.sessions if s.blocked_by),
            "roots": [{"pid": n.pid, "waiting_total": len(n.descendants())} for n in forest],
        })  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    console = _render.make_console()
    for row in rows:
        roots = ", ".join(f"{r['pid']} holds up {r['waiting_total']}" for r in row["roots"])
        console.print(
            Text(
                f"{row['taken_at']}  {row['sessions']} sessions  {row['waiting']} waiting"
                + (f"  roots: {roots}" if roots else "")
            )
        )


def _show_episodes(recording: Recording, between: tuple[dt.datetime, dt.datetime] | None, *,
                   as_json: bool) -> None:  # fmt: skip
    start, end = between or (_EARLIEST, _LATEST)
    found = find_episodes(recording.between(start, end))
    if as_json:
        sys.stdout.write(json.dumps([e.to_dict() for e in found], indent=2) + "\n")
        return
    console = _render.make_console()
    if not found:
        console.print(_render.plain("No session waited for a lock in the recording."))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("ROOT", "START", "END", "LASTED", "WAITERS", "LONGEST WAIT", "USER", "APP",
                 "CLIENT", "QUERY"):  # fmt: skip
        table.add_column(name, overflow="ellipsis", no_wrap=True)
    for e in found:
        s = e.root
        table.add_row(
            Text(str(s.pid), style="bold red"),
            e.start.isoformat(timespec="seconds"),
            e.end.isoformat(timespec="seconds"),
            format_age(e.duration_seconds),
            str(len(e.waiters)),
            format_age(e.longest_wait_seconds),
            _render.safe(s.user),
            _render.safe(s.application),
            _render.safe(s.client),
            _render.safe(_render.one_line(s.query)[:120]),
        )
    console.print(table)


def _show_summary(recording: Recording, *, as_json: bool) -> None:
    summary = recording.summary()
    document = {
        "frames": summary.frames,
        "first": summary.first.isoformat() if summary.first else None,
        "last": summary.last.isoformat() if summary.last else None,
        "interval_seconds": summary.interval_seconds,
    }
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    click.echo(
        f"{printable(recording.path)}: {summary.frames} frames"
        + (f" from {document['first']} to {document['last']}" if summary.frames else "")
    )
