"""The live ``sessionward top`` screen (Textual): sessions, the blocker forest, a detail
pane, and cancel / terminate behind a confirmation that says what will happen.

Frames are read in a worker thread, never on the UI thread; the screen holds no SQL.
Every string from the server goes through ``printable`` into a rich ``Text``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import ContentSwitcher, DataTable, Footer, Input, Static, Tree
from textual.widgets.tree import TreeNode

from ...core import (
    ACTIVE,
    IDLE,
    Action,
    EndResult,
    Outcome,
    Session,
    SessionwardError,
    WaitNode,
    format_age,
    redact_url,
)
from .._text import printable
from ..shell import _render
from ._frame import Frame, header_dict, queries_text
from ._replay import ReplaySource
from ._source import FrameSource

#: (heading, sort key of ``_render.SORT_KEYS`` or None): clicking a heading sorts by it.
COLUMNS: tuple[tuple[str, str | None], ...] = (
    ("PID", "pid"), ("USER", "user"), ("DB", "database"), ("APP", "app"), ("STATE", "state"),
    ("XACT", "xact"), ("IDLE", "idle"), ("RUN", "query"), ("WAIT", "wait"), ("BLK", None),
    ("QUERY", None),
)  # fmt: skip
SORT_ORDER = ("xact", "idle", "query", "wait", "pid", "user", "database", "app", "state")
MIN_INTERVAL_SECONDS = 0.5
MAX_INTERVAL_SECONDS = 60.0
_STATE_SHORT = {"idle in transaction": "idle in xact", "idle in transaction (aborted)": "aborted"}


class ConfirmScreen(ModalScreen[bool]):
    """Say what an ending will do; y does it, n or Esc does nothing."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.question), id="question")
            yield Static(Text("y: yes, do it     n / Esc: no, do nothing", style="bold"))

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class TopApp(App[None]):
    """Sessions live, idle ones included; the forest with ``b``; endings with ``c``/``k``."""

    CSS_PATH = "top.tcss"
    TITLE = "sessionward top"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False),
        Binding("i", "toggle_idle", "Idle"),
        Binding("s", "next_sort", "Sort"),
        Binding("slash", "filter", "Filter"),
        Binding("b", "toggle_forest", "Blockers"),
        Binding("p", "pause", "Pause", show=False),
        Binding("plus", "interval(0.5)", "Slower", show=False),
        Binding("minus", "interval(-0.5)", "Faster", show=False),
        Binding("r", "refresh_now", "Refresh", show=False),
        Binding("c", "end('cancel')", "Cancel"),
        Binding("k", "end('terminate')", "Terminate"),
        Binding("left_square_bracket", "step(-1)", "Back"),
        Binding("right_square_bracket", "step(1)", "On"),
        Binding("n", "next_episode", "Episode"),
    ]

    def __init__(
        self, source: FrameSource, *, interval_seconds: float = 2.0, sort: str = "xact"
    ) -> None:
        super().__init__()
        self.source = source
        self.interval_seconds = interval_seconds
        self.sort = sort
        self.hide_idle = False
        self.text_filter = ""
        self.paused = False
        self.frame: Frame | None = None
        self.shown_sessions: tuple[Session, ...] = ()
        #: The last line said to the user, and the last verified ending.
        self.message = ""
        self.last_result: EndResult | None = None
        self.frames_seen = 0
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Input(placeholder="filter: text in pid, user, db, app, client, state, query",
                    id="filter")  # fmt: skip
        with ContentSwitcher(initial="sessions", id="views"):
            yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
            yield Tree(Text("lock waits"), id="forest")
        yield Static(id="detail")
        yield Static(id="message")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#sessions", DataTable)
        for heading, key in COLUMNS:
            table.add_column(heading, key=key or f"_{heading.lower()}")
        self.query_one("#forest", Tree).show_root = False
        if not self.replaying:
            self._timer = self.set_interval(self.interval_seconds, self._tick)
        table.focus()
        self.refresh_frame()

    @property
    def replaying(self) -> bool:
        return isinstance(self.source, ReplaySource)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Time-cursor keys only over a recording; pause and interval only live."""
        if action in ("step", "next_episode"):
            return self.replaying
        if action in ("pause", "interval"):
            return not self.replaying
        return True

    # ------------------------------------------------------------------ frames

    def _tick(self) -> None:
        if not self.paused:
            self.refresh_frame()

    @work(thread=True, exclusive=True, group="refresh")
    def refresh_frame(self) -> None:
        try:
            frame = self.source.frame()
        except SessionwardError as error:
            line = f"server lost, retrying: {printable(redact_url(str(error)))}"
            self.call_from_thread(self.say, line)
            return
        except Exception as error:  # a bug: said on the screen, which keeps running
            line = f"internal error: {type(error).__name__}: {printable(redact_url(str(error)))}"
            self.call_from_thread(self.say, line)
            return
        self.call_from_thread(self.show_frame, frame)

    def show_frame(self, frame: Frame) -> None:
        if self.message.startswith("server lost"):
            self.say("server back")
        self.frame = frame
        self.frames_seen += 1
        self._redraw()

    def _redraw(self) -> None:
        frame = self.frame
        if frame is None:
            return
        self.shown_sessions = self._select(frame.shown)
        self._update_status()
        self._fill_table()
        self._fill_forest(frame.forest)
        self._update_detail()

    def _select(self, sessions: Sequence[Session]) -> tuple[Session, ...]:
        needle = self.text_filter.strip().lower()
        chosen = [
            s
            for s in sessions
            if not (self.hide_idle and s.state == IDLE) and (not needle or needle in _haystack(s))
        ]
        key = _render.SORT_KEYS[self.sort]
        return tuple(sorted(chosen, key=lambda s: (key(s), s.pid)))

    def _update_status(self) -> None:
        """Two short lines: where and how we look, then what the server has.

        Lines are cut, not wrapped, so at 80 columns the header keeps its two
        rows; what matters most (blocked sessions, the longest transaction) comes
        before the count by state, which is what gets cut.
        """
        assert self.frame is not None
        head = header_dict(self.frame)
        # "10.11.19", not "10.11.19-MariaDB-0+deb12u1": the first line must fit 80 columns.
        version = head["version"].split()[0].split("-")[0] if head["version"] else ""
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(printable(f"{head['engine']} {version}"), style="bold")
        line.append(f"  {self.frame.snapshot.taken_at:%H:%M:%S}")
        if isinstance(self.source, ReplaySource):
            line.append(f"  replay {self.source.position + 1}/{self.source.count}", style="bold")
        else:
            line.append(f"  every {format_age(self.interval_seconds)}")
            line.append(
                f" (read {head['cost_ms']:.0f}ms{queries_text(head['queries'])})", style="dim"
            )
        line.append(f"  sort {self.sort}")
        if self.paused:
            line.append("  PAUSED", style="bold yellow")
        if self.hide_idle:
            line.append("  idle hidden")
        if self.text_filter:
            line.append(f"  filter {printable(self.text_filter)!r}")
        states = ", ".join(f"{n} {printable(state)}" for state, n in head["states"].items())
        line.append(f"\n{len(self.shown_sessions)} of {head['sessions']} sessions")
        if head["blocked"]:
            line.append(f"  {head['blocked']} blocked", style="bold red")
        longest = head["longest_transaction"]
        if longest is not None:
            age = format_age(longest["xact_age_seconds"])
            line.append(f"  longest xact {longest['pid']} {age}")
        if states:
            line.append(f"  ({states})", style="dim")
        self.query_one("#status", Static).update(line)

    def _fill_table(self) -> None:
        table = self.query_one("#sessions", DataTable)
        keep = self.selected_pid()
        table.clear()
        assert self.frame is not None
        snapshot = self.frame.snapshot
        for s in self.shown_sessions:
            table.add_row(*_cells(s, snapshot.blocking(s.pid)), key=str(s.pid))
        if keep is not None and any(s.pid == keep for s in self.shown_sessions):
            table.move_cursor(row=table.get_row_index(str(keep)))

    def _fill_forest(self, forest: Sequence[WaitNode]) -> None:
        tree: Tree[int] = self.query_one("#forest", Tree)
        node = tree.cursor_node
        keep = node.data if node is not None else None
        tree.clear()
        if not forest:
            tree.root.add_leaf(Text("No session waits for a lock.", style="dim"))
        for root in forest:
            _add_node(tree.root, root, is_root=True)
        tree.root.expand_all()
        if keep is not None:
            # The same session stays under the cursor, once the new tree is laid out.
            again = _find(tree.root, keep)
            if again is not None:
                self.call_after_refresh(tree.move_cursor, again)

    def selected_pid(self) -> int | None:
        """The session under the cursor, in whichever view is shown."""
        if self.query_one("#views", ContentSwitcher).current == "forest":
            node = self.query_one("#forest", Tree).cursor_node
            return node.data if node is not None and isinstance(node.data, int) else None
        table = self.query_one("#sessions", DataTable)
        if table.row_count == 0:
            return None
        row_key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key
        return int(row_key.value) if row_key.value is not None else None

    def _update_detail(self) -> None:
        pid = self.selected_pid()
        session = self.frame.snapshot.get(pid) if self.frame and pid is not None else None
        detail = self.query_one("#detail", Static)
        if session is None or self.frame is None:
            detail.update(Text("No session selected.", style="dim"))
            return
        detail.update(_detail(session, self.frame))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._update_detail()

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[Any]) -> None:
        self._update_detail()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in _render.SORT_KEYS:
            self.sort = key
            self._redraw()

    # ----------------------------------------------------------------- actions

    def say(self, line: str) -> None:
        self.message = line
        self.query_one("#message", Static).update(Text(line))

    def action_toggle_idle(self) -> None:
        self.hide_idle = not self.hide_idle
        self._redraw()

    def action_next_sort(self) -> None:
        at = SORT_ORDER.index(self.sort) if self.sort in SORT_ORDER else -1
        self.sort = SORT_ORDER[(at + 1) % len(SORT_ORDER)]
        self._redraw()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.text_filter = event.value
        self._redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        box = self.query_one("#filter", Input)
        if not box.value:
            box.remove_class("shown")
        self.query_one("#sessions", DataTable).focus()

    def action_toggle_forest(self) -> None:
        switcher = self.query_one("#views", ContentSwitcher)
        switcher.current = "forest" if switcher.current == "sessions" else "sessions"
        target = self.query_one(f"#{switcher.current}")
        target.focus()
        self._update_detail()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.say("paused: press p to resume" if self.paused else "resumed")
        if self.frame is not None:
            self._update_status()

    def action_interval(self, step: float) -> None:
        seconds = min(MAX_INTERVAL_SECONDS, max(MIN_INTERVAL_SECONDS, self.interval_seconds + step))
        self.interval_seconds = seconds
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_interval(seconds, self._tick)
        self.say(f"refresh every {format_age(seconds)}")

    def action_step(self, frames: int) -> None:
        if not isinstance(self.source, ReplaySource):
            return
        if self.source.step(frames):
            self.refresh_frame()
        else:
            self.say("start of the recording" if frames < 0 else "end of the recording")

    def action_next_episode(self) -> None:
        if not isinstance(self.source, ReplaySource):
            return
        if self.source.next_episode():
            self.say(f"blocking episode from {self.source.at.isoformat()}")
            self.refresh_frame()
        else:
            self.say("no later blocking episode")

    def action_refresh_now(self) -> None:
        self.refresh_frame()

    def action_end(self, action: str) -> None:
        pid = self.selected_pid()
        if pid is None:
            self.say("no session selected")
            return
        self.ask_end(Action(action), pid)

    def ask_end(self, action: Action, pid: int) -> None:
        """Foresee the ending (a dry run, with every protection), then ask."""
        if self.frame is None:
            self.say("no frame yet")
            return
        self._foresee(action, pid, self.frame)

    @work(thread=True, group="end")
    def _foresee(self, action: Action, pid: int, frame: Frame) -> None:
        try:
            result = self.source.end(action, pid, snapshot=frame.snapshot, dry_run=True)
        except SessionwardError as error:
            self.call_from_thread(self.say, f"error: {printable(redact_url(str(error)))}")
            return
        if result.outcome is not Outcome.WOULD_END:
            self.call_from_thread(self._refused, action, result)
            return
        self.call_from_thread(self._confirm, action, pid, frame)

    def _refused(self, action: Action, result: EndResult) -> None:
        self.last_result = result
        detail = f": {printable(result.detail)}" if result.detail else ""
        self.say(f"{action.value} pid {result.pid} refused, {result.outcome.value}{detail}")

    def _confirm(self, action: Action, pid: int, frame: Frame) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.say(f"{action.value} pid {pid}: signalled, confirming…")
                self._end(action, pid, frame)
            else:
                self.say(f"{action.value} pid {pid}: nothing was done")

        self.push_screen(ConfirmScreen(describe_ending(action, pid, frame)), answered)

    @work(thread=True, group="end")
    def _end(self, action: Action, pid: int, frame: Frame) -> None:
        try:
            result = self.source.end(action, pid, snapshot=frame.snapshot, dry_run=False)
        except SessionwardError as error:
            self.call_from_thread(self.say, f"error: {printable(redact_url(str(error)))}")
            return
        self.call_from_thread(self._ended, action, result)

    def _ended(self, action: Action, result: EndResult) -> None:
        self.last_result = result
        verified = {
            Outcome.ENDED: "session gone" if action is Action.TERMINATE else "statement stopped",
        }.get(result.outcome)
        why = verified or printable(result.detail)
        self.say(
            f"{action.value} pid {result.pid}: {result.outcome.value}"
            + (f" ({why})" if why else "")
        )
        self.refresh_frame()


def describe_ending(action: Action, pid: int, frame: Frame) -> str:
    """The confirmation: who, in what state, and what the ending does and unblocks."""
    session = frame.snapshot.get(pid)
    held = next(
        (len(node.descendants()) for node in frame.forest if node.pid == pid),
        len(frame.snapshot.blocking(pid)),
    )
    about: list[str] = []
    if session is not None:
        if session.application:
            about.append(f"app {session.application}")
        if session.user:
            about.append(f"user {session.user}")
        state = session.state or session.backend_kind
        age = session.state_age_seconds
        about.append(f"{state} {format_age(age)}".strip())
        if session.origin is not None and session.origin.code:
            about.append(f"held by {session.origin.code}")
    who = f"pid {pid}" + (f" ({', '.join(about)})" if about else "")
    if action is Action.TERMINATE:
        what = f"Terminate {who}: its session ends, an open transaction rolls back"
    else:
        what = f"Cancel the running statement of {who}: the session stays"
    if held:
        what += f" — unblocks {held} session{'s' if held != 1 else ''}"
    return printable(what + "?")


def _haystack(s: Session) -> str:
    origin = _render.origin_text(s.origin)
    parts = (str(s.pid), s.user, s.database, s.application, s.client, s.state, origin, s.query)
    return " ".join(p for p in parts if p).lower()


def _cells(s: Session, blocking: Sequence[int]) -> list[Text]:
    state = s.state or s.backend_kind
    return [
        Text(str(s.pid), style="bold red" if blocking else ""),
        _render.safe(s.user),
        _render.safe(s.database),
        _render.safe(s.application),
        Text(_STATE_SHORT.get(state, state), style=_render.state_text(s).style),
        _render.age_text(s.xact_age_seconds),
        _render.age_text(s.idle_age_seconds),
        _render.age_text(s.running_age_seconds, warn=10.0),
        _render.safe(s.wait_target or (s.wait if s.blocked_by else ""), style="magenta"),
        Text(str(len(blocking)) if blocking else "", style="bold red"),
        _render.safe(_render.one_line(s.query)[:200]),
    ]


def _add_node(parent: TreeNode[int], node: WaitNode, *, is_root: bool) -> None:
    s = node.session
    label = Text()
    label.append(str(s.pid), style="bold red" if is_root else "bold")
    label.append(f" {printable(s.user or '?')}@{printable(s.database or '?')} ")
    if is_root:
        label.append(printable(s.state or ""), style="yellow")
        held = len(node.descendants())
        label.append(f" holds up {held}", style="bold")
        if s.xact_age_seconds is not None:
            label.append(f" xact {format_age(s.xact_age_seconds)}")
    else:
        label.append(f"waits {format_age(s.wait_age_seconds or s.query_age_seconds)}")
        label.append(f" on {printable(s.wait_target or s.wait or 'a lock')}", style="magenta")
    label.append(f"  {_render.one_line(s.query)[:80]}", style="italic")
    branch = parent.add(label, data=s.pid, expand=True)
    for waiter in node.waiters:
        _add_node(branch, waiter, is_root=False)


def _find(node: TreeNode[int], pid: int) -> TreeNode[int] | None:
    """The first node of ``pid`` under ``node``, depth first (roots before waiters)."""
    for child in node.children:
        if child.data == pid:
            return child
        found = _find(child, pid)
        if found is not None:
            return found
    return None


def _detail(s: Session, frame: Frame) -> Text:
    snapshot = frame.snapshot
    text = Text()
    text.append(f"pid {s.pid}", style="bold")
    text.append(f"  {printable(s.user or '?')}@{printable(s.database or '?')}")
    text.append(f"  app {printable(s.application or '-')}  client {printable(s.client)}\n")
    text.append(f"{printable(s.state or s.backend_kind)}")
    for name, age in (("session", s.session_age_seconds), ("xact", s.xact_age_seconds),
                      ("state", s.state_age_seconds)):  # fmt: skip
        if age is not None:
            text.append(f"  {name} {format_age(age)}")
    if s.wait and (s.blocked_by or s.state == ACTIVE):
        text.append(f"  wait {printable(s.wait)}", style="magenta")
        if s.wait_target:
            text.append(f" on {printable(s.wait_target)}", style="magenta")
    text.append("\n")
    if s.blocked_by:
        text.append(f"blocked by {' '.join(map(str, s.blocked_by))}  ", style="red")
    blocking = snapshot.blocking(s.pid)
    if blocking:
        text.append(f"blocking {' '.join(map(str, blocking))}", style="bold red")
    if s.blocked_by or blocking:
        text.append("\n")
    if s.origin is not None:  # who holds it, as the client said: untrusted, escaped
        text.append(f"origin {printable(_render.origin_text(s.origin))}\n", style="cyan")
    text.append(printable(s.query or "", keep_newlines=False), style="italic")
    return text
