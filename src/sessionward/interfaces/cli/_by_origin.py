"""``sessionward ls --by origin``: sessions grouped by the service and code line holding them.

The "who is hogging connections" view: per group, how many sessions, in which
states, and the oldest open transaction.  Origins are client text: escaped in
the table, kept exact in JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from rich.text import Text

from ...core import Session, Snapshot
from ..shell._render import age_text, safe

#: Shown for sessions whose client named no service or code line.
UNNAMED = "(unnamed)"


@dataclass(slots=True)
class OriginGroup:
    """The sessions of one service and code line."""

    service: str | None
    code: str | None
    pids: list[int] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    oldest_xact_age_seconds: float | None = None
    oldest_xact_pid: int | None = None

    def add(self, session: Session) -> None:
        self.pids.append(session.pid)
        state = session.state or session.backend_kind
        self.states[state] = self.states.get(state, 0) + 1
        age = session.xact_age_seconds
        if age is not None and (
            self.oldest_xact_age_seconds is None or age > self.oldest_xact_age_seconds
        ):
            self.oldest_xact_age_seconds = age
            self.oldest_xact_pid = session.pid


def group_by_origin(sessions: Sequence[Session]) -> list[OriginGroup]:
    """Group ``sessions`` by origin service and code line; most sessions first.

    Ties go to the older transaction, then to the name, so the order is stable;
    the sessions whose client named nothing come last, whatever their count.
    """
    groups: dict[tuple[str | None, str | None], OriginGroup] = {}
    for session in sessions:
        origin = session.origin
        key = (origin.service, origin.code) if origin is not None else (None, None)
        groups.setdefault(key, OriginGroup(*key)).add(session)
    return sorted(
        groups.values(),
        key=lambda g: (
            g.service is None and g.code is None,
            -len(g.pids),
            -(g.oldest_xact_age_seconds or 0.0),
            g.service or "",
            g.code or "",
        ),
    )


def groups_table(groups: Sequence[OriginGroup]) -> Table:
    table = Table(box=None, padding=(0, 1, 0, 0), header_style="bold")
    table.add_column("SESSIONS", justify="right", no_wrap=True)
    table.add_column("SERVICE", overflow="fold", max_width=32)
    table.add_column("CODE", overflow="fold", max_width=60)
    table.add_column("OLDEST XACT", justify="right", no_wrap=True)
    table.add_column("PID", justify="right", no_wrap=True)
    table.add_column("STATES", overflow="fold")
    for group in groups:
        unnamed = group.service is None and group.code is None
        states = ", ".join(f"{n} {state}" for state, n in sorted(group.states.items()))
        table.add_row(
            Text(str(len(group.pids)), style="bold"),
            safe(UNNAMED if unnamed else group.service, style="dim" if unnamed else "cyan"),
            safe(group.code),
            age_text(group.oldest_xact_age_seconds),
            Text(str(group.oldest_xact_pid or "")),
            safe(states),
        )
    return table


def groups_json(snapshot: Snapshot, groups: Sequence[OriginGroup]) -> str:
    document: dict[str, Any] = {
        "taken_at": snapshot.taken_at.isoformat(),
        "engine": snapshot.server.engine,
        "degraded": list(snapshot.degraded),
        "groups": [
            {
                "service": g.service,
                "code": g.code,
                "sessions": len(g.pids),
                "states": dict(sorted(g.states.items())),
                "oldest_xact_age_seconds": g.oldest_xact_age_seconds,
                "oldest_xact_pid": g.oldest_xact_pid,
                "pids": sorted(g.pids),
            }
            for g in groups
        ],
    }
    return json.dumps(document, indent=2)
