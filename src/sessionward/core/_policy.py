"""The reaper's policy: rules that say which sessions to end, how, and how many.

Semantics, the same everywhere:

- Within a ``match`` (or one ``exclude`` entry), fields AND together; the
  values of one field are alternatives (OR).  An empty match selects every
  client session.
- Thresholds are strictly "over": ``idle_over = 5`` matches at 5.001 s, not at 5 s.
  A threshold on an age that does not apply (``query_over`` on an idle
  session, ``xact_over`` outside a transaction) does not match.
- A session matching any ``exclude`` entry of a rule is left alone by that rule.
- ``protect`` wins over every rule: a session whose user, application,
  database or client matches any of its entries is never ended.  Our own
  session, background processes and replication senders are always
  protected; superusers are, unless the rule says ``include_superusers``.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field, replace

from ._filter import Network, _any_client, _any_glob
from ._session import ACTIVE, CLIENT, IDLE_IN_TRANSACTION, Session, Snapshot

#: How far from matching a session exactly at its threshold is.
_HAIR_SECONDS = 1e-6


class PolicyAction(str, enum.Enum):
    REPORT = "report"
    CANCEL = "cancel"
    TERMINATE = "terminate"
    #: Cancel the statement; terminate after ``grace_seconds`` if the rule still matches.
    CANCEL_THEN_TERMINATE = "cancel_then_terminate"


class Victims(str, enum.Enum):
    ALL = "all"
    #: Only the matching session with the oldest transaction (else state, else session).
    OLDEST = "oldest"
    NEWEST = "newest"
    #: The root blockers behind the matching sessions, instead of them.
    ROOT_BLOCKERS = "root_blockers"


@dataclass(frozen=True, slots=True)
class Match:
    """Conditions on one session; every given field must hold."""

    databases: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    applications: tuple[str, ...] = ()
    clients: tuple[Network | str, ...] = ()
    states: tuple[str, ...] = ()
    backend_types: tuple[str, ...] = ()
    query: re.Pattern[str] | None = None
    idle_over_seconds: float | None = None
    idle_in_transaction_over_seconds: float | None = None
    xact_over_seconds: float | None = None
    query_over_seconds: float | None = None
    wait_over_seconds: float | None = None
    blocking_at_least: int | None = None
    #: PostgreSQL: the session holds the xmin horizon back by more transactions than this.
    xmin_age_over: int | None = None
    #: Globs on the origin the client named (``origin.service`` …); a session
    #: without that part never matches them.
    origin_services: tuple[str, ...] = ()
    origin_hosts: tuple[str, ...] = ()
    origin_holders: tuple[str, ...] = ()
    origin_codes: tuple[str, ...] = ()

    def thresholds(self) -> dict[str, float]:
        """The time thresholds set, by field name."""
        return {
            name: value
            for name, value in (
                ("idle_over", self.idle_over_seconds),
                ("idle_in_transaction_over", self.idle_in_transaction_over_seconds),
                ("xact_over", self.xact_over_seconds),
                ("query_over", self.query_over_seconds),
                ("wait_over", self.wait_over_seconds),
            )
            if value is not None
        }

    def static_failures(self, session: Session, snapshot: Snapshot) -> list[str]:
        """The fields other than ages that do not hold (they do not change as time passes)."""
        failed = []
        if not _any_glob(self.databases, session.database):
            failed.append("database")
        if not _any_glob(self.users, session.user):
            failed.append("user")
        if not _any_glob(self.applications, session.application):
            failed.append("application")
        if not _any_client(self.clients, session.client_addr):
            failed.append("client")
        if self.states and session.state not in self.states:
            failed.append("state")
        if not _any_glob(self.backend_types, session.backend_type):
            failed.append("backend_type")
        for label, patterns, value in self._origin_fields(session):
            if not _any_glob(patterns, value):
                failed.append(label)
        if self.query is not None and not (session.query and self.query.search(session.query)):
            failed.append("query")
        if self.blocking_at_least is not None and (
            blocked_count(snapshot, session.pid) < self.blocking_at_least
        ):
            failed.append("blocking_at_least")
        if self.xmin_age_over is not None and not (
            session.xmin_age is not None and session.xmin_age > self.xmin_age_over
        ):
            failed.append("xmin_age_over")
        return failed

    def _origin_fields(self, session: Session) -> list[tuple[str, tuple[str, ...], str | None]]:
        origin = session.origin
        return [
            (f"origin.{part}", patterns, getattr(origin, part) if origin is not None else None)
            for part, patterns in (
                ("service", self.origin_services),
                ("host", self.origin_hosts),
                ("holder", self.origin_holders),
                ("code", self.origin_codes),
            )
            if patterns
        ]

    def ages(self, session: Session) -> dict[str, float | None]:
        """The session's age for each threshold set (``None``: does not apply)."""
        values = {
            "idle_over": session.idle_age_seconds,
            "idle_in_transaction_over": (
                session.state_age_seconds if session.state == IDLE_IN_TRANSACTION else None
            ),
            "xact_over": session.xact_age_seconds,
            "query_over": session.query_age_seconds if session.state == ACTIVE else None,
            "wait_over": session.wait_age_seconds,
        }
        return {name: values[name] for name in self.thresholds()}

    def matches(self, session: Session, snapshot: Snapshot) -> bool:
        if self.static_failures(session, snapshot):
            return False
        ages = self.ages(session)
        return all(
            (age := ages[name]) is not None and age > limit
            for name, limit in self.thresholds().items()
        )

    def seconds_until_match(self, session: Session, snapshot: Snapshot) -> float | None:
        """How long until ``session`` matches if it stays as it is; ``None``: never by waiting.

        Zero when it matches now.
        """
        if self.static_failures(session, snapshot):
            return None
        wait = 0.0
        ages = self.ages(session)
        for name, limit in self.thresholds().items():
            age = ages[name]
            # NaN compares false both ways: it must never count as "over" (the loaders
            # refuse it; this keeps a hand-built Match from ending every session).
            if age is None or math.isnan(age) or math.isnan(limit):
                return None
            if age <= limit:  # strictly over: exactly at the limit is a hair short
                wait = max(wait, limit - age, _HAIR_SECONDS)
        return wait

    def explain(self, session: Session, snapshot: Snapshot) -> str:
        """Say why a matching session matches: the fields set and the session's values."""
        parts = []
        for name, (label, value) in {
            "databases": ("database", session.database),
            "users": ("user", session.user),
            "applications": ("application", session.application),
            "states": ("state", session.state),
            "backend_types": ("backend_type", session.backend_type),
        }.items():
            if getattr(self, name):
                parts.append(f"{label} {value}")
        if self.clients:
            parts.append(f"client {session.client}")
        for label, _, value in self._origin_fields(session):
            parts.append(f"{label} {value}")
        if self.query is not None:
            parts.append(f"query ~ /{self.query.pattern}/")
        ages = self.ages(session)
        for name, limit in self.thresholds().items():
            age = ages[name] or 0
            # Milliseconds for any real age; a saved snapshot may hold any number, though.
            shown = f"{age:.3f}" if age < 1e9 else f"{age:.3e}"
            parts.append(f"{name.replace('_over', '')} {shown}s > {limit:g}s")
        if self.blocking_at_least is not None:
            parts.append(
                f"blocking {blocked_count(snapshot, session.pid)} >= {self.blocking_at_least}"
            )
        if self.xmin_age_over is not None:
            parts.append(f"xmin age {session.xmin_age} > {self.xmin_age_over}")
        return ", ".join(parts) or "every client session"


@dataclass(frozen=True, slots=True)
class Limits:
    """At most this many sessions ended per sweep and per rolling minute (``None``: no limit)."""

    max_per_sweep: int | None = None
    max_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class Protect:
    """Sessions no rule may end: any entry of any field that matches protects."""

    users: tuple[str, ...] = ()
    applications: tuple[str, ...] = ()
    databases: tuple[str, ...] = ()
    clients: tuple[Network | str, ...] = ()

    def reason(self, session: Session, *, applications_hidden: bool = False) -> str | None:
        """Why ``session`` is protected by this block, or ``None``.

        Where the server does not show application names, a session whose
        application is unknown is protected as soon as ``applications`` is set.
        """
        if applications_hidden and self.applications and session.application is None:
            return "application unknown (the server does not show application names)"
        for label, patterns, value in (
            ("user", self.users, session.user),
            ("application", self.applications, session.application),
            ("database", self.databases, session.database),
        ):
            if patterns and _any_glob(patterns, value):
                return f"protected {label} {value}"
        if self.clients and _any_client(self.clients, session.client_addr):
            return f"protected client {session.client}"
        return None


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    action: PolicyAction
    match: Match = Match()
    exclude: tuple[Match, ...] = ()
    victims: Victims = Victims.ALL
    limits: Limits = Limits()
    #: For ``cancel_then_terminate``: how long a cancelled session may still match.
    grace_seconds: float = 10.0
    include_superusers: bool = False

    def evolve(self, **changes: object) -> Rule:
        return replace(self, **changes)  # type: ignore[arg-type]

    def excluded(self, session: Session, snapshot: Snapshot) -> bool:
        """Whether an ``exclude`` entry matches; an unknown application counts as matching."""
        hidden = applications_hidden(snapshot) and session.application is None
        return any(
            (replace(entry, applications=()) if hidden else entry).matches(session, snapshot)
            for entry in self.exclude
        )


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    protect: Protect = Protect()
    #: Over all rules together.
    limits: Limits = Limits()
    #: Where each rule and key was written, for messages: ``{"rules[0].match": 12}``.
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def evolve(self, **changes: object) -> Policy:
        return replace(self, **changes)  # type: ignore[arg-type]

    def judges_sessions_alone(self) -> bool:
        """Whether every rule decides on a session from that session alone.

        Then a snapshot of only some sessions decides them as the whole one
        would: no rule picks among its matches (``victims``), counts waiters
        (``blocking_at_least``) or caps a sweep (``max_per_sweep``).
        """
        return self.limits.max_per_sweep is None and all(
            rule.victims is Victims.ALL
            and rule.limits.max_per_sweep is None
            and all(m.blocking_at_least is None for m in (rule.match, *rule.exclude))
            for rule in self.rules
        )

    def needs_only_transactions(self) -> bool:
        """Whether only sessions with an open transaction can ever match a rule.

        True when every rule has an ``idle_in_transaction_over`` or
        ``xact_over`` threshold (ages that exist only inside a transaction)
        and none looks past its matches (``root_blockers``,
        ``blocking_at_least``): a read of just those sessions then decides
        as a read of all would, and on a quiet server costs next to nothing.
        """
        needs = {"idle_in_transaction_over", "xact_over"}
        return all(
            needs & rule.match.thresholds().keys()
            and rule.victims is not Victims.ROOT_BLOCKERS
            and rule.match.blocking_at_least is None
            for rule in self.rules
        )

    def smallest_threshold_seconds(self) -> float | None:
        """The shortest time threshold of any acting or reporting rule."""
        values = [v for rule in self.rules for v in rule.match.thresholds().values()]
        return min(values) if values else None


#: How an adapter says, in ``Snapshot.degraded``, that it cannot see application names.
APPLICATIONS_HIDDEN = "application names not shown"


def applications_hidden(snapshot: Snapshot) -> bool:
    """Whether the server hides application names (MariaDB/MySQL without performance_schema)."""
    return any(note.startswith(APPLICATIONS_HIDDEN) for note in snapshot.degraded)


def always_protected(session: Session, snapshot: Snapshot, rule: Rule) -> str | None:
    """Why ``session`` may never be ended by ``rule``, whatever the policy says."""
    if session.pid == snapshot.server.own_pid:
        return "sessionward's own session"
    if session.backend_kind != CLIENT:
        return f"{session.backend_kind} process ({session.backend_type})"
    if session.is_superuser and not rule.include_superusers:
        return "superuser session (the rule does not say include_superusers)"
    return None


def blocked_count(snapshot: Snapshot, pid: int) -> int:
    """How many sessions wait on ``pid``, directly or down the chain."""
    seen: set[int] = set()
    stack = list(snapshot.blocking(pid))
    while stack:
        waiter = stack.pop()
        if waiter not in seen and waiter != pid:
            seen.add(waiter)
            stack.extend(snapshot.blocking(waiter))
    return len(seen)
