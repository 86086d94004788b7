"""What the reaper does in one sweep, and when it must look again: pure functions.

``decide(policy, snapshot, now=…, history=…)`` returns a ``Sweep``: one
``Decision`` per session a rule chose (to act on, to report, or held back by a
limit), and ``next_check_seconds``, the time from the snapshot until the
earliest moment a rule could newly match: a known session crossing a
threshold, a session not yet in that state crossing the smallest threshold,
or a grace period running out.  ``crossings`` says when each known session
crosses, and ``next_full_seconds`` when anything else could happen, so a
caller whose policy ``judges_sessions_alone`` can look at just the sessions
due instead of at every session.

Rules are evaluated in file order; a session gets at most one decision per
sweep, from the first rule that chooses it.  ``now`` is any monotonic clock in
seconds; ``History`` remembers endings (for per-minute limits) and cancels
waiting for their grace to run out.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from ._blockers import root_blockers
from ._policy import (
    Policy,
    PolicyAction,
    Rule,
    Victims,
    always_protected,
    applications_hidden,
)
from ._session import ACTIVE, Session, Snapshot

#: Look this long past a crossing, since thresholds are strictly "over".
CROSSING_MARGIN_SECONDS = 0.001
#: When a per-sweep limit held sessions back, sweep again this soon.
NEXT_SWEEP_SECONDS = 0.05
_MINUTE = 60.0


class Verdict(str, enum.Enum):
    #: Act now (cancel or terminate).
    ACT = "act"
    #: ``report`` rule: record it, end nothing.
    REPORT = "report"
    #: Chosen, but a per-sweep or per-minute limit holds it back.
    LIMITED = "limited"
    #: Cancelled earlier; waiting for its grace period before terminating.
    IN_GRACE = "in grace"


@dataclass(frozen=True, slots=True)
class Decision:
    rule: str
    #: ``cancel`` or ``terminate`` to act; ``report`` otherwise.
    action: str
    verdict: Verdict
    session: Session
    why: str


@dataclass(frozen=True, slots=True)
class History:
    """What earlier sweeps did that the next decisions depend on."""

    #: (monotonic time, rule name) of each ending, the last minute's worth.
    endings: tuple[tuple[float, str], ...] = ()
    #: (pid, started_at) → (rule name, time cancelled) for ``cancel_then_terminate``.
    cancelled: dict[tuple[int, str | None], tuple[str, float]] = field(default_factory=dict)
    #: (pid, started_at) of sessions signalled to end and not yet gone: no rule
    #: chooses them again while they exit.
    ending: frozenset[tuple[int, str | None]] = frozenset()

    def record(self, decisions: Iterable[Decision], now: float) -> History:
        """The history after ``decisions`` were acted on at ``now``."""
        endings = [e for e in self.endings if now - e[0] < _MINUTE]
        cancelled = dict(self.cancelled)
        for decision in decisions:
            if decision.verdict is not Verdict.ACT:
                continue
            endings.append((now, decision.rule))
            key = (decision.session.pid, decision.session.started_at)
            if decision.action == "cancel":
                cancelled.setdefault(key, (decision.rule, now))
            else:
                cancelled.pop(key, None)
        return History(endings=tuple(endings), cancelled=cancelled, ending=self.ending)

    def exiting(self, ending: Iterable[tuple[int, str | None]]) -> History:
        """The same history, with ``ending`` as the sessions still exiting."""
        return History(endings=self.endings, cancelled=self.cancelled, ending=frozenset(ending))

    def forget_absent(self, snapshot: Snapshot) -> History:
        """Drop grace timers of sessions that left."""
        present = {(s.pid, s.started_at) for s in snapshot.sessions}
        cancelled = {k: v for k, v in self.cancelled.items() if k in present}
        return History(endings=self.endings, cancelled=cancelled, ending=self.ending)


@dataclass(frozen=True, slots=True)
class Sweep:
    decisions: tuple[Decision, ...]
    #: From the snapshot; ``None`` when no rule can newly match by time alone.
    next_check_seconds: float | None
    #: Sessions a rule matched but a protection kept out, with the reason.
    protected: tuple[tuple[str, Session, str], ...] = ()
    #: (pid, started_at, seconds from the snapshot) of each known session that
    #: will match a rule by time alone, at the earliest such moment.
    crossings: tuple[tuple[int, str | None, float], ...] = ()
    #: From the snapshot, when something other than ``crossings`` could make a
    #: rule act: a session not yet seen crossing, a grace period, a limit.
    next_full_seconds: float | None = None

    def to_act(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.verdict is Verdict.ACT)


def decide(
    policy: Policy,
    snapshot: Snapshot,
    *,
    now: float,
    history: History = History(),
    own_pids: Collection[int] = frozenset(),
) -> Sweep:
    """Decide what every rule does to ``snapshot`` at monotonic time ``now``.

    ``own_pids`` are the caller's other connections to this server (an audit
    table's, say): protected like ``snapshot.server.own_pid``.
    """
    if not snapshot.partial:
        history = history.forget_absent(snapshot)
    recent = [e for e in history.endings if now - e[0] < _MINUTE]
    decided = {s.pid for s in snapshot.sessions if (s.pid, s.started_at) in history.ending}
    decisions: list[Decision] = []
    protected: list[tuple[str, Session, str]] = []
    overall_sweep = 0
    overall_minute = len(recent)
    wake: list[float] = []
    crossings: dict[tuple[int, str | None], float] = {}
    smallest = policy.smallest_threshold_seconds()
    if smallest is not None:
        wake.append(smallest + CROSSING_MARGIN_SECONDS)

    for rule in policy.rules:
        eligible: list[Session] = []
        for session in snapshot.sessions:
            if session.pid in decided:
                continue
            reason = _protection(policy, rule, session, snapshot, own_pids)
            wait = rule.match.seconds_until_match(session, snapshot)
            if wait is None:
                continue
            if reason is not None:
                if wait <= 0:
                    protected.append((rule.name, session, reason))
                continue
            if rule.excluded(session, snapshot):
                continue
            if rule.action is PolicyAction.CANCEL and session.state != ACTIVE:
                continue  # nothing to cancel
            if wait > 0:
                key = (session.pid, session.started_at)
                due = wait + CROSSING_MARGIN_SECONDS
                crossings[key] = min(crossings.get(key, due), due)
                continue
            eligible.append(session)
        victims = _victims(policy, rule, eligible, snapshot, decided, protected, own_pids)
        rule_sweep = 0
        rule_minute = sum(1 for _, name in recent if name == rule.name)
        for session, why in victims:
            decided.add(session.pid)
            action, verdict, why = _action(rule, session, why, now, history, wake)
            if verdict is Verdict.ACT:
                held = _held_back(policy, rule, rule_sweep, rule_minute,
                                  overall_sweep, overall_minute)  # fmt: skip
                if held is not None:
                    verdict, why = Verdict.LIMITED, f"{why}; held back: {held}"
                    if "per_sweep" in held:
                        wake.append(NEXT_SWEEP_SECONDS)
                    else:
                        oldest = min((t for t, _ in recent), default=now)
                        wake.append(max(oldest + _MINUTE - now, CROSSING_MARGIN_SECONDS))
                else:
                    rule_sweep += 1
                    rule_minute += 1
                    overall_sweep += 1
                    overall_minute += 1
            decisions.append(Decision(rule.name, action, verdict, session, why))
    soonest = min(wake, default=None)
    return Sweep(
        decisions=tuple(decisions),
        next_check_seconds=min(wake + list(crossings.values()), default=None),
        protected=tuple(protected),
        crossings=tuple((pid, started_at, due) for (pid, started_at), due in crossings.items()),
        next_full_seconds=soonest,
    )


def _protection(
    policy: Policy, rule: Rule, session: Session, snapshot: Snapshot, own_pids: Collection[int]
) -> str | None:
    if session.pid in own_pids:
        return "sessionward's own connection"
    return always_protected(session, snapshot, rule) or policy.protect.reason(
        session, applications_hidden=applications_hidden(snapshot)
    )


def _victims(
    policy: Policy,
    rule: Rule,
    eligible: list[Session],
    snapshot: Snapshot,
    decided: set[int],
    protected: list[tuple[str, Session, str]],
    own_pids: Collection[int],
) -> list[tuple[Session, str]]:
    if not eligible:
        return []
    if rule.victims is Victims.ROOT_BLOCKERS:
        chosen: list[tuple[Session, str]] = []
        for pid in root_blockers(snapshot, [s.pid for s in eligible]):
            root = snapshot.get(pid)
            if root is None or pid in decided:
                continue
            reason = _protection(policy, rule, root, snapshot, own_pids)
            if reason is not None:
                protected.append((rule.name, root, f"root blocker, {reason}"))
                continue
            if rule.excluded(root, snapshot):
                continue
            behind = [s.pid for s in eligible if s.pid != pid]
            shown = ", ".join(map(str, behind[:5])) + (" …" if len(behind) > 5 else "")
            why = (
                rule.match.explain(root, snapshot)
                if root in eligible
                else f"root blocker of matching {shown}"
            )
            chosen.append((root, why))
        return chosen
    if rule.victims is Victims.OLDEST:
        eligible = [max(eligible, key=_age_key)]
    elif rule.victims is Victims.NEWEST:
        eligible = [min(eligible, key=_age_key)]
    return [(s, rule.match.explain(s, snapshot)) for s in eligible]


def _age_key(session: Session) -> tuple[float, float, float, int]:
    # Oldest: longest transaction, then longest in its state, then session; lowest pid on ties.
    return (
        session.xact_age_seconds or 0.0,
        session.state_age_seconds or 0.0,
        session.session_age_seconds or 0.0,
        -session.pid,
    )


def _action(
    rule: Rule, session: Session, why: str, now: float, history: History, wake: list[float]
) -> tuple[str, Verdict, str]:
    if rule.action is PolicyAction.REPORT:
        return "report", Verdict.REPORT, why
    if rule.action is PolicyAction.CANCEL:
        return "cancel", Verdict.ACT, why
    if rule.action is PolicyAction.TERMINATE:
        return "terminate", Verdict.ACT, why
    # cancel_then_terminate: nothing to cancel in an idle session, so terminate it.
    earlier = history.cancelled.get((session.pid, session.started_at))
    if earlier is None:
        if session.state != ACTIVE:
            return "terminate", Verdict.ACT, f"{why}; no statement to cancel"
        return "cancel", Verdict.ACT, why
    elapsed = now - earlier[1]
    if elapsed >= rule.grace_seconds:
        return "terminate", Verdict.ACT, f"{why}; still matching {elapsed:.1f}s after cancel"
    wake.append(rule.grace_seconds - elapsed)
    return "terminate", Verdict.IN_GRACE, f"{why}; cancelled {elapsed:.1f}s ago"


def _held_back(policy: Policy, rule: Rule, rule_sweep: int, rule_minute: int,
               overall_sweep: int, overall_minute: int) -> str | None:  # fmt: skip
    for label, limit, count in (
        (f"rule {rule.name!r} max_per_sweep", rule.limits.max_per_sweep, rule_sweep),
        (f"rule {rule.name!r} max_per_minute", rule.limits.max_per_minute, rule_minute),
        ("overall max_per_sweep", policy.limits.max_per_sweep, overall_sweep),
        ("overall max_per_minute", policy.limits.max_per_minute, overall_minute),
    ):
        if limit is not None and count >= limit:
            return f"{label} = {limit} reached"
    return None
