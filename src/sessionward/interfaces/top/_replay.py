"""Frames from a recording, for ``sessionward top --replay FILE``: the same screen, with a
time cursor instead of a server.  Nothing can be ended from a recording."""

from __future__ import annotations

import bisect
import datetime as dt
import threading

from ...core import Action, ConfigurationError, EndResult, SessionFilter, Snapshot, lock_forest
from ..recorder import Recording
from ..recorder._episodes import find_episodes
from ..shell import _render
from ._frame import Frame

_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_LATEST = dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)


class ReplaySource:
    """The frames of a recording, one at a time under a cursor, read when shown."""

    own_pid: int | None = None

    def __init__(self, recording: Recording, session_filter: SessionFilter, *,
                 sort: str = "xact") -> None:  # fmt: skip
        self._recording = recording
        self._index = recording.index()
        if not self._index:
            raise ConfigurationError(f"{recording.path}: the recording holds no frame")
        self._times = [taken_at for _, taken_at in self._index]
        episodes = find_episodes(recording.between(_EARLIEST, _LATEST))
        self._starts = sorted({e.start for e in episodes})
        self._filter = session_filter
        self._sort = sort
        self._lock = threading.Lock()
        self.position = 0

    @property
    def count(self) -> int:
        return len(self._index)

    @property
    def at(self) -> dt.datetime:
        return self._times[self.position]

    def frame(self) -> Frame:
        with self._lock:
            stored = self._recording.load(self._index[self.position][0])
        own = set(stored.own_pids)
        snapshot = stored.snapshot.with_sessions(
            tuple(s for s in stored.snapshot.sessions if s.pid not in own)
        )
        key = _render.SORT_KEYS[self._sort]
        shown = tuple(sorted(self._filter.select(snapshot), key=lambda s: (key(s), s.pid)))
        return Frame(snapshot=snapshot, shown=shown, forest=lock_forest(snapshot), cost_seconds=0)

    def step(self, frames: int) -> bool:
        """Move the cursor; False at either end of the recording."""
        target = min(max(self.position + frames, 0), len(self._index) - 1)
        moved = target != self.position
        self.position = target
        return moved

    def next_episode(self) -> bool:
        """Jump to the start of the next blocking episode; False when there is none."""
        at = bisect.bisect_right(self._starts, self._times[self.position])
        if at >= len(self._starts):
            return False
        self.position = self._times.index(self._starts[at])
        return True

    def end(self, action: Action, pid: int, *, snapshot: Snapshot, dry_run: bool) -> EndResult:
        raise ConfigurationError("a recording cannot end sessions")

    def close(self) -> None:
        with self._lock:
            self._recording.close()
