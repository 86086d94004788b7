"""The live ``top`` screen driven by Textual's pilot against real servers."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from typing import Any

import sessionward
from sessionward.core import Action, Outcome, SessionFilter
from sessionward.interfaces.top._app import ConfirmScreen, TopApp
from sessionward.interfaces.top._source import LiveSource
from tests.fix_servers import Server, wait_until
from tests.top._helpers import lock_chain, make_table, through_proxy


async def _until(pilot: Any, check: Callable[[], Any], *, timeout: float = 15.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        await pilot.pause(0.05)


def _alive(server: Server, pid: int) -> bool:
    if server.engine == "postgresql":
        rows = server.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
    else:
        rows = server.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", (pid,)
        )
    return bool(rows[0][0])


def _shown(app: TopApp) -> set[int]:
    return {s.pid for s in app.shown_sessions}


def test_sessions_idle_toggle_filter_and_a_confirmed_terminate(server, victims):
    db = server.create_database()
    user = server.create_user()
    make_table(server, db)
    victim = victims(server, database=db, user=user)
    victim.run("BEGIN")
    victim.run("UPDATE accounts SET balance = 1 WHERE id = 1")  # InnoDB sees a transaction
    bystander = victims(server, database=db, user=user)
    bystander.run("SELECT 1")
    source = LiveSource(lambda: sessionward.connect(server.url), SessionFilter(users=(user,)))

    async def scenario() -> None:
        app = TopApp(source, interval_seconds=0.5)
        async with app.run_test(size=(80, 24)) as pilot:
            await _until(
                pilot,
                lambda: (
                    _shown(app) == {victim.pid, bystander.pid}
                    and app.frame is not None
                    and app.frame.snapshot.get(victim.pid).state == "idle in transaction"
                ),
            )
            # The header's first line says what a refresh costs, and fits 80 columns.
            first = str(app.query_one("#status").render()).splitlines()[0]
            cost = re.search(r"\(read \d+ms · (\d+) quer(y|ies)\)", first)
            assert cost is not None, first
            assert 1 <= int(cost.group(1)) <= 2, first
            assert len(first) <= 80 - 2, first  # the status bar pads one column each side
            await pilot.press("i")  # hide plain idle sessions; idle in transaction stays
            assert _shown(app) == {victim.pid}
            await pilot.press("i")
            assert _shown(app) == {victim.pid, bystander.pid}
            # Sorted by transaction age first: the open transaction leads.
            assert [s.pid for s in app.shown_sessions] == [victim.pid, bystander.pid]
            await pilot.press("s", "s", "s", "s")  # xact → idle → query → wait → pid
            assert app.sort == "pid"
            by_pid = sorted([victim.pid, bystander.pid])
            assert [s.pid for s in app.shown_sessions] == by_pid
            table = app.query_one("#sessions")
            assert [int(table.get_row_at(i)[0].plain) for i in range(2)] == by_pid

            await pilot.press("slash", *str(victim.pid), "enter")
            assert _shown(app) == {victim.pid}
            assert app.selected_pid() == victim.pid
            detail = str(app.query_one("#detail").render())
            assert f"pid {victim.pid}" in detail
            assert "blocked by" not in detail
            if server.engine == "postgresql":  # MariaDB shows no statement for a sleeper
                assert "UPDATE accounts SET balance = 1 WHERE id = 1" in detail

            await pilot.press("k")
            screen = await _until(
                pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen
            )
            assert screen.question.startswith(f"Terminate pid {victim.pid} (")
            assert f"user {user}" in screen.question
            if server.engine == "postgresql":  # MariaDB names no application without P_S
                assert f"app {victim.application}" in screen.question
            assert "idle in transaction" in screen.question
            await pilot.press("y")
            await _until(pilot, lambda: app.last_result is not None)
            assert app.last_result is not None
            assert app.last_result.pid == victim.pid
            assert app.last_result.outcome is Outcome.ENDED
            assert f"terminate pid {victim.pid}: ended (session gone)" in app.message
            assert not _alive(server, victim.pid)
            assert _alive(server, bystander.pid)

            # Our own session: refused before any question, and still there.
            own = source.own_pid
            assert own is not None
            app.last_result = None
            app.ask_end(Action.TERMINATE, own)
            await _until(pilot, lambda: app.last_result is not None)
            assert app.last_result is not None
            assert app.last_result.outcome is Outcome.PROTECTED
            assert "sessionward's own session" in app.message
            assert not isinstance(app.screen, ConfirmScreen)
            assert _alive(server, own)

            # A "no" ends nothing.
            await pilot.press("slash", "ctrl+u", *str(bystander.pid), "enter")
            await _until(pilot, lambda: _shown(app) == {bystander.pid})
            await pilot.press("k")
            await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("n")
            await _until(pilot, lambda: "nothing was done" in app.message)
            assert _alive(server, bystander.pid)

    try:
        asyncio.run(scenario())
    finally:
        source.close()


def test_forest_view_terminating_the_root_unblocks_the_chain(server, victims):
    db = server.create_database()
    user = server.create_user()
    root, middle, tail = lock_chain(server, victims, user=user, database=db)
    source = LiveSource(lambda: sessionward.connect(server.url), SessionFilter(users=(user,)))

    async def scenario() -> None:
        app = TopApp(source, interval_seconds=0.5)
        async with app.run_test(size=(80, 24)) as pilot:
            await _until(
                pilot,
                lambda: (
                    app.frame is not None
                    and any(
                        n.pid == root.pid and len(n.descendants()) == 2 for n in app.frame.forest
                    )
                ),
            )
            await pilot.press("p")  # pause: the tree below is not rebuilt under the test
            await pilot.pause(0.3)  # a read already under way lands first
            await pilot.press("b")
            tree = app.query_one("#forest")
            roots = [n for n in tree.root.children if n.data == root.pid]
            assert len(roots) == 1, [str(n.label) for n in tree.root.children]
            (top,) = roots
            assert [c.data for c in top.children] == [middle.pid]
            assert [c.data for c in top.children[0].children] == [tail.pid]
            assert "holds up 2" in str(top.label)
            tree.move_cursor(top)
            await pilot.pause()
            assert app.selected_pid() == root.pid
            await pilot.press("k")
            screen = await _until(
                pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen
            )
            assert screen.question.endswith("— unblocks 2 sessions?")
            await pilot.press("y")
            await _until(pilot, lambda: app.last_result is not None)
            assert app.last_result is not None
            assert app.last_result.outcome is Outcome.ENDED

    try:
        asyncio.run(scenario())
    finally:
        source.close()
    _, error = middle.result()
    assert error is None  # the chain drained: the middle UPDATE went through
    assert wait_until(lambda: not _alive(server, root.pid))


def test_the_screen_says_the_server_is_lost_and_comes_back(server, victims):
    proxy, url = through_proxy(server.url)
    user = server.create_user()
    db = server.create_database()
    victim = victims(server, database=db, user=user)
    victim.run("SELECT 1")
    source = LiveSource(lambda: sessionward.connect(url), SessionFilter(users=(user,)))

    async def scenario() -> None:
        app = TopApp(source, interval_seconds=0.5)
        async with app.run_test(size=(80, 24)) as pilot:
            await _until(pilot, lambda: _shown(app) == {victim.pid})
            proxy.down()
            proxy.cut()
            await _until(pilot, lambda: app.message.startswith("server lost, retrying"))
            seen = app.frames_seen
            assert _shown(app) == {victim.pid}  # the last frame stays on screen
            proxy.up()
            await _until(pilot, lambda: app.message == "server back")
            await _until(pilot, lambda: app.frames_seen > seen)

    try:
        asyncio.run(scenario())
    finally:
        source.close()
        proxy.close()


def test_sigterm_leaves_the_live_view_within_a_second(pg):
    """In a real terminal (a pty): the screen is given back and the exit is 143."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL"))}
    env.update(DATABASE_URL=pg.url, TERM="xterm-256color", COLUMNS="80", LINES="24")
    fd, tty = pty.openpty()
    fcntl.ioctl(tty, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    child = subprocess.Popen(
        [sys.executable, "-m", "sessionward", "top"],
        stdin=tty, stdout=tty, stderr=tty, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(tty)
    output = b""
    try:
        deadline = time.monotonic() + 20
        while b"sessions" not in output and time.monotonic() < deadline:
            output += _read(fd, 0.1)
        assert b"sessions" in output, output[-400:]
        child.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        while time.monotonic() - sent < 5 and child.poll() is None:
            output += _read(fd, 0.05)
        took = time.monotonic() - sent
        output += _read(fd, 0.2)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(fd)
    assert child.returncode == 143
    assert took < 1.5
    tail = output.rsplit(b"\x1b[?1049l", 1)  # after leaving the alternate screen
    assert len(tail) == 2, "the terminal was not given back"
    assert b"sessionward: terminated" in tail[1]
    assert b"Traceback" not in output


def _read(fd: int, timeout: float) -> bytes:
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""
