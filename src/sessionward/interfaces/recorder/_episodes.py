"""Blocking episodes: for how long one root blocker held others up, read from a recording.

An episode is a run of consecutive frames in which the same session (pid and start time,
so a reused pid is another session) is the root of a lock-wait tree.  It starts at the
first such frame and ends at the last one: the true start and end lie within one
recording interval of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ...core import Session, WaitNode, lock_forest
from ._store import StoredFrame


@dataclass(slots=True)
class Episode:
    root: Session
    start: dt.datetime
    end: dt.datetime
    frames: int = 0
    #: Every pid that waited behind the root, directly or down the chain, at any frame.
    waiters: set[int] = field(default_factory=set)
    #: The longest lock wait seen among them, in seconds.
    longest_wait_seconds: float = 0.0

    @property
    def duration_seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        s = self.root
        return {
            "root_pid": s.pid,
            "root_started_at": s.started_at,
            "user": s.user,
            "database": s.database,
            "application": s.application,
            "client": s.client,
            "query": s.query,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "duration_seconds": self.duration_seconds,
            "frames": self.frames,
            "waiters": len(self.waiters),
            "waiter_pids": sorted(self.waiters),
            "longest_wait_seconds": self.longest_wait_seconds,
        }


def find_episodes(frames: Iterable[StoredFrame]) -> list[Episode]:
    """The blocking episodes of ``frames`` (oldest first), by start time."""
    open_: dict[tuple[int, str | None], Episode] = {}
    done: list[Episode] = []
    for frame in frames:
        own = set(frame.own_pids)
        snapshot = frame.snapshot.with_sessions(
            tuple(s for s in frame.snapshot.sessions if s.pid not in own)
        )
        seen: set[tuple[int, str | None]] = set()
        for tree in lock_forest(snapshot):
            key = (tree.pid, tree.session.started_at)
            seen.add(key)
            episode = open_.get(key)
            if episode is None:
                episode = open_[key] = Episode(
                    root=tree.session, start=frame.taken_at, end=frame.taken_at
                )
            episode.end = frame.taken_at
            episode.frames += 1
            for waiter in _below(tree):
                episode.waiters.add(waiter.pid)
                wait = waiter.wait_age_seconds or waiter.query_age_seconds or 0.0
                episode.longest_wait_seconds = max(episode.longest_wait_seconds, wait)
        for key in [k for k in open_ if k not in seen]:
            done.append(open_.pop(key))
    done.extend(open_.values())
    return sorted(done, key=lambda e: (e.start, e.root.pid))


def _below(tree: WaitNode) -> list[Session]:
    found: dict[int, Session] = {}
    stack = list(tree.waiters)
    while stack:
        node = stack.pop()
        if node.pid not in found:
            found[node.pid] = node.session
            stack.extend(node.waiters)
    return list(found.values())
