"""``Timeouts``: one value for every limit a session can have, in float seconds."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ._errors import ConfigurationError

#: Keepalive defaults: a silent peer is noticed after 30 s idle + 3 probes 10 s apart.
DEFAULT_KEEPALIVE_IDLE_SECONDS = 30.0
DEFAULT_KEEPALIVE_INTERVAL_SECONDS = 10.0
DEFAULT_MAX_KEEPALIVE_PROBES = 3
#: Unacknowledged data gives up after the same minute the keepalives take.
DEFAULT_TCP_USER_TIMEOUT_SECONDS = 60.0

#: The largest TCP settings Linux takes: milliseconds in a signed 32-bit int (about
#: 24.8 days), 32767 s for keepalive idle and interval, and 127 probes.  A larger value
#: would fail every connect, so it is refused here, once.
MAX_MILLISECOND_SECONDS = (2**31 - 1) / 1000
MAX_KEEPALIVE_SECONDS = 32767.0
MAX_KEEPALIVE_PROBES = 127

_MOST = {
    "keepalive_idle_seconds": MAX_KEEPALIVE_SECONDS,
    "keepalive_interval_seconds": MAX_KEEPALIVE_SECONDS,
    "tcp_user_timeout_seconds": MAX_MILLISECOND_SECONDS,
}

#: Limits enforced by the server; 0 means "no limit", ``None`` the server's default.
SERVER_FIELDS = (
    "statement_seconds",
    "lock_seconds",
    "idle_in_transaction_seconds",
    "idle_session_seconds",
    "transaction_seconds",
)
_NON_NEGATIVE_FIELDS = (*SERVER_FIELDS, "connect_seconds")
_POSITIVE_FIELDS = (
    "keepalive_idle_seconds",
    "keepalive_interval_seconds",
    "tcp_user_timeout_seconds",
)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a session may run, wait or idle, and how soon a dead link is noticed.

    Server limits (``None`` leaves the server's setting alone, ``0`` turns the
    limit off):

    - ``statement_seconds``: one statement.
    - ``lock_seconds``: one wait for a lock.
    - ``idle_in_transaction_seconds``: idle inside a transaction; the server
      then closes the connection.
    - ``idle_session_seconds``: idle outside a transaction; closes too.
    - ``transaction_seconds``: a whole transaction (PostgreSQL 17+); closes too.

    Client side:

    - ``connect_seconds``: connecting (``None``: the driver's default; ``0``: wait forever).
    - ``keepalive_idle_seconds``, ``keepalive_interval_seconds``,
      ``max_keepalive_probes`` and ``tcp_user_timeout_seconds``: TCP keepalives
      and the limit on unacknowledged data, so a half-open connection fails in
      about a minute instead of hanging a call until the kernel gives up (about
      15 minutes of retransmissions, or two hours before the first keepalive).
      ``None`` leaves the operating system's value.

    Adapters turn this into each driver's arguments; a setting a server cannot
    honour raises ``UnsupportedSetting`` rather than being dropped.

    >>> t = Timeouts(statement_seconds=30, lock_seconds=5)
    >>> t.statement_seconds, t.idle_session_seconds
    (30.0, None)
    >>> t.evolve(lock_seconds=None).lock_seconds is None
    True
    >>> Timeouts(statement_seconds=-1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: Timeouts.statement_seconds must be ... not -1
    """

    statement_seconds: float | None = None
    lock_seconds: float | None = None
    idle_in_transaction_seconds: float | None = None
    idle_session_seconds: float | None = None
    transaction_seconds: float | None = None
    connect_seconds: float | None = None
    keepalive_idle_seconds: float | None = DEFAULT_KEEPALIVE_IDLE_SECONDS
    keepalive_interval_seconds: float | None = DEFAULT_KEEPALIVE_INTERVAL_SECONDS
    max_keepalive_probes: int | None = DEFAULT_MAX_KEEPALIVE_PROBES
    tcp_user_timeout_seconds: float | None = DEFAULT_TCP_USER_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        for name in _NON_NEGATIVE_FIELDS:
            _set(self, name, _seconds(name, getattr(self, name), allow_zero=True))
        for name in _POSITIVE_FIELDS:
            _set(self, name, _seconds(name, getattr(self, name), allow_zero=False))
        probes = self.max_keepalive_probes
        if probes is not None and (
            isinstance(probes, bool)
            or not isinstance(probes, int)
            or not 1 <= probes <= MAX_KEEPALIVE_PROBES
        ):
            raise ConfigurationError(
                "Timeouts.max_keepalive_probes must be a whole number from 1 to "
                f"{MAX_KEEPALIVE_PROBES}, not {probes!r}"
            )

    def evolve(self, **changes: Any) -> Timeouts:
        """A copy with some fields changed.

        >>> Timeouts(statement_seconds=1).evolve(statement_seconds=2).statement_seconds
        2.0
        """
        return dataclasses.replace(self, **changes)

    @property
    def keepalives(self) -> bool:
        """Whether any keepalive or TCP setting is to be applied."""
        return any(
            value is not None
            for value in (
                self.keepalive_idle_seconds,
                self.keepalive_interval_seconds,
                self.max_keepalive_probes,
                self.tcp_user_timeout_seconds,
            )
        )


def _seconds(name: str, value: object, *, allow_zero: bool) -> float | None:
    if value is None:
        return None
    # Server limits are checked against each server's own range where they are applied.
    most = _MOST.get(name, math.inf)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
        if math.isfinite(seconds) and (0 < seconds <= most or (allow_zero and seconds == 0)):
            return seconds
    bound = ">= 0" if allow_zero else "> 0"
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    upto = f" and <= {most:.0f}" if math.isfinite(most) else ""
    raise ConfigurationError(
        f"Timeouts.{name} must be a number of seconds {bound}{upto}"
        f"{'' if allow_zero else ' (None for the system default)'}, not {shown}"
    )


def _set(timeouts: Timeouts, name: str, value: float | None) -> None:
    # A frozen dataclass sets its own fields once, while it is being built.
    object.__setattr__(timeouts, name, value)
