"""The Python API: ``sessionward.connect(url)`` and what it returns."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable
from types import TracebackType

from .core import (
    CLIENT,
    REPLICATION,
    Action,
    Backend,
    ConfigurationError,
    DatabaseInUse,
    DropResult,
    EndResult,
    Outcome,
    PermissionDenied,
    Safety,
    Session,
    SessionFilter,
    SessionwardError,
    Snapshot,
    Target,
    WaitNode,
    checked_platform,
    lock_forest,
    parse_target,
    plan,
)
from .servers import open_backend

logger = logging.getLogger("sessionward")

#: How long ``terminate`` and ``cancel`` wait for each ending to show, by default.
DEFAULT_WAIT_SECONDS = 5.0
_POLL_SECONDS = 0.5
_CANCEL_POLL_SECONDS = 0.02
#: After a terminate, probe every few milliseconds for this long before
#: waiting on the server (PostgreSQL 14+ checks there only every 100 ms).
_EXIT_QUICK_POLL_SECONDS = 0.003
_EXIT_QUICK_WINDOW_SECONDS = 0.05
#: A database about to be dropped takes every session on it along: superusers'
#: and replication senders' too (``DROP … WITH (FORCE)`` would end them as well).
_DROP_SAFETY = Safety(include_superusers=True, include_replication=True)


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

    def snapshot(
        self, pids: Collection[int] | None = None, *, transactions_only: bool = False
    ) -> Snapshot:
        """Every session of the server, background processes included; or only ``pids``,
        or only the sessions with an open transaction."""
        if pids is None and not transactions_only:
            return self._backend.snapshot()
        return self._backend.snapshot(pids, transactions_only=transactions_only)

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
        """End each pid's session and confirm it is gone.

        ``wait_seconds=0``: signal and return at once; a session still there
        is reported ``signalled``, for the caller to confirm.
        """
        return self._end(Action.TERMINATE, pids, wait_seconds, safety, dry_run, snapshot)

    def drop_database(
        self,
        name: str,
        *,
        force: bool = True,
        if_exists: bool = False,
        dry_run: bool = False,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
    ) -> DropResult:
        """Drop database ``name``, first ending every session on it (``force``), verified.

        New sessions are kept off first (PostgreSQL: ``ALLOW_CONNECTIONS false``,
        template flag cleared), then every client session using it is
        terminated and confirmed gone, then it is dropped (``WITH (FORCE)`` on
        PostgreSQL as a last guard).  Without ``force``, sessions on it make
        it raise ``DatabaseInUse`` and nothing changes.  Whenever it is not
        dropped, connections are allowed again.  ``dry_run`` changes nothing
        and lists what would be ended.

        Raise ``ConfigurationError`` when it does not exist (unless
        ``if_exists``), is the database this connection uses, or has a name
        longer than the server keeps (which it would cut to another database's
        name), and ``PermissionDenied`` when the role may not drop it; both
        before anything is done, ``dry_run`` and ``if_exists`` too.
        """
        if not name:
            raise ConfigurationError("no database name given")
        backend = self._backend
        if not backend.database_exists(name):
            if if_exists:
                return DropResult(name, dropped=False, existed=False)
            raise ConfigurationError(f"database {name!r} does not exist")
        restore = _nothing if dry_run else backend.block_connections(name)
        try:
            snapshot = self.snapshot()
            pids, notes = backend.database_users(name)
            # Background processes on it (autovacuum) are the server's own: DROP ends them.
            users = [
                session
                for session in sorted(snapshot.sessions, key=lambda s: s.pid)
                if session.pid in pids and session.backend_kind in (CLIENT, REPLICATION)
            ]
            if users and not force:
                raise _in_use(name, users)
            pending = [s.pid for s in users]
            ended = self._end(
                Action.TERMINATE, pending, wait_seconds, _DROP_SAFETY, dry_run, snapshot
            )
            result = DropResult(name, dropped=False, existed=True, ended=ended, notes=notes)
            if dry_run:
                return result
            if result.not_ended:
                _undo(restore, name)
                return result
            backend.drop_database(name, force=force, if_exists=if_exists)
        except BaseException:
            _undo(restore, name)
            raise
        return DropResult(name, dropped=True, existed=True, ended=ended, notes=notes)

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
            # What the server would refuse is said now, not left for the real run.
            denied = self._backend.foresee_refusals(action.value, allowed) if allowed else {}
            results.update(
                {
                    s.pid: EndResult(s.pid, Outcome.NOT_PERMITTED, denied[s.pid], s)
                    if s.pid in denied
                    else EndResult(s.pid, Outcome.WOULD_END, "", s)
                    for s in allowed
                }
            )
        else:
            results.update(self._signal_and_verify(action, allowed, wait_seconds))
        return tuple(results[pid] for pid in requested)

    def _terminate_together(
        self, action: Action, sessions: Collection[Session]
    ) -> tuple[set[int] | None, bool]:
        """Signal many sessions in one round trip where the adapter can.

        Return the pids signalled (``None``: signal each singly) and whether a
        combined signal was refused.  A refusal for any of them makes every one
        be signalled again singly, so each gets its own ``not permitted`` or
        outcome; one already gone by then left after the combined signal.
        """
        if action is not Action.TERMINATE or len(sessions) < 2:
            return None, False
        try:
            return self._backend.terminate_many([(s.pid, s.started_at) for s in sessions]), False
        except PermissionDenied:
            return None, True

    def _signal_and_verify(
        self, action: Action, sessions: Collection[Session], wait_seconds: float
    ) -> dict[int, EndResult]:
        signal: Callable[..., bool] = (
            self._backend.cancel if action is Action.CANCEL else self._backend.terminate
        )
        results: dict[int, EndResult] = {}
        # Taken before signalling so a statement that ends on its own still counts as new.
        tokens = self._backend.probe([s.pid for s in sessions]) if action is Action.CANCEL else {}
        pending: dict[int, Session] = {}
        sent_together, refused_together = self._terminate_together(action, sessions)
        for session in sessions:
            if action is Action.CANCEL and tokens.get(session.pid) is None:
                # Its statement finished (or it left) since the snapshot: nothing to cancel.
                why = "no statement running" if session.pid in tokens else "it ended by itself"
                results[session.pid] = EndResult(session.pid, Outcome.ALREADY_GONE, why, session)
                continue
            try:
                if sent_together is not None:
                    sent = session.pid in sent_together
                else:
                    sent = signal(session.pid, started_at=session.started_at)
            except PermissionDenied as denied:
                results[session.pid] = EndResult(
                    session.pid, Outcome.NOT_PERMITTED, str(denied), session
                )
                continue
            if sent:
                pending[session.pid] = session
            elif refused_together:
                # The refused statement may have signalled it before the refusal.
                results[session.pid] = EndResult(
                    session.pid, Outcome.ENDED, "gone after the combined signal", session
                )
            else:
                results[session.pid] = EndResult(
                    session.pid, Outcome.ALREADY_GONE, "it ended before the signal", session
                )
        if wait_seconds <= 0:
            # Asked not to wait: the caller confirms the endings itself (the reaper does,
            # from its next sweeps, so one ending never holds up the next).
            for pid, session in pending.items():
                results[pid] = EndResult(pid, Outcome.SIGNALLED, "not waited for", session)
            return results
        deadline = time.monotonic() + wait_seconds
        quick_until = time.monotonic() + _EXIT_QUICK_WINDOW_SECONDS
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
            if action is Action.TERMINATE and time.monotonic() < quick_until:
                # A signalled backend usually exits within milliseconds, well before
                # the server-side wait's first 100 ms step: look again soon.
                time.sleep(min(remaining, _EXIT_QUICK_POLL_SECONDS))
            elif action is Action.TERMINATE:
                first = next(iter(pending.values()))
                self._backend.wait_for_exit(
                    first.pid,
                    timeout_seconds=min(remaining, _POLL_SECONDS),
                    started_at=first.started_at,
                )
            else:
                time.sleep(min(remaining, _CANCEL_POLL_SECONDS))
        for pid, session in pending.items():
            waited = f"after {wait_seconds:g}s"
            results[pid] = EndResult(pid, Outcome.STILL_RUNNING, waited, session)
        return results


def _nothing() -> None:
    """The undo of a step that was not taken."""


def _undo(restore: Callable[[], None], name: str) -> None:
    """Allow connections to ``name`` again after a failure, without hiding that failure."""
    try:
        restore()
    except SessionwardError as error:
        logger.warning("could not allow connections to database %r again: %s", name, error)


def _in_use(name: str, sessions: Collection[Session]) -> DatabaseInUse:
    shown = ", ".join(
        f"pid {s.pid} ({s.user or '?'}, {s.application or 'no application'}, {s.state or '?'})"
        for s in list(sessions)[:5]
    )
    more = f" and {len(sessions) - 5} more" if len(sessions) > 5 else ""
    noun = "session" if len(sessions) == 1 else "sessions"
    return DatabaseInUse(
        f"database {name!r} is in use by {len(sessions)} {noun}: {shown}{more}; "
        "nothing was dropped (force ends them first)",
        sessions=tuple(sessions),
    )


def connect(
    url: str | Target, *, statement_timeout_seconds: float = 5.0, platform: str = "auto"
) -> SessionControl:
    """Connect to the server at ``url`` (``postgresql://…``, ``mysql://…``, ``mariadb://…``).

    A URL that could be read two ways (a raw '@', '/' or '?' in the password)
    is refused with ``ConfigurationError`` before anything is looked up.
    ``platform``: ``auto`` (the default) finds out whether the server is a
    managed one whose own procedures end sessions (RDS/Aurora ``mysql.rds_kill``,
    Azure ``mysql.az_kill``); ``rds``, ``aurora``, ``azure``, ``cloudsql`` or
    ``self-managed`` say so.  Platform logins (``rdsadmin`` …) are never ended.
    """
    platform = checked_platform(platform)
    target = url if isinstance(url, Target) else parse_target(url)
    return SessionControl(
        open_backend(target, statement_timeout_seconds=statement_timeout_seconds, platform=platform)
    )
