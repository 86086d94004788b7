"""Start the live view: refuse where it cannot run (no Textual, no terminal, too small),
connect before the screen takes over, and leave it cleanly on SIGTERM."""

from __future__ import annotations

import shutil
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

from ...core import ConfigurationError, DriverNotInstalled, Safety, SessionFilter
from ..shell._signals import Terminated

if TYPE_CHECKING:
    from ._replay import ReplaySource

#: Below this the table and the detail pane no longer fit.
MIN_COLUMNS = 60
MIN_LINES = 16


def run_live(
    dsn: str | None,
    session_filter: SessionFilter,
    *,
    sort: str,
    interval_seconds: float,
    replay: str | None = None,
    safety: Safety = Safety(),
) -> None:
    try:
        import textual  # noqa: F401
    except ImportError:
        raise DriverNotInstalled(
            "the live view needs Textual: pip install 'sessionward[top]' "
            "(or use 'sessionward top --once')"
        ) from None
    from ..shell._target import open_control
    from ._app import TopApp
    from ._source import FrameSource, LiveSource

    # A recording is checked first: its faults are the most precise thing to say.
    replayed = open_replay(replay, session_filter, sort=sort) if replay is not None else None
    try:
        _check_terminal()
    except BaseException:
        if replayed is not None:
            replayed.close()
        raise

    # A bad URL or a server down: one line, before the screen.
    source: FrameSource
    if replayed is not None:
        source = replayed
    else:
        first = open_control(dsn)
        source = LiveSource(
            lambda: open_control(dsn), session_filter, sort=sort, safety=safety, control=first
        )
    app = TopApp(source, interval_seconds=interval_seconds, sort=sort)
    stopped: list[int] = []

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # Leave through the app, so the terminal is given back as it was.
        stopped.append(signum)
        app.exit()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        app.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        source.close()
    if stopped:
        raise Terminated


def _check_terminal() -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise ConfigurationError(
            "the live view needs a terminal; 'sessionward top --once' prints one frame "
            "(--json, --csv)"
        )
    size = shutil.get_terminal_size()
    if size.columns < MIN_COLUMNS or size.lines < MIN_LINES:
        raise ConfigurationError(
            f"terminal too small ({size.columns}x{size.lines}); the live view needs at least "
            f"{MIN_COLUMNS}x{MIN_LINES}"
        )


def open_replay(path: str, session_filter: SessionFilter, *, sort: str) -> ReplaySource:
    """A recording's frames under a time cursor; any fault in the file is one line."""
    import sqlite3

    from ..recorder import Recording
    from ._replay import ReplaySource

    recording = Recording(path)
    try:
        return ReplaySource(recording, session_filter, sort=sort)
    except sqlite3.Error as error:
        recording.close()
        raise ConfigurationError(f"{path}: unreadable recording ({error})") from None
    except BaseException:
        recording.close()
        raise
