"""One frame of ``sessionward top``: a snapshot, the sessions a filter keeps, the blocker
forest, and a header (server, counts by state, longest transaction, the frame's own cost:
its wall time and how many statements it sent).

The frame holds no SQL: it is read through ``SessionControl.snapshot``, exactly as ``ls``
reads its snapshot, and the forest is the core's ``lock_forest``.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rich.console import Group
from rich.text import Text

from ..._control import SessionControl
from ...core import Session, SessionFilter, Snapshot, WaitNode, format_age, lock_forest
from ...core._snapshot_json import snapshot_to_dict
from .._text import printable
from ..shell import _render

SCHEMA_ID = "sessionward.top/1"


@dataclass(frozen=True, slots=True)
class Frame:
    """What one refresh saw."""

    snapshot: Snapshot
    shown: tuple[Session, ...]
    forest: tuple[WaitNode, ...]
    #: Wall time of the read, the lock forest included.
    cost_seconds: float
    #: Statements the read sent the server; ``None`` where the backend does not count
    #: them, or the frame was not read from a server (a replay).
    queries: int | None = None


@runtime_checkable
class CountsStatements(Protocol):
    """A backend that counts the statements it sends (both adapters do)."""

    @property
    def statements_sent(self) -> int: ...


def take_frame(control: SessionControl, session_filter: SessionFilter, *, sort: str) -> Frame:
    """Read one snapshot and build the frame: one ``snapshot`` read, nothing per session."""
    backend = control.backend
    counter = backend if isinstance(backend, CountsStatements) else None
    sent_before = 0 if counter is None else counter.statements_sent
    started = time.perf_counter()
    snapshot = control.snapshot()
    forest = lock_forest(snapshot)
    cost = time.perf_counter() - started
    queries = None if counter is None else counter.statements_sent - sent_before
    shown = tuple(
        sorted(session_filter.select(snapshot), key=lambda s: (_render.SORT_KEYS[sort](s), s.pid))
    )
    return Frame(snapshot=snapshot, shown=shown, forest=forest, cost_seconds=cost, queries=queries)


def state_counts(sessions: Sequence[Session]) -> dict[str, int]:
    """Sessions by state (background processes by kind), most common first."""
    counts: dict[str, int] = {}
    for session in sessions:
        key = session.state or session.backend_kind
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def longest_transaction(sessions: Sequence[Session]) -> Session | None:
    open_ = [s for s in sessions if s.xact_age_seconds is not None]
    return max(open_, key=lambda s: (s.xact_age_seconds or 0.0, -s.pid)) if open_ else None


def header_dict(frame: Frame) -> dict[str, Any]:
    server = frame.snapshot.server
    longest = longest_transaction(frame.shown)
    return {
        "engine": server.engine,
        "version": server.version,
        "taken_at": frame.snapshot.taken_at.isoformat(),
        "sessions": len(frame.shown),
        "states": state_counts(frame.shown),
        "blocked": sum(1 for s in frame.shown if s.blocked_by),
        "longest_transaction": None
        if longest is None
        else {"pid": longest.pid, "xact_age_seconds": longest.xact_age_seconds},
        "cost_ms": round(frame.cost_seconds * 1000, 3),
        "queries": frame.queries,
    }


def root_dict(node: WaitNode) -> dict[str, Any]:
    """A forest node as JSON: the ``blockers --json`` shape, ``waiting_total`` included."""
    return _render._node_dict(node)


def frame_json(frame: Frame) -> str:
    document = {
        "schema": SCHEMA_ID,
        "header": header_dict(frame),
        "snapshot": snapshot_to_dict(frame.snapshot, sessions=frame.shown),
        "forest": [root_dict(node) for node in frame.forest],
    }
    return json.dumps(document, indent=2)


def frame_csv(frame: Frame) -> str:
    """The ``ls --csv`` rows, with a ``roots_held`` column: how many a root holds up."""
    held = {node.pid: len(node.descendants()) for node in frame.forest}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((*_render.CSV_COLUMNS, "holds_up"))
    rows = snapshot_to_dict(frame.snapshot, sessions=frame.shown)["sessions"]
    for row in rows:
        writer.writerow(
            (*(_render._csv_cell(row[c]) for c in _render.CSV_COLUMNS), held.get(row["pid"], 0))
        )
    return buffer.getvalue()


def header_text(frame: Frame) -> Text:
    """The header as a person reads it, server text escaped."""
    head = header_dict(frame)
    line = Text()
    version = head["version"].split()[0] if head["version"] else ""
    line.append(printable(f"{head['engine']} {version}"), style="bold")
    line.append(f"  {frame.snapshot.taken_at:%Y-%m-%d %H:%M:%S%z}", style="dim")
    line.append(f"  {head['sessions']} sessions")
    states = ", ".join(f"{n} {printable(state)}" for state, n in head["states"].items())
    if states:
        line.append(f" ({states})")
    if head["blocked"]:
        line.append(f"  {head['blocked']} blocked", style="bold red")
    longest = head["longest_transaction"]
    if longest is not None:
        line.append(
            f"  longest xact: pid {longest['pid']} {format_age(longest['xact_age_seconds'])}"
        )
    line.append(f"  refresh {head['cost_ms']:.1f}ms{queries_text(head['queries'])}", style="dim")
    return line


def queries_text(queries: int | None) -> str:
    """`` · 2 queries`` when the frame's statements were counted.

    >>> queries_text(1), queries_text(2), queries_text(None)
    (' · 1 query', ' · 2 queries', '')
    """
    if queries is None:
        return ""
    return f" · {queries} {'query' if queries == 1 else 'queries'}"


def frame_renderable(frame: Frame, *, width: int) -> Group:
    parts: list[Any] = [header_text(frame)]
    if frame.shown:
        parts.append(_render.sessions_table(frame.snapshot, frame.shown, width=width))
    if frame.forest:
        parts.append(_render.forest_tree(frame.forest))
    for note in frame.snapshot.degraded:
        parts.append(_render.plain(f"note: {note}", style="dim"))
    return Group(*parts)
