"""SVG snapshots of ``sessionward top`` (pytest-textual-snapshot) over a replayed recording.

The recording is built at test time, through the recorder's own ``Recorder``, from the
fixed frames of ``data/incident.json``: a three-level lock chain under an origin-tagged
idle transaction, idle sessions, and a session whose application name and query carry
escape sequences.  A replay shows the recorded times and ages, so a shot never depends
on the clock.  Accepted shots live in ``__snapshots__/``; after a deliberate change to
the screen, look at the report, then ``pytest tests/top/test_top_snapshots.py
--snapshot-update``.  docs/images holds copies of three of them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from sessionward.core import SCHEMA_ID, SessionFilter, snapshot_from_dict
from sessionward.interfaces.recorder import Recorder, Recording
from sessionward.interfaces.top._app import TopApp
from sessionward.interfaces.top._replay import ReplaySource

HERE = Path(__file__).parent
INCIDENT = HERE / "data" / "incident.json"
#: The frame the shots show: the lock chain at its longest.
INCIDENT_AT = dt.datetime(2026, 12, 7, 3, 12, 5, tzinfo=dt.timezone.utc)
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]

Compare = Callable[..., bool]


def record_incident(path: Path) -> None:
    """Write the frames of the fixture into a recording at ``path``, as ``record`` would."""
    data = json.loads(INCIDENT.read_text("utf-8"))
    # Retention counts back from each frame's own time, so the 2026 frames all stay.
    with Recorder(str(path), interval_seconds=5, retain_seconds=86400,
                  max_bytes=2**30) as recorder:  # fmt: skip
        for frame in data["frames"]:
            snapshot = snapshot_from_dict({"schema": SCHEMA_ID, "server": data["server"], **frame})
            recorder.write(snapshot, own_pids=tuple(data["own_pids"]))


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TopApp]:
    # Textual drops every colour under NO_COLOR (read when the app is made): the shots are
    # in colour whatever the developer's shell says.
    monkeypatch.delenv("NO_COLOR", raising=False)
    path = tmp_path / "incident.sqlite3"
    record_incident(path)
    source = ReplaySource(Recording(str(path)), SessionFilter())
    try:
        yield TopApp(source)
    finally:
        source.close()


async def _until(pilot: Pilot[Any], check: Callable[[], bool]) -> None:
    for _ in range(500):
        if check():
            return
        await pilot.pause(0.02)
    raise AssertionError("the screen never got there")


async def _at_incident(pilot: Pilot[Any]) -> TopApp:
    """The first frame read, then ``n``: the start of the blocking episode."""
    app = pilot.app
    assert isinstance(app, TopApp)
    await _until(pilot, lambda: app.frame is not None)
    await pilot.press("n")
    await _until(
        pilot, lambda: app.frame is not None and app.frame.snapshot.taken_at == INCIDENT_AT
    )
    await pilot.pause()
    return app


async def _select(pilot: Pilot[Any], app: TopApp, pid: int) -> None:
    """Move the cursor with the arrow key, as a person would, until ``pid`` is selected."""
    for _ in range(20):
        if app.selected_pid() == pid:
            return
        await pilot.press("down")
    raise AssertionError(f"pid {pid} never came under the cursor")


def _shot(snap_compare: Compare, app: TopApp, size: tuple[int, int],
          then: Callable[[Pilot[Any], TopApp], Awaitable[None]] | None = None,
          ) -> tuple[int | None, str]:  # fmt: skip
    """Compare the screen with its accepted shot; return the pid then under the cursor
    and the screen as SVG (the app has quit by the time the comparison returns)."""
    seen: list[tuple[int | None, str]] = []

    async def run_before(pilot: Pilot[Any]) -> None:
        at = await _at_incident(pilot)
        if then is not None:
            await then(pilot, at)
        await pilot.pause()
        seen.append((at.selected_pid(), at.export_screenshot()))

    assert snap_compare(app, terminal_size=size, run_before=run_before)
    (result,) = seen
    return result


@pytest.mark.parametrize("size", SIZES)
def test_table_view(snap_compare: Compare, app: TopApp, size: tuple[int, int]) -> None:
    """Sessions by transaction age, idle ones included; the root blocker (origin-tagged)
    first, under the cursor, its detail below."""
    assert _shot(snap_compare, app, size)[0] == 4242


@pytest.mark.parametrize("size", SIZES)
def test_forest_view(snap_compare: Compare, app: TopApp, size: tuple[int, int]) -> None:
    """``b``: 4242 holds up three sessions, 4261 two levels down behind 4250; the middle
    of the chain selected, so the detail says whom it waits for and whom it blocks."""

    async def middle(pilot: Pilot[Any], at: TopApp) -> None:
        await pilot.press("b")
        await _select(pilot, at, 4250)

    assert _shot(snap_compare, app, size, middle)[0] == 4250
    assert app.frame is not None
    assert [root.pid for root in app.frame.forest] == [4242]


@pytest.mark.parametrize("size", SIZES)
def test_detail_of_a_hostile_session(
    snap_compare: Compare, app: TopApp, size: tuple[int, int]
) -> None:
    """The detail of 4301, whose application name and query hold escape sequences:
    shown escaped (``\\e[8m``), not obeyed."""

    async def hostile(pilot: Pilot[Any], at: TopApp) -> None:
        await _select(pilot, at, 4301)

    pid, screen = _shot(snap_compare, app, size, hostile)
    assert pid == 4301
    # An accepted shot must not hide an attack (--snapshot-update takes whatever the
    # screen shows), so the escapes are checked on the screen itself too.
    assert "\x1b" not in screen
    assert "rep\\e[8m" in screen
    assert "\\e[2J\\e[31mpwned" in screen


#: The docs show copies of three accepted shots: the page and the README must show
#: the screen as it is.
DOC_IMAGES = {
    "top-table.svg": "test_table_view[120x40].svg",
    "top-forest.svg": "test_forest_view[80x24].svg",
    "top-detail.svg": "test_detail_of_a_hostile_session[80x24].svg",
}


@pytest.mark.parametrize(("image", "shot"), DOC_IMAGES.items())
def test_the_docs_show_the_accepted_shots(image: str, shot: str) -> None:
    copy = HERE.parent.parent / "docs" / "images" / image
    accepted = HERE / "__snapshots__" / Path(__file__).stem / shot
    assert copy.read_text("utf-8") == accepted.read_text("utf-8"), (
        f"docs/images/{image} differs from the accepted shot: cp '{accepted}' '{copy}'"
    )
