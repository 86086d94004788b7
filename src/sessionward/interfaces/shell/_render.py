"""How the command line shows sessions, lock trees and endings: tables, JSON, CSV.

Names, client strings and queries come from any database user. In human output every
such string goes through :func:`printable` (control characters shown as escapes) and into a
rich ``Text``, which rich prints as it is: ``[bold]`` or ``:smile:`` in an application name
is shown literally. JSON and CSV keep the server's text exactly.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ...core import (
    ACTIVE,
    IDLE,
    IDLE_IN_TRANSACTION,
    IDLE_IN_TRANSACTION_ABORTED,
    DropResult,
    EndResult,
    Origin,
    Outcome,
    Session,
    Snapshot,
    WaitNode,
    format_age,
    snapshot_to_dict,
)
from .._text import printable

#: Ages past these turn yellow, then red: a transaction open for a minute is
#: worth a look, ten minutes is usually a bug.
WARN_SECONDS = 60.0
ALERT_SECONDS = 600.0

CSV_COLUMNS = (
    "pid", "database", "user", "application", "client_addr", "client_port", "backend_kind",
    "backend_type", "state", "session_age_seconds", "xact_age_seconds", "state_age_seconds",
    "query_age_seconds", "wait", "wait_age_seconds", "wait_target", "blocked_by", "blocking",
    "is_superuser", "xmin_age", "query", "origin",
)  # fmt: skip

_STATE_STYLE = {
    ACTIVE: "green",
    IDLE: "dim",
    IDLE_IN_TRANSACTION: "yellow",
    IDLE_IN_TRANSACTION_ABORTED: "red",
}


#: ``ls --sort`` keys; ages sort longest first.
SORT_KEYS: dict[str, Callable[[Session], Any]] = {
    "pid": lambda s: s.pid,
    "database": lambda s: s.database or "",
    "user": lambda s: s.user or "",
    "app": lambda s: s.application or "",
    "client": lambda s: s.client,
    "state": lambda s: s.state or "",
    "session": lambda s: -(s.session_age_seconds or 0.0),
    "xact": lambda s: -(s.xact_age_seconds or 0.0),
    "idle": lambda s: -(s.idle_age_seconds or 0.0),
    "query": lambda s: -(s.running_age_seconds or 0.0),
    "wait": lambda s: -(s.wait_age_seconds or 0.0),
}


def one_line(query: str | None) -> str:
    """Fold a statement onto one line, fit for a terminal.

    >>> one_line("SELECT *\\n  FROM t\\n WHERE x = 1")
    'SELECT * FROM t WHERE x = 1'
    >>> one_line("SELECT '\\x1b[2J'")
    "SELECT '\\\\e[2J'"
    """
    return printable(re.sub(r"\s+", " ", query or "").strip())


def safe(text: str | None, *, style: str = "") -> Text:
    """Server text as a table cell or label: escaped, and never read as markup.

    >>> safe("[bold]x\\x07").plain
    '[bold]x\\\\x07'
    """
    return Text(printable(text or ""), style=style)


def plain(line: str, *, style: str = "") -> Text:
    """A whole line for the console, escaped like :func:`safe`."""
    return safe(line, style=style)


def age_text(seconds: float | None, *, warn: float = WARN_SECONDS) -> Text:
    text = Text(format_age(seconds))
    if seconds is not None and seconds >= ALERT_SECONDS:
        text.stylize("bold red")
    elif seconds is not None and seconds >= warn:
        text.stylize("yellow")
    return text


def state_text(session: Session) -> Text:
    state = session.state or session.backend_type
    style = _STATE_STYLE.get(session.state or "", "cyan")
    if session.state == IDLE_IN_TRANSACTION and (session.state_age_seconds or 0) >= WARN_SECONDS:
        style = "bold red"
    return safe(state, style=style)


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a fitted table."""

    name: str
    #: Widest it grows before its cells are cut with an ellipsis; None: never cut.
    cap: int | None = None
    #: Narrowest it gets on a small terminal before whole columns are dropped.
    floor: int = 8
    right: bool = False
    #: Columns with a rank are dropped on a narrow terminal, lowest rank first.
    drop_rank: int | None = None


_SESSION_COLUMNS = (
    Column("PID", right=True),
    Column("DATABASE", cap=20, drop_rank=5),
    Column("USER", cap=16, drop_rank=2),
    Column("APP", cap=20, drop_rank=4),
    Column("CLIENT", cap=22, drop_rank=1),
    Column("STATE", cap=29, floor=19),
    Column("SESSION", right=True, drop_rank=0),
    Column("XACT", right=True),
    Column("IDLE", right=True, drop_rank=3),
    Column("RUNNING", right=True),
    Column("WAIT", cap=30, floor=12),
    Column("BLOCKERS", cap=18),
)
_RESULT_COLUMNS = (
    Column("PID", right=True),
    Column("OUTCOME"),
    Column("USER", cap=16, drop_rank=1),
    Column("DATABASE", cap=20, drop_rank=3),
    Column("APP", cap=20, drop_rank=2),
    Column("STATE", cap=29, floor=13, drop_rank=4),
    Column("IDLE", right=True, drop_rank=0),
)
_MIN_LAST_WIDTH = 20
#: Waits that only say an idle session waits for its client: noise in a table.
_IDLE_WAIT_TYPES = ("Client:", "Activity:")


def fitted_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Text]],
    last_name: str,
    last_cells: Sequence[str],
    *,
    width: int,
) -> Table:
    """One line per row; the last (free text) column takes the room the others leave.

    On a narrow terminal the capped columns give way first, widest first, then
    the columns with a ``drop_rank`` are dropped; pids, outcomes and ages stay.
    """
    widths: dict[int, int] = {}
    for index, column in enumerate(columns):
        widest = max([len(column.name), *(row[index].cell_len for row in rows)])
        widths[index] = min(widest, column.cap or widest)
    _fit(columns, widths, width)
    # One space between columns; what is left goes to the last column.
    last_width = max(_MIN_LAST_WIDTH, width - sum(widths.values()) - len(widths))
    table = Table(box=None, padding=(0, 1, 0, 0), header_style="bold", expand=False)
    for index, column_width in widths.items():
        table.add_column(
            columns[index].name,
            justify="right" if columns[index].right else "left",
            no_wrap=True,
            overflow="ellipsis",
            width=column_width,
        )
    table.add_column(last_name, no_wrap=True, overflow="ellipsis", max_width=last_width)
    for row, last in zip(rows, last_cells, strict=True):
        if len(last) > last_width:
            last = last[: last_width - 1] + "…"
        # ``last`` comes from one_line, escaped already: only kept from being read as markup.
        table.add_row(*(row[index] for index in widths), Text(last))
    return table


def _fit(columns: Sequence[Column], widths: dict[int, int], width: int) -> None:
    while sum(widths.values()) + len(widths) + _MIN_LAST_WIDTH > width:
        shrinkable = [
            i for i in widths if columns[i].cap is not None and widths[i] > columns[i].floor
        ]
        if shrinkable:
            widths[max(shrinkable, key=widths.__getitem__)] -= 1
            continue
        droppable = [i for i in widths if columns[i].drop_rank is not None]
        if not droppable:
            return
        del widths[min(droppable, key=lambda i: columns[i].drop_rank or 0)]


def sessions_table(snapshot: Snapshot, sessions: Sequence[Session], *, width: int = 120) -> Table:
    """The ``ls`` table: one line per session, the query cut to the terminal width.

    An ORIGIN column follows APP when a client named the code holding a session.
    """
    rows = [_session_cells(snapshot, session) for session in sessions]
    queries = [one_line(session.query) for session in sessions]
    columns: tuple[Column, ...] = _SESSION_COLUMNS
    if any(session.origin is not None for session in sessions):
        at = _ORIGIN_AFTER + 1
        columns = (*columns[:at], _ORIGIN_COLUMN, *columns[at:])
        for row, session in zip(rows, sessions, strict=True):
            row.insert(at, safe(origin_text(session.origin), style="cyan"))
    return fitted_table(columns, rows, "QUERY", queries, width=width)


_ORIGIN_COLUMN = Column("ORIGIN", cap=48, floor=12, drop_rank=6)
_ORIGIN_AFTER = [c.name for c in _SESSION_COLUMNS].index("APP")


def origin_text(origin: Origin | None) -> str:
    """An origin as one line, not yet escaped: ``billing web-1[4242] Thread-3 a.py:8``."""
    return re.sub(r"\s+", " ", origin.compact).strip() if origin is not None else ""


def _session_cells(snapshot: Snapshot, session: Session) -> list[Text]:
    blocking = snapshot.blocking(session.pid)
    wait = session.wait or ""
    if wait.startswith(_IDLE_WAIT_TYPES) and not session.blocked_by:
        wait = ""
    if wait and session.wait_age_seconds is not None:
        wait = f"{wait} {format_age(session.wait_age_seconds)}"
    return [
        Text(str(session.pid), style="bold red" if blocking else ""),
        safe(session.database),
        safe(session.user),
        safe(session.application),
        safe(session.client if session.is_client else ""),
        state_text(session),
        Text(format_age(session.session_age_seconds), style="dim"),
        age_text(session.xact_age_seconds),
        age_text(session.idle_age_seconds),
        age_text(session.running_age_seconds, warn=10.0),
        safe(wait, style="magenta" if session.blocked_by else ""),
        Text(" ".join(str(pid) for pid in session.blocked_by), style="red"),
    ]


def summary_line(snapshot: Snapshot, shown: Sequence[Session]) -> str:
    counts: dict[str, int] = {}
    for session in shown:
        key = session.state or session.backend_kind
        counts[key] = counts.get(key, 0) + 1
    blocked = sum(1 for s in shown if s.blocked_by)
    parts = [f"{n} {state}" for state, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    if blocked:
        parts.append(f"{blocked} blocked")
    server = snapshot.server
    noun = "session" if len(shown) == 1 else "sessions"
    detail = f" ({', '.join(parts)})" if parts else ""
    version = server.version.split()[0] if server.version else ""
    return printable(f"{len(shown)} {noun}{detail} on {server.engine} {version}")


def sessions_json(snapshot: Snapshot, sessions: Sequence[Session]) -> str:
    return json.dumps(snapshot_to_dict(snapshot, sessions=sessions), indent=2)


def sessions_csv(snapshot: Snapshot, sessions: Sequence[Session]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in snapshot_to_dict(snapshot, sessions=sessions)["sessions"]:
        writer.writerow(_csv_cell(row[column]) for column in CSV_COLUMNS)
    return buffer.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):  # an origin
        return Origin.from_dict(value).compact
    return str(value)


def forest_tree(forest: Sequence[WaitNode]) -> Tree:
    tree = Tree(Text("lock waits", style="bold"), guide_style="dim")
    for root in forest:
        branch = tree.add(_root_label(root))
        _add_waiters(branch, root)
    return tree


def _root_label(root: WaitNode) -> Text:
    s = root.session
    label = Text()
    label.append(f"{s.pid}", style="bold red")
    label.append(f"  {printable(s.user or '?')}@{printable(s.database or '?')}  ")
    label.append_text(state_text(s))
    if s.xact_age_seconds is not None:
        label.append("  xact ")
        label.append_text(age_text(s.xact_age_seconds))
    waiting = len(root.descendants())
    label.append(f"  blocks {waiting} session{'s' if waiting != 1 else ''}", style="bold")
    if s.application:
        label.append(f"  app {printable(s.application)}", style="dim")
    if s.origin is not None:
        label.append(f"  origin {printable(origin_text(s.origin))}", style="cyan")
    label.append(f"\n{one_line(s.query)[:200]}", style="italic")
    return label


def _add_waiters(branch: Tree, node: WaitNode) -> None:
    for waiter in node.waiters:
        s = waiter.session
        label = Text()
        label.append(f"{s.pid}", style="bold")
        label.append(f"  {printable(s.user or '?')}@{printable(s.database or '?')}  waits ")
        label.append_text(age_text(s.wait_age_seconds or s.query_age_seconds, warn=10.0))
        target = s.wait_target or s.wait or "a lock"
        label.append(f" on {printable(target)}", style="magenta")
        if s.origin is not None:
            label.append(f"  origin {printable(origin_text(s.origin))}", style="cyan")
        label.append(f"  {one_line(s.query)[:120]}", style="italic")
        _add_waiters(branch.add(label), waiter)


def forest_json(forest: Sequence[WaitNode]) -> str:
    return json.dumps([_node_dict(node) for node in forest], indent=2)


def _node_dict(node: WaitNode) -> dict[str, Any]:
    s = node.session
    return {
        "pid": s.pid,
        "database": s.database,
        "user": s.user,
        "application": s.application,
        "state": s.state,
        "xact_age_seconds": s.xact_age_seconds,
        "wait": s.wait,
        "wait_age_seconds": s.wait_age_seconds,
        "wait_target": s.wait_target,
        "query": s.query,
        "origin": s.origin.as_dict() if s.origin is not None else None,
        "waiting_total": len(node.descendants()),
        "waiters": [_node_dict(w) for w in node.waiters],
    }


_OUTCOME_STYLE = {
    Outcome.ENDED: "green",
    Outcome.WOULD_END: "cyan",
    Outcome.SIGNALLED: "cyan",
    Outcome.ALREADY_GONE: "yellow",
    Outcome.STILL_RUNNING: "bold red",
    Outcome.NOT_PERMITTED: "bold red",
    Outcome.PROTECTED: "yellow",
}


def results_table(results: Sequence[EndResult], *, width: int = 120) -> Table:
    """One line per requested pid: how its ending turned out, and why."""
    rows = []
    for result in results:
        s = result.session
        rows.append(
            [
                Text(str(result.pid)),
                Text(result.outcome.value, style=_OUTCOME_STYLE[result.outcome]),
                safe(s.user if s else ""),
                safe(s.database if s else ""),
                safe(s.application if s else ""),
                safe(s.state if s else ""),
                Text(format_age(s.idle_age_seconds) if s else ""),
            ]
        )
    details = [_detail(r) for r in results]
    return fitted_table(_RESULT_COLUMNS, rows, "WHY / QUERY", details, width=width)


def _detail(result: EndResult) -> str:
    if result.detail:
        return one_line(result.detail)
    return one_line(result.session.query) if result.session else ""


def results_json(results: Iterable[EndResult]) -> str:
    rows = []
    for result in results:
        s = result.session
        rows.append(
            {
                "pid": result.pid,
                "outcome": result.outcome.value,
                "detail": result.detail,
                "user": s.user if s else None,
                "database": s.database if s else None,
                "application": s.application if s else None,
                "state": s.state if s else None,
                "query": s.query if s else None,
                "origin": s.origin.as_dict() if s and s.origin else None,
            }
        )
    return json.dumps(rows, indent=2)


#: ``dropdb``: every session is on the same database (or holds a lock in it), so
#: the client and idle age matter more than the database; the client goes first.
_DROP_COLUMNS = (
    Column("PID", right=True),
    Column("OUTCOME"),
    Column("USER", cap=16, drop_rank=4),
    Column("DATABASE", cap=20, drop_rank=1),
    Column("APP", cap=20, drop_rank=3),
    Column("CLIENT", cap=22, drop_rank=0),
    Column("STATE", cap=29, floor=13, drop_rank=2),
    Column("IDLE", right=True),
)
_IN_USE_COLUMNS = (
    Column("PID", right=True),
    Column("USER", cap=16, drop_rank=4),
    Column("DATABASE", cap=20, drop_rank=1),
    Column("APP", cap=20, drop_rank=3),
    Column("CLIENT", cap=22, drop_rank=0),
    Column("STATE", cap=29, floor=13, drop_rank=2),
    Column("XACT", right=True),
    Column("IDLE", right=True),
)


def drop_table(results: Sequence[EndResult], *, width: int = 120) -> Table:
    """``dropdb``: one line per session on the database, how its ending turned out."""
    rows = []
    for result in results:
        s = result.session
        rows.append(
            [
                Text(str(result.pid)),
                Text(result.outcome.value, style=_OUTCOME_STYLE[result.outcome]),
                *_who_cells(s),
                Text(format_age(s.idle_age_seconds) if s else ""),
            ]
        )
    details = [_detail(r) for r in results]
    return fitted_table(_DROP_COLUMNS, rows, "WHY / QUERY", details, width=width)


def in_use_table(sessions: Sequence[Session], *, width: int = 120) -> Table:
    """``dropdb`` without ``--force``: the sessions that keep the database."""
    rows = [
        [
            Text(str(s.pid)),
            *_who_cells(s),
            age_text(s.xact_age_seconds),
            age_text(s.idle_age_seconds),
        ]
        for s in sessions
    ]
    queries = [one_line(s.query) for s in sessions]
    return fitted_table(_IN_USE_COLUMNS, rows, "QUERY", queries, width=width)


def _who_cells(s: Session | None) -> list[Text]:
    if s is None:
        return [Text("") for _ in range(5)]
    return [
        safe(s.user),
        safe(s.database),
        safe(s.application),
        safe(s.client if s.is_client else ""),
        safe(s.state),
    ]


def drop_json(
    result: DropResult, *, dry_run: bool, in_use: Sequence[Session] = (), error: str = ""
) -> str:
    """``dropdb --json``: the database, whether it went, and each session's outcome."""
    ended = []
    for r in result.ended:
        s = r.session
        ended.append(
            {
                "pid": r.pid,
                "outcome": r.outcome.value,
                "detail": r.detail,
                **_session_fields(s),
            }
        )
    document = {
        "database": result.database,
        "dropped": result.dropped,
        "existed": result.existed,
        "dry_run": dry_run,
        "ended": ended,
        "in_use": [{"pid": s.pid, **_session_fields(s)} for s in in_use],
        "notes": list(result.notes),
        "error": error or None,
    }
    return json.dumps(document, indent=2)


def _session_fields(s: Session | None) -> dict[str, Any]:
    return {
        "user": s.user if s else None,
        "database": s.database if s else None,
        "application": s.application if s else None,
        "client_addr": s.client_addr if s else None,
        "client_port": s.client_port if s else None,
        "state": s.state if s else None,
        "idle_age_seconds": s.idle_age_seconds if s else None,
        "xact_age_seconds": s.xact_age_seconds if s else None,
        "query": s.query if s else None,
    }


#: Width used when the output goes to a file or pipe: long enough that queries
#: are not cut for ``grep``, short enough to stay readable in ``less -S``.
PIPE_WIDTH = 400


def make_console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, highlight=False, soft_wrap=False, width=PIPE_WIDTH)
    return console
