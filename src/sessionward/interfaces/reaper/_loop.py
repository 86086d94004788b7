"""``sessionward reap``: snapshot → decide → audit → act (verified) → audit, on deadlines.

Each sweep reads one snapshot, asks ``core.decide`` what the policy does to
it, writes every decision to the audit file and fsyncs it, then signals the
sessions through ``SessionControl``.  It then sleeps until the earliest moment
a rule could newly match, at most ``max_interval_seconds``.

Terminations are confirmed without holding up the loop: a signalled session
is probed every ``CONFIRM_POLL_SECONDS`` (between sweeps and at the start of
each) until it is gone, which is when its outcome is recorded, or until
``wait_seconds`` pass (``still running``).  A backend takes milliseconds to
exit; waiting for it inside the sweep would make every session crossing a
limit meanwhile late by as much.  Cancels are confirmed in the sweep (the
session stays; its statement must stop).  Before stopping, the reaper waits
for the endings it started (after a signal, ``STOP_GRACE_SECONDS`` at most).

The reaper's own connections are never ended: the one it reads and signals
through is not listed, and those of its audit sinks (an audit table on the
reaped server, found again after every reconnect) are protected in every
sweep.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..._control import SessionControl
from ...core import (
    AuditUnavailable,
    ConfigurationError,
    Decision,
    DriverNotInstalled,
    EndResult,
    History,
    Outcome,
    Policy,
    Safety,
    Session,
    SessionwardError,
    Snapshot,
    Sweep,
    Verdict,
    decide,
)
from ._audit import (
    AuditSink,
    new_id,
    now_iso,
    server_record,
    session_record,
)
from ._events import EventLog
from ._metrics import Metrics
from ._stopping import Stopped, StopSwitch

#: Never sleep less than this between sweeps, so a session exactly at a
#: threshold cannot make the reaper spin.
MIN_SLEEP_SECONDS = 0.002
DEFAULT_MAX_INTERVAL_SECONDS = 5.0
#: Bounds of ``--max-interval`` and ``--wait``: beyond them a deadline means nothing.
MAX_INTERVAL_LIMIT_SECONDS = 86_400.0
MAX_WAIT_SECONDS = 3_600.0
DEFAULT_LEADER_LOCK = "sessionward.reaper"
#: Test hook: seconds to pause between the audit record and the action.
PAUSE_ENV = "SESSIONWARD_REAPER_PAUSE_AFTER_AUDIT"
#: How often a terminated session still exiting is looked for.
CONFIRM_POLL_SECONDS = 0.01
#: When the policy needs only sessions in a transaction, read every session anyway
#: this often, to forget what was said about sessions long gone.
EVERY_SESSION_SECONDS = 60.0


@dataclass
class ReaperOptions:
    dry_run: bool = False
    once: bool = False
    max_interval_seconds: float = DEFAULT_MAX_INTERVAL_SECONDS
    wait_seconds: float = 5.0
    leader_lock: str | None = None

    def __post_init__(self) -> None:
        check_bounds(max_interval_seconds=self.max_interval_seconds,
                     wait_seconds=self.wait_seconds)  # fmt: skip
        if self.leader_lock is not None and not self.leader_lock.strip():
            # An empty name is a lock all the same, shared by every reaper given one by mistake.
            raise ConfigurationError("--leader-lock needs a name (or no value for the default)")


def check_bounds(*, max_interval_seconds: float, wait_seconds: float) -> None:
    """Refuse intervals no deadline arithmetic should meet (and a sleep cannot take)."""
    if not (math.isfinite(max_interval_seconds) and max_interval_seconds > 0):
        raise ConfigurationError("--max-interval must be a positive duration")
    if max_interval_seconds > MAX_INTERVAL_LIMIT_SECONDS:
        raise ConfigurationError(
            f"--max-interval must be at most 1 day (24h), not {max_interval_seconds:g}s"
        )
    if not (math.isfinite(wait_seconds) and 0 <= wait_seconds <= MAX_WAIT_SECONDS):
        raise ConfigurationError("--wait must be a duration between 0s and 1h")


@dataclass(frozen=True)
class _Exiting:
    """A terminated session not yet seen gone."""

    decision: Decision
    audit_id: str
    give_up_at: float


@dataclass
class ReaperStats:
    sweeps: int = 0
    signalled: int = 0
    not_ended: int = 0
    errors: int = 0
    results: list[EndResult] = field(default_factory=list)


class Reaper:
    """Run a policy against one server until stopped."""

    def __init__(
        self,
        *,
        connect: Callable[[], SessionControl],
        policy: Policy,
        options: ReaperOptions,
        log: EventLog,
        audit: AuditSink | None = None,
        metrics: Metrics | None = None,
        stop: StopSwitch | None = None,
    ) -> None:
        self._connect = connect
        self._policy = policy
        self._options = options
        self._log = log
        self._audit = audit
        self._metrics = metrics
        self._control: SessionControl | None = None
        self._history = History()
        self._leader = options.leader_lock is None
        self._announced: set[tuple[str, int, str | None, str]] = set()
        self._exiting: dict[tuple[int, str | None], _Exiting] = {}
        #: When each known session crosses a threshold, and when to read every session.
        self._sessions_alone = policy.judges_sessions_alone()
        # Metrics count every session, so they need every session read.
        self._transactions_only = policy.needs_only_transactions() and metrics is None
        self._next_every_session = 0.0
        self._crossings: dict[tuple[int, str | None], float] = {}
        self._next_whole = 0.0
        self._switch = stop or StopSwitch()
        self._stop = self._switch.event
        self._pause = _pause_from_environment()
        self.stats = ReaperStats()

    @property
    def leader(self) -> bool:
        """Whether this reaper may act: it holds the leader lock, or needs none."""
        return self._leader

    # ------------------------------------------------------------------ running

    def stop(self, *_: Any) -> None:
        """Stop after the current sweep (from another thread, say)."""
        self._switch.request()

    def run(self) -> ReaperStats:
        """Sweep until ``stop`` (or once); the first connection's failure propagates.

        A signal taken by the ``StopSwitch`` raises ``Stopped`` out of it, after the
        ``stopped`` event and with the connection closed.
        """
        self._control = self._connect()
        try:
            if self._audit is not None:
                for record in self._audit.recover():
                    self._log.emit("audit-recovered", "decision without outcome marked unknown",
                                   id=record["id"])  # fmt: skip
        except BaseException:
            with contextlib.suppress(Exception):  # the error on the way out says what matters
                self._control.close()
            raise
        self._log.emit("started", policy_rules=len(self._policy.rules),
                       dry_run=self._options.dry_run,
                       server=self._control.backend.server.version)  # fmt: skip
        try:
            try:
                self._loop()
            except Stopped:
                if self._switch.now or not self._exiting:
                    raise
                # Asleep when the signal came: the endings under way get their outcome.
            self._switch.start_grace()
            with self._switch.careful():
                self._finish_confirming()
            if self._switch.signum is not None:
                raise Stopped(self._switch.signum)
        finally:
            with contextlib.suppress(Exception):  # stderr gone: nothing left to tell
                self._log.emit("stopped", sweeps=self.stats.sweeps)
            if self._control is not None:
                with contextlib.suppress(Exception):  # closing a broken connection may fail
                    self._control.close()
        return self.stats

    def _loop(self) -> None:
        next_sweep = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() >= next_sweep:
                with self._switch.careful():
                    next_sweep = time.monotonic() + self._sweep_safely()
                if self._options.once:
                    break
            else:
                with self._switch.careful():
                    self._confirm_safely()
            delay = min(next_sweep - time.monotonic(), self._options.max_interval_seconds)
            if self._exiting:
                delay = min(delay, CONFIRM_POLL_SECONDS)
            self._stop.wait(max(delay, 0.0))

    def install_signal_handlers(self) -> None:
        """Stop on SIGTERM and SIGINT within a second (see ``_stopping``)."""
        self._switch.install()

    def _sweep_safely(self) -> float:
        try:
            return self.sweep()
        except (ConfigurationError, DriverNotInstalled):
            raise
        except AuditUnavailable as error:
            # The reaped server is fine: keep its connection (and any leader lock).
            self.stats.errors += 1
            if self._metrics is not None:
                self._metrics.errors.inc()
            self._log.emit("error", str(error))
            if self._options.once:
                raise
            return self._options.max_interval_seconds
        except SessionwardError as error:
            # The connection (and with it any leader lock) may be gone: start over.
            self.stats.errors += 1
            if self._metrics is not None:
                self._metrics.errors.inc()
            self._log.emit("error", str(error))
            self._drop_connection()
            if self._options.once:
                raise
            return self._options.max_interval_seconds

    def _confirm_safely(self) -> None:
        try:
            self._confirm()
        except SessionwardError as error:
            self.stats.errors += 1
            self._log.emit("error", str(error))
            self._drop_connection()

    def _finish_confirming(self) -> None:
        """Wait for the endings already started, so each gets its outcome."""
        while self._exiting and self._control is not None:
            self._confirm_safely()
            if self._exiting:
                time.sleep(CONFIRM_POLL_SECONDS)

    def _confirm(self, snapshot: Snapshot | None = None) -> list[tuple[int, str | None]]:
        """Record the outcome of each terminated session now gone, or waited for too long;
        return the sessions found gone."""
        if not self._exiting:
            return []
        if snapshot is not None:
            present = {(s.pid, s.started_at) for s in snapshot.sessions}
            gone = [key for key in self._exiting if key not in present]
        else:
            assert self._control is not None
            listed = self._control.backend.probe([pid for pid, _ in self._exiting])
            gone = [key for key in self._exiting if key[0] not in listed]
        now = time.monotonic()
        late = [k for k, e in self._exiting.items() if k not in gone and now >= e.give_up_at]
        if not gone and not late:
            return []
        waited = f"after {self._options.wait_seconds:g}s"
        settled = [(self._exiting.pop(k), Outcome.ENDED, "") for k in gone]
        settled += [(self._exiting.pop(k), Outcome.STILL_RUNNING, waited) for k in late]
        self._record([
            (e.decision, e.audit_id, EndResult(e.decision.session.pid, outcome, detail,
                                               e.decision.session))
            for e, outcome, detail in settled
        ])  # fmt: skip
        return gone

    def _drop_connection(self) -> None:
        if self._control is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail too
                self._control.close()
            self._control = None
        if self._options.leader_lock is not None:
            self._set_leader(False)

    # ------------------------------------------------------------------ one sweep

    def sweep(self) -> float:
        """One sweep; return how long to sleep before the next."""
        if self._control is None:
            self._control = self._connect()
        control = self._control
        if not self._leader and not self._take_leader_lock(control):
            return self._options.max_interval_seconds
        started = time.monotonic()
        due = self._due(started)
        if due is not None:
            snapshot = control.snapshot(due)
        elif self._transactions_only and started < self._next_every_session:
            snapshot = control.snapshot(transactions_only=True)
        else:
            snapshot = control.snapshot()
            self._next_every_session = started + EVERY_SESSION_SECONDS
        if snapshot.partial:
            # A session missing from it may still be exiting: probe.  The probe is newer
            # than the snapshot, which may still list a session the probe found gone:
            # that one is not judged again.
            gone = self._confirm()
        else:
            gone = self._confirm(snapshot)
            present = {(s.pid, s.started_at) for s in snapshot.sessions}
            self._announced = {k for k in self._announced if not k[0] or (k[1], k[2]) in present}
        self._history = self._history.exiting([*self._exiting, *gone])
        sweep = decide(self._policy, snapshot, now=started, history=self._history,
                       own_pids=self._own_pids(snapshot))  # fmt: skip
        self._report(snapshot, sweep.decisions)
        for rule, session, why in sweep.protected:
            key = (rule, session.pid, session.started_at, "protected")
            if key not in self._announced:
                self._announced.add(key)
                self._log.emit("protected", why, rule=rule, pid=session.pid, user=session.user)
        acted = self._act(control, snapshot, sweep.to_act())
        self._history = self._history.record(acted, started)
        self.stats.sweeps += 1
        self._schedule(sweep, started, due)
        finished = time.monotonic()
        if self._metrics is not None:
            if not snapshot.partial:
                self._metrics.observe_snapshot(snapshot)
            self._metrics.sweep_seconds.observe(finished - started)
            self._metrics.last_sweep.set(time.time())
        next_look = min([self._next_whole, *self._crossings.values()])
        return min(max(next_look - finished, MIN_SLEEP_SECONDS), self._options.max_interval_seconds)

    def _own_pids(self, snapshot: Snapshot) -> frozenset[int]:
        """The sessions of ``snapshot`` that are the audit sinks' connections."""
        own = self._audit.own_connections() if self._audit is not None else ()
        if not own:
            return frozenset()
        return frozenset(s.pid for s in snapshot.sessions if any(o.is_session(s) for o in own))

    def _due(self, now: float) -> list[int] | None:
        """The sessions to look at now, or ``None`` for every session.

        A look at only the sessions due to cross a threshold is as good as a
        look at all of them when each rule judges a session alone, and costs
        a fraction at a thousand sessions (on MariaDB, often no InnoDB read).
        """
        if not self._sessions_alone or now >= self._next_whole or not self._crossings:
            return None
        # Woken a hair early, nothing is due yet: the soonest are the ones woken for.
        soonest = max(min(self._crossings.values()), now) + MIN_SLEEP_SECONDS
        return [pid for (pid, _), at in self._crossings.items() if at <= soonest]

    def _schedule(self, sweep: Sweep, started: float, looked_at: list[int] | None) -> None:
        """Remember when each known session crosses, and when every session must be read."""
        cap = started + self._options.max_interval_seconds
        if not self._sessions_alone:
            later = sweep.next_check_seconds
            self._next_whole = cap if later is None else min(started + later, cap)
            return
        if looked_at is None:
            self._crossings = {}
            self._next_whole = cap
        else:
            looked = set(looked_at)
            for key in [k for k in self._crossings if k[0] in looked]:
                del self._crossings[key]
        for pid, started_at, seconds in sweep.crossings:
            self._crossings[(pid, started_at)] = started + seconds
        if sweep.next_full_seconds is not None:
            self._next_whole = min(self._next_whole, started + sweep.next_full_seconds)

    def _take_leader_lock(self, control: SessionControl) -> bool:
        assert self._options.leader_lock is not None
        if control.backend.try_leader_lock(self._options.leader_lock):
            self._set_leader(True)
            self._log.emit("leader", "took the leader lock", lock=self._options.leader_lock)
            return True
        if self.stats.sweeps == 0 and not self._announced:
            done = "; this --once run did nothing" if self._options.once else ""
            self._log.emit("standby", f"another reaper holds the leader lock{done}",
                           lock=self._options.leader_lock)  # fmt: skip
            self._announced.add(("", 0, None, "standby"))
        return False

    def _set_leader(self, leader: bool) -> None:
        self._leader = leader
        if self._metrics is not None:
            self._metrics.leader.set(1 if leader else 0)

    def _report(self, snapshot: Snapshot, decisions: Sequence[Decision]) -> None:
        """Record report rules' matches, and say once why a session is held back."""
        records = []
        for d in decisions:
            if d.verdict is Verdict.ACT:
                continue
            # Held back: say so again when the limit holding it changes.
            reason = d.why.rpartition("held back: ")[2] if d.verdict is Verdict.LIMITED else ""
            key = (d.rule, d.session.pid, d.session.started_at, d.verdict.value + reason)
            if key in self._announced:
                continue
            self._announced.add(key)
            self._log.emit(d.verdict.value.replace(" ", "-"), d.why, rule=d.rule, pid=d.session.pid,
                           user=d.session.user, database=d.session.database,
                           **_origin_fields(d.session))  # fmt: skip
            if d.verdict is Verdict.REPORT:
                if self._metrics is not None:
                    self._metrics.reported.labels(d.rule).inc()
                records.append({
                    "type": "report", "id": new_id(), "time": now_iso(), "rule": d.rule,
                    "why": d.why, "server": server_record(snapshot),
                    "session": session_record(snapshot, d.session),
                })  # fmt: skip
        if self._audit is not None:
            self._audit.write(records)

    def _act(
        self, control: SessionControl, snapshot: Snapshot, decisions: Sequence[Decision]
    ) -> list[Decision]:
        """Audit, signal and verify; return the decisions that took effect."""
        if self._options.dry_run:
            # Announce each would-be ending once; keep the grace timers running.
            decisions = [d for d in decisions if self._first_time(d)]
        if not decisions:
            return []
        ids = {id(d): new_id() for d in decisions}
        if self._audit is not None:
            self._audit.write([
                {"type": "decision", "id": ids[id(d)], "time": now_iso(), "rule": d.rule,
                 "action": d.action, "dry_run": self._options.dry_run, "why": d.why,
                 "server": server_record(snapshot),
                 "session": session_record(snapshot, d.session)}
                for d in decisions
            ])  # fmt: skip
        if self._pause:
            time.sleep(self._pause)
        rules = {rule.name: rule for rule in self._policy.rules}
        results: dict[int, EndResult] = {}
        groups: dict[tuple[str, bool], list[Decision]] = {}
        for d in decisions:
            groups.setdefault((d.action, rules[d.rule].include_superusers), []).append(d)
        for (action, superusers), group in groups.items():
            cancel = action == "cancel"
            end = control.cancel if cancel else control.terminate
            for result in end(
                [d.session.pid for d in group],
                # Terminations are confirmed by ``_confirm``, off the sweep.
                wait_seconds=self._options.wait_seconds if cancel else 0,
                safety=Safety(include_superusers=superusers),
                dry_run=self._options.dry_run,
                snapshot=snapshot,
            ):
                results[result.pid] = result
        give_up_at = time.monotonic() + self._options.wait_seconds
        settled = []
        for d in decisions:
            result = results[d.session.pid]
            if result.outcome is Outcome.SIGNALLED:
                key = (d.session.pid, d.session.started_at)
                self._exiting[key] = _Exiting(d, ids[id(d)], give_up_at)
            else:
                settled.append((d, ids[id(d)], result))
        self._record(settled)
        return [d for d in decisions if results[d.session.pid].ok]

    def _record(self, settled: Sequence[tuple[Decision, str, EndResult]]) -> None:
        """Log, count and audit the outcome of each ending."""
        outcomes = []
        for d, audit_id, result in settled:
            outcomes.append({"type": "outcome", "id": audit_id, "time": now_iso(),
                             "outcome": result.outcome.value, "detail": result.detail})  # fmt: skip
            self._log.emit(d.action if result.ok else f"{d.action}-failed", d.why, rule=d.rule,
                           pid=d.session.pid, user=d.session.user, database=d.session.database,
                           application=d.session.application, outcome=result.outcome.value,
                           detail=result.detail, **_origin_fields(d.session))  # fmt: skip
            self.stats.results.append(result)
            if result.outcome is Outcome.ENDED:
                self.stats.signalled += 1
            elif not result.ok:
                self.stats.not_ended += 1
            if self._metrics is not None:
                self._metrics.ended.labels(d.rule, d.action, result.outcome.value).inc()
        if self._audit is not None:
            self._audit.write(outcomes)

    def _first_time(self, decision: Decision) -> bool:
        key = (decision.rule, decision.session.pid, decision.session.started_at, decision.action)
        if key in self._announced:
            return False
        self._announced.add(key)
        return True


def _origin_fields(session: Session) -> dict[str, Any]:
    """The service and code line that held ``session``, as its client said, for a log line."""
    origin = session.origin
    if origin is None:
        return {}
    return {"service": origin.service, "holder": origin.holder, "code": origin.code}


def _pause_from_environment() -> float:
    text = os.environ.get(PAUSE_ENV) or "0"
    try:
        pause = float(text)
    except ValueError:
        pause = math.nan
    if not (math.isfinite(pause) and 0 <= pause <= MAX_WAIT_SECONDS):
        raise ConfigurationError(f"{PAUSE_ENV}={text!r} is not a number of seconds up to 3600")
    return pause
