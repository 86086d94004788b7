"""The Python API: ``sessionward.connect(url)`` and what it returns."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from types import TracebackType

from .core import (
    Action,
    Backend,
    EndResult,
    Outcome,
    PermissionDenied,
    Safety,
    Session,
    SessionFilter,
    Snapshot,
    WaitNode,
    lock_forest,
    parse_target,
    plan,
)
from .servers import open_backend

#: How long ``terminate`` and ``cancel`` wait for each ending to show, by default.
DEFAULT_WAIT_SECONDS = 5.0
_POLL_SECONDS = 0.5
_CANCEL_POLL_SECONDS = 0.02


class SessionControl:
    """A connection to one server for reading and ending its sessions.

    Use it as a context manager, or call ``close()``.
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def own_pid(self) -> int:
        return self._backend.server.own_pid

    def snapshot(self) -> Snapshot:
        """Every session of the server, background processes included."""
        return self._backend.snapshot()

    def sessions(self, session_filter: SessionFilter | None = None) -> tuple[Session, ...]:
        """The sessions ``session_filter`` selects; client sessions only by default."""
        return (session_filter or SessionFilter()).select(self.snapshot())

    def blockers(self, snapshot: Snapshot | None = None) -> tuple[WaitNode, ...]:
        """The lock-wait forest, root blockers first."""
        return lock_forest(snapshot or self.snapshot())

    def cancel(
        self,
        pids: Iterable[int],
        *,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        safety: Safety = Safety(),
        dry_run: bool = False,
        snapshot: Snapshot | None = None,
    ) -> tuple[EndResult, ...]:
        """Stop the running statement of each pid and confirm it stopped."""
        return self._end(Action.CANCEL, pids, wait_seconds, safety, dry_run, snapshot)

    def terminate(
        self,
        pids: Iterable[int],
        *,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        safety: Safety = Safety(),
        dry_run: bool = False,
        snapshot: Snapshot | None = None,
    ) -> tuple[EndResult, ...]:
        """End each pid's session and confirm it is gone."""
        return self._end(Action.TERMINATE, pids, wait_seconds, safety, dry_run, snapshot)

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> SessionControl:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _end(
        self,
        action: Action,
        pids: Iterable[int],
        wait_seconds: float,
        safety: Safety,
        dry_run: bool,
        snapshot: Snapshot | None,
    ) -> tuple[EndResult, ...]:
        requested = list(dict.fromkeys(pids))
        snapshot = snapshot or self.snapshot()
        allowed, refused = plan(requested, snapshot, action, safety)
        results: dict[int, EndResult] = {r.pid: r for r in refused}
        if dry_run:
            results.update({s.pid: EndResult(s.pid, Outcome.WOULD_END, "", s) for s in allowed})
        else:
            results.update(self._signal_and_verify(action, allowed, wait_seconds))
        return tuple(results[pid] for pid in requested)

    def _signal_and_verify(
        self, action: Action, sessions: Collection[Session], wait_seconds: float
    ) -> dict[int, EndResult]:
        signal: Callable[[int], bool] = (
            self._backend.cancel if action is Action.CANCEL else self._backend.terminate
        )
        results: dict[int, EndResult] = {}
        # Taken before signalling so a statement that ends on its own still counts as new.
        tokens = self._backend.probe([s.pid for s in sessions]) if action is Action.CANCEL else {}
        pending: dict[int, Session] = {}
        for session in sessions:
            if action is Action.CANCEL and tokens.get(session.pid) is None:
                # Its statement finished (or it left) since the snapshot: nothing to cancel.
                why = "no statement running" if session.pid in tokens else "it ended by itself"
                results[session.pid] = EndResult(session.pid, Outcome.ALREADY_GONE, why, session)
                continue
            try:
                sent = signal(session.pid)
            except PermissionDenied as denied:
                results[session.pid] = EndResult(
                    session.pid, Outcome.NOT_PERMITTED, str(denied), session
                )
                continue
            if sent:
                pending[session.pid] = session
            else:
                results[session.pid] = EndResult(
                    session.pid, Outcome.ALREADY_GONE, "it ended before the signal", session
                )
        deadline = time.monotonic() + wait_seconds
        while pending:
            present = self._backend.probe(list(pending))
            for pid in list(pending):
                gone = pid not in present
                statement_done = action is Action.CANCEL and present.get(pid) != tokens.get(pid)
                if gone or statement_done:
                    results[pid] = EndResult(pid, Outcome.ENDED, "", pending.pop(pid))
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                break
            if action is Action.TERMINATE:
                self._backend.wait_for_exit(
                    next(iter(pending)), timeout_seconds=min(remaining, _POLL_SECONDS)
                )
            else:
                time.sleep(min(remaining, _CANCEL_POLL_SECONDS))
        for pid, session in pending.items():
            waited = f"after {wait_seconds:g}s"
            results[pid] = EndResult(pid, Outcome.STILL_RUNNING, waited, session)
        return results


def connect(url: str, *, statement_timeout_seconds: float = 5.0) -> SessionControl:
    """Connect to the server at ``url`` (``postgresql://…``, ``mysql://…``, ``mariadb://…``)."""
    return SessionControl(
        open_backend(parse_target(url), statement_timeout_seconds=statement_timeout_seconds)
    )
