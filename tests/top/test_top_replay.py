"""``sessionward top --replay FILE``: the same screen over a recording, with a time cursor."""

from __future__ import annotations

import asyncio
import datetime as dt

from sessionward.core import ServerInfo, Session, SessionFilter, Snapshot
from sessionward.interfaces.recorder import Recorder, Recording
from sessionward.interfaces.top._app import TopApp
from sessionward.interfaces.top._replay import ReplaySource

START = dt.datetime(2026, 12, 7, 3, 12, tzinfo=dt.timezone.utc)
#: Frame by frame: which (waiter, blocker) pairs the recording holds.
SCRIPT: list[list[tuple[int, int]]] = [
    [],
    [],
    [(1001, 1000)],
    [(1001, 1000), (901, 900), (902, 900)],  # a bigger tree comes first: lines shift
    [],
    [(2001, 2000)],
]


def _record(path: str) -> None:
    server = ServerInfo(engine="postgresql", version="15.20", version_num=150020, own_pid=7)
    with Recorder(path, interval_seconds=1, retain_seconds=10 * 365 * 86400,
                  max_bytes=2**30) as rec:  # fmt: skip
        for i, edges in enumerate(SCRIPT):
            blocked = dict(edges)
            pids = {500, *blocked, *blocked.values()}
            sessions = tuple(
                Session(
                    pid=pid,
                    state="active" if pid in blocked else "idle in transaction",
                    user="app",
                    database="shop",
                    query=f"UPDATE t SET x = {pid}",
                    xact_age_seconds=float(i),
                    blocked_by=(blocked[pid],) if pid in blocked else (),
                )
                for pid in sorted(pids)
            )
            taken_at = START + dt.timedelta(seconds=i)
            rec.write(Snapshot(server=server, taken_at=taken_at, sessions=sessions), own_pids=(7,))


def test_replay_steps_and_jumps_to_each_blocking_episode(tmp_path):
    path = str(tmp_path / "rec.sqlite")
    _record(path)
    source = ReplaySource(Recording(path), SessionFilter())

    def at() -> int:
        assert app.frame is not None
        return int((app.frame.snapshot.taken_at - START).total_seconds())

    app = TopApp(source)

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            while app.frame is None:
                await pilot.pause(0.02)
            assert at() == 0
            assert "replay 1/6" in str(app.query_one("#status").render())

            async def until(check) -> None:
                for _ in range(500):
                    if check():
                        return
                    await pilot.pause(0.02)
                raise AssertionError("timed out")

            async def step_to(key: str, second: int) -> None:
                await pilot.press(key)
                await until(lambda: at() == second)

            await step_to("right_square_bracket", 1)
            await step_to("n", 2)
            assert [tree.pid for tree in app.frame.forest] == [1000]
            episode_start = (START + dt.timedelta(seconds=2)).isoformat()
            assert app.message == f"blocking episode from {episode_start}"
            # The forest keeps the session under the cursor from frame to frame.
            await pilot.press("b")
            tree = app.query_one("#forest")
            (top,) = tree.root.children
            tree.move_cursor(top.children[0])
            await pilot.pause()
            assert app.selected_pid() == 1001
            await step_to("right_square_bracket", 3)
            assert [node.data for node in tree.root.children] == [900, 1000]
            await pilot.pause()
            assert app.selected_pid() == 1001
            await pilot.press("b")

            await step_to("n", 5)
            assert [tree.pid for tree in app.frame.forest] == [2000]
            await pilot.press("n")
            await until(lambda: app.message == "no later blocking episode")
            assert at() == 5
            await step_to("left_square_bracket", 4)
            assert app.frame.forest == ()

            await pilot.press("k")  # nothing can be ended from a recording
            await until(lambda: "cannot" in app.message)
            assert app.message == "error: a recording cannot end sessions"

    try:
        asyncio.run(scenario())
    finally:
        source.close()


def test_bad_replays_are_one_line_and_exit_2(run_cli, tmp_path):
    for args, expected in (
        (("--replay", str(tmp_path / "missing.sqlite")), "no such file"),
        (("--replay", "x.sqlite", "--once"), "--replay takes no --once or --dsn"),
    ):
        result = run_cli("top", *args)
        assert result.code == 2, result
        assert result.err.count("\n") == 1, result.err
        assert expected in result.err
