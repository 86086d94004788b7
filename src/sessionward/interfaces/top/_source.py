"""Where the live view gets its frames and ends sessions: one ``SessionControl``, behind a
lock (the view reads and acts from worker threads), reconnected when the server comes back.

The view holds no SQL and no driver: frames come from ``take_frame`` (the snapshot ``ls``
reads) and endings from ``SessionControl.cancel`` / ``terminate``, with their protections.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Protocol

from ..._control import DEFAULT_WAIT_SECONDS, SessionControl
from ...core import Action, EndResult, Safety, SessionFilter, Snapshot
from ._frame import Frame, take_frame


class FrameSource(Protocol):
    """What the screen reads frames from and ends sessions through."""

    @property
    def own_pid(self) -> int | None: ...

    def frame(self) -> Frame: ...

    def end(self, action: Action, pid: int, *, snapshot: Snapshot, dry_run: bool) -> EndResult: ...

    def close(self) -> None: ...


class LiveSource:
    """Frames and endings from a live server."""

    def __init__(
        self,
        connect: Callable[[], SessionControl],
        session_filter: SessionFilter,
        *,
        sort: str = "xact",
        safety: Safety = Safety(),
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        control: SessionControl | None = None,
    ) -> None:
        self._connect = connect
        self._filter = session_filter
        self._sort = sort
        self._safety = safety
        self._wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self._control = control

    @property
    def own_pid(self) -> int | None:
        return None if self._control is None else self._control.own_pid

    def frame(self) -> Frame:
        """One frame; connects first if needed.  A lost server raises, and the next
        call connects again."""
        with self._lock:
            control = self._connected()
            try:
                return take_frame(control, self._filter, sort=self._sort)
            except BaseException:
                self._drop()
                raise

    def end(self, action: Action, pid: int, *, snapshot: Snapshot, dry_run: bool) -> EndResult:
        """Cancel or terminate ``pid`` (verified), or foresee what would happen."""
        with self._lock:
            control = self._connected()
            end = control.cancel if action is Action.CANCEL else control.terminate
            (result,) = end(
                [pid],
                wait_seconds=self._wait_seconds,
                safety=self._safety,
                dry_run=dry_run,
                snapshot=snapshot,
            )
            return result

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _connected(self) -> SessionControl:
        if self._control is None:
            self._control = self._connect()
        return self._control

    def _drop(self) -> None:
        control, self._control = self._control, None
        if control is not None:
            with contextlib.suppress(Exception):  # already broken: nothing left to close
                control.close()
