"""``sessionward reap``: snapshot → decide → audit → act (verified) → audit, on deadlines.

Each sweep reads one snapshot, asks ``core.decide`` what the policy does to
it, writes every decision to the audit file and fsyncs it, then signals the
sessions through ``SessionControl`` (which confirms each ending) and records
the outcomes.  It then sleeps until the earliest moment a rule could newly
match, at most ``max_interval_seconds``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..._control import SessionControl
from ...core import (
    ConfigurationError,
    Decision,
    DriverNotInstalled,
    EndResult,
    History,
    Outcome,
    Policy,
    Safety,
    SessionwardError,
    Snapshot,
    Verdict,
    decide,
)
from ._audit import AuditSink, new_id, now_iso, server_record, session_record
from ._events import EventLog
from ._metrics import Metrics

#: Never sleep less than this between sweeps, so a session exactly at a
#: threshold cannot make the reaper spin.
MIN_SLEEP_SECONDS = 0.005
DEFAULT_MAX_INTERVAL_SECONDS = 5.0
DEFAULT_LEADER_LOCK = "sessionward.reaper"
#: Test hook: seconds to pause between the audit record and the action.
PAUSE_ENV = "SESSIONWARD_REAPER_PAUSE_AFTER_AUDIT"


@runtime_checkable
class LeaderLockable(Protocol):
    def try_leader_lock(self, name: str) -> bool: ...


@dataclass
class ReaperOptions:
    dry_run: bool = False
    once: bool = False
    max_interval_seconds: float = DEFAULT_MAX_INTERVAL_SECONDS
    wait_seconds: float = 5.0
    leader_lock: str | None = None


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
        self._stop = threading.Event()
        self._pause = float(os.environ.get(PAUSE_ENV) or 0)
        self.stats = ReaperStats()

    # ------------------------------------------------------------------ running

    def stop(self, *_: Any) -> None:
        """Stop after the current sweep (a signal handler)."""
        self._stop.set()

    def run(self) -> ReaperStats:
        """Sweep until ``stop`` (or once); the first connection's failure propagates."""
        self._control = self._connect()
        if self._audit is not None:
            for record in self._audit.recover():
                self._log.emit("audit-recovered", "decision without outcome marked unknown",
                               id=record["id"])  # fmt: skip
        self._log.emit("started", policy_rules=len(self._policy.rules),
                       dry_run=self._options.dry_run,
                       server=self._control.backend.server.version)  # fmt: skip
        try:
            while not self._stop.is_set():
                delay = self._sweep_safely()
                if self._options.once:
                    break
                self._stop.wait(delay)
        finally:
            self._log.emit("stopped", sweeps=self.stats.sweeps)
            if self._control is not None:
                self._control.close()
        return self.stats

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def _sweep_safely(self) -> float:
        try:
            return self.sweep()
        except (ConfigurationError, DriverNotInstalled):
            raise
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
        snapshot = control.snapshot()
        present = {(s.pid, s.started_at) for s in snapshot.sessions}
        self._announced = {k for k in self._announced if not k[0] or (k[1], k[2]) in present}
        sweep = decide(self._policy, snapshot, now=started, history=self._history)
        self._report(snapshot, sweep.decisions)
        for rule, session, why in sweep.protected:
            key = (rule, session.pid, session.started_at, "protected")
            if key not in self._announced:
                self._announced.add(key)
                self._log.emit("protected", why, rule=rule, pid=session.pid, user=session.user)
        acted = self._act(control, snapshot, sweep.to_act())
        self._history = self._history.record(acted, started)
        self.stats.sweeps += 1
        finished = time.monotonic()
        if self._metrics is not None:
            self._metrics.observe_snapshot(snapshot)
            self._metrics.sweep_seconds.observe(finished - started)
            self._metrics.last_sweep.set(time.time())
        if sweep.next_check_seconds is None:
            delay = self._options.max_interval_seconds
        else:
            delay = sweep.next_check_seconds - (finished - started)
        return min(max(delay, MIN_SLEEP_SECONDS), self._options.max_interval_seconds)

    def _take_leader_lock(self, control: SessionControl) -> bool:
        backend = control.backend
        assert self._options.leader_lock is not None
        if not isinstance(backend, LeaderLockable):
            raise ConfigurationError("this server adapter cannot take a leader lock")
        if backend.try_leader_lock(self._options.leader_lock):
            self._set_leader(True)
            self._log.emit("leader", "took the leader lock", lock=self._options.leader_lock)
            return True
        if self.stats.sweeps == 0 and not self._announced:
            self._log.emit("standby", "another reaper holds the leader lock",
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
                           user=d.session.user, database=d.session.database)  # fmt: skip
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
            end = control.cancel if action == "cancel" else control.terminate
            for result in end(
                [d.session.pid for d in group],
                wait_seconds=self._options.wait_seconds,
                safety=Safety(include_superusers=superusers),
                dry_run=self._options.dry_run,
                snapshot=snapshot,
            ):
                results[result.pid] = result
        outcomes = []
        took_effect = []
        for d in decisions:
            result = results[d.session.pid]
            outcomes.append({"type": "outcome", "id": ids[id(d)], "time": now_iso(),
                             "outcome": result.outcome.value, "detail": result.detail})  # fmt: skip
            self._log.emit(d.action if result.ok else f"{d.action}-failed", d.why, rule=d.rule,
                           pid=d.session.pid, user=d.session.user, database=d.session.database,
                           application=d.session.application, outcome=result.outcome.value,
                           detail=result.detail)  # fmt: skip
            self.stats.results.append(result)
            if result.outcome is Outcome.ENDED:
                self.stats.signalled += 1
            elif not result.ok:
                self.stats.not_ended += 1
            if self._metrics is not None:
                self._metrics.ended.labels(d.rule, d.action, result.outcome.value).inc()
            if result.ok:
                took_effect.append(d)
        if self._audit is not None:
            self._audit.write(outcomes)
        return took_effect

    def _first_time(self, decision: Decision) -> bool:
        key = (decision.rule, decision.session.pid, decision.session.started_at, decision.action)
        if key in self._announced:
            return False
        self._announced.add(key)
        return True
