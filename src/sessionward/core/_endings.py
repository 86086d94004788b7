"""Deciding which sessions may be ended, and how each ending turned out."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ._filter import SessionFilter
from ._session import ACTIVE, CLIENT, PLATFORM, REPLICATION, Session, Snapshot


class Action(str, enum.Enum):
    CANCEL = "cancel"
    TERMINATE = "terminate"


class Outcome(str, enum.Enum):
    """How one requested ending turned out."""

    #: Terminate: the session is gone.  Cancel: its statement stopped.
    ENDED = "ended"
    #: Signalled, but still there when the wait ran out.
    STILL_RUNNING = "still running"
    #: No such session (or, for cancel, no statement running) when we looked.
    ALREADY_GONE = "already gone"
    #: The server refused: the role lacks a privilege.
    NOT_PERMITTED = "not permitted"
    #: We refused: our own session, a background process, replication or a superuser.
    PROTECTED = "protected"
    #: ``--dry-run``: it would have been signalled.
    WOULD_END = "would end"
    #: Signalled, not yet confirmed: the caller asked not to wait (``--wait 0``).
    SIGNALLED = "signalled"


@dataclass(frozen=True, slots=True)
class Safety:
    """Which normally protected sessions a caller explicitly allows to end."""

    include_superusers: bool = False
    include_replication: bool = False


@dataclass(frozen=True, slots=True)
class EndResult:
    pid: int
    outcome: Outcome
    detail: str = ""
    #: The session as it was before the action, when it was seen.
    session: Session | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.ENDED, Outcome.WOULD_END, Outcome.SIGNALLED)


def refusal(pid: int, snapshot: Snapshot, action: Action, safety: Safety) -> EndResult | None:
    """Say why ``pid`` must not be signalled, or ``None`` when it may be."""
    session = snapshot.get(pid)
    if pid == snapshot.server.own_pid:
        return EndResult(pid, Outcome.PROTECTED, "this is sessionward's own session", session)
    if session is None:
        if snapshot.unlisted:
            # Absent from a list that leaves other users out: it may well be alive.
            return EndResult(
                pid,
                Outcome.NOT_PERMITTED,
                f"pid {pid} is not among the sessions this login may see: {snapshot.unlisted}",
            )
        return EndResult(pid, Outcome.ALREADY_GONE, "no such session on the server")
    if session.backend_kind == REPLICATION and not safety.include_replication:
        return EndResult(
            pid, Outcome.PROTECTED, "replication sender; add --include-replication", session
        )
    if session.backend_kind == PLATFORM:
        return EndResult(
            pid, Outcome.PROTECTED, f"the managed platform's own login ({session.user})", session
        )
    if session.backend_kind not in (CLIENT, REPLICATION):
        return EndResult(
            pid, Outcome.PROTECTED, f"server background process ({session.backend_type})", session
        )
    if session.is_superuser and not safety.include_superusers:
        return EndResult(
            pid, Outcome.PROTECTED, "superuser session; add --include-superusers", session
        )
    if action is Action.CANCEL and session.state != ACTIVE:
        return EndResult(
            pid, Outcome.ALREADY_GONE, f"no statement running ({session.state})", session
        )
    return None


def plan(
    pids: Iterable[int], snapshot: Snapshot, action: Action, safety: Safety
) -> tuple[tuple[Session, ...], tuple[EndResult, ...]]:
    """Split requested pids into sessions to signal and those refused with a reason."""
    allowed: list[Session] = []
    refused: list[EndResult] = []
    for pid in dict.fromkeys(pids):
        reason = refusal(pid, snapshot, action, safety)
        if reason is not None:
            refused.append(reason)
        else:
            session = snapshot.get(pid)
            assert session is not None
            allowed.append(session)
    return tuple(allowed), tuple(refused)


def candidates(action: Action, session_filter: SessionFilter, snapshot: Snapshot) -> list[int]:
    """The pids a filter chooses for ``action``.

    Cancelling an idle session does nothing, so for ``cancel`` a filter means
    "the sessions running a statement".
    """
    matched = session_filter.select(snapshot)
    if action is Action.CANCEL:
        matched = tuple(s for s in matched if s.state == ACTIVE)
    return [s.pid for s in matched]


def failure_summary(results: Sequence[EndResult], action: Action) -> str | None:
    """One line on what was not ended, naming a missing privilege; ``None`` if all were."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return None
    counts: dict[str, int] = {}
    for result in failed:
        counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
    detail = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    noun = "statement" if action is Action.CANCEL else "session"
    line = f"{len(failed)} of {len(results)} {noun}s not ended ({detail})"
    not_permitted = [r for r in failed if r.outcome is Outcome.NOT_PERMITTED]
    if not_permitted:
        line += f": {not_permitted[0].detail}"
    return line


def unseen_note(snapshot: Snapshot) -> str | None:
    """One line on the sessions a filter could not judge, naming the missing privilege.

    ``None`` when every session was listed whole.  A login that sees only its
    own sessions (``unlisted``) cannot have chosen the others at all: the
    caller reports that as not done.  One that sees them without details
    (``undetailed``) could not choose them by those details: a note.
    """
    if snapshot.unlisted:
        return f"other users' sessions could not be chosen: {snapshot.unlisted}"
    if snapshot.undetailed:
        return f"note: {snapshot.undetailed}"
    return None
