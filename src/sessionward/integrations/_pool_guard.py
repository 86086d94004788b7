"""What the drivers' own async pools (asyncpg's ``Pool``, psycopg_pool's
``AsyncConnectionPool``) keep on each connection, through their public hooks: whether it
may be handed out without a round trip, when to retire it, and who holds it.

The same promises as ``harden()`` on an engine, without SQLAlchemy:

- liveness: at acquire, look at the socket (``poll`` with a zero timeout); ping only
  a connection whose socket has something to read, or that was idle longer than
  ``ping_after_idle_seconds`` (a network may drop it without a word), or whose socket
  is unknown.  An error message or end of stream waiting on the socket needs no ping.
- recycle: a connection idle longer than ``recycle`` seconds, or with ``"auto"``
  longer than ``retire_after(idle_session_timeout)``, is replaced before the server
  would end it.
- leaks: who took each connection (the asyncio task and the code line), listed by
  ``holders()``; one held past ``hold_warning_seconds`` is reported once with a
  ``LeakWarning``.

The adapters (``asyncpg._pool``, ``psycopg._async_pool``) do the I/O; this module only
decides, so both pools share one implementation.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
import traceback
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Literal

from ..core import ConfigurationError
from . import _sockets

logger = logging.getLogger("sessionward.pools")

#: A connection idle longer than this is pinged at acquire.
DEFAULT_PING_AFTER_IDLE_SECONDS = 30.0
#: A connection held longer than this is reported (once).
DEFAULT_HOLD_WARNING_SECONDS = 60.0
#: A connection is retired when idle for this share of the server's idle limit ...
RECYCLE_FRACTION = 0.8
#: ... and at least this long before the limit, for short limits.
RECYCLE_MARGIN_SECONDS = 1.0
#: The task name asyncio gives an unnamed task: ``Task-<counter>``.
_UNNAMED = "Task-"

Liveness = Literal["auto", "ping", "off"]


class LeakWarning(ResourceWarning):
    """A pooled connection was held longer than ``hold_warning_seconds``."""


@dataclass(frozen=True, slots=True)
class Holder:
    """A connection acquired from a pool: who took it (task, thread, code line), since when."""

    taken_at: str  # "file.py:42 in func"
    thread: str
    since_monotonic: float
    since_wall: float
    stack: str | None = None
    task: str | None = None

    @property
    def held_seconds(self) -> float:
        return time.monotonic() - self.since_monotonic

    @property
    def who(self) -> str:
        task = f"task {self.task}, " if self.task is not None else ""
        return f"{task}thread {self.thread}"

    def __str__(self) -> str:
        return f"{self.taken_at} ({self.who}, held {self.held_seconds:.1f}s)"


def retire_after(idle_limit_seconds: float) -> float:
    """How long a connection may sit idle when the server ends sessions idle that long.

    >>> retire_after(28800), retire_after(10), retire_after(1)
    (23040.0, 8.0, 0.5)
    """
    early = min(idle_limit_seconds * RECYCLE_FRACTION, idle_limit_seconds - RECYCLE_MARGIN_SECONDS)
    return max(early, idle_limit_seconds / 2)


def check_options(
    where: str,
    *,
    liveness: object,
    recycle: object,
    ping_after_idle_seconds: object,
    hold_warning_seconds: object,
    track_leaks: object,
    capture_stacks: object,
) -> None:
    """One ``ConfigurationError`` naming what is accepted, for a bad option of ``where``."""
    if liveness not in ("auto", "ping", "off"):
        raise ConfigurationError(
            f"{where}(liveness=...) is 'auto', 'ping' or 'off', not {liveness!r}"
        )
    if recycle is not None and recycle != "auto" and not _positive(recycle):
        raise ConfigurationError(
            f"{where}(recycle=...) is 'auto', None or seconds > 0, not {recycle!r}"
        )
    for name, value in (
        ("ping_after_idle_seconds", ping_after_idle_seconds),
        ("hold_warning_seconds", hold_warning_seconds),
    ):
        if not _positive(value):
            raise ConfigurationError(f"{where}({name}=...) is seconds > 0, not {value!r}")
    for name, value in (("track_leaks", track_leaks), ("capture_stacks", capture_stacks)):
        if not isinstance(value, bool):
            raise ConfigurationError(f"{where}({name}=...) is True or False, not {value!r}")


def check_callback(where: str, name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigurationError(
            f"{where}({name}=...) is a coroutine function or None, not {value!r}"
        )


def _positive(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0


class _Connection:
    """What the guard keeps on one pooled connection."""

    __slots__ = ("fd", "held", "look", "made_at", "retire_after", "returned_at", "warned")

    def __init__(self, fd: int | None, retire: float, now: float) -> None:
        self.fd = fd
        #: ``look(0)`` is non-empty when the socket has something to read.
        self.look = _sockets.poller(fd).poll if fd is not None else None
        self.retire_after = retire
        self.made_at = now
        #: When it last came back to the pool (or was made).
        self.returned_at = now
        self.held: Holder | None = None
        self.warned: Holder | None = None


#: Verdicts at acquire.
HAND_OUT, PING, REPLACE = 0, 1, 2


class PoolGuard:
    """The state of one pool: its connections (weakly), and the options they obey."""

    def __init__(
        self,
        *,
        name: str,
        liveness: Liveness,
        recycle: float | Literal["auto"] | None,
        ping_after_idle_seconds: float,
        track_leaks: bool,
        hold_warning_seconds: float,
        capture_stacks: bool,
        internal: tuple[str, ...],
    ) -> None:
        self.name = name
        self.liveness = liveness
        self.recycle = recycle
        self.ping_after_idle_seconds = ping_after_idle_seconds
        self.track_leaks = track_leaks
        self.hold_warning_seconds = hold_warning_seconds
        self.capture_stacks = capture_stacks
        #: Top-level packages whose frames never took the connection.
        self.internal = frozenset((*internal, "asyncio", "contextlib", "sessionward"))
        self.connections: weakref.WeakKeyDictionary[Any, _Connection] = weakref.WeakKeyDictionary()
        self._internal_code: dict[Any, bool] = {}
        self._next_scan = 0.0

    # ------------------------------------------------------------------ connect

    def wants_facts(self) -> bool:
        """Whether a new connection's facts (idle limit, client address) are needed."""
        return self.liveness == "auto" or self.recycle == "auto"

    def connected(self, connection: Any, fd: int | None, idle_limit: float | None) -> None:
        retire = math.inf
        if isinstance(self.recycle, (int, float)):
            retire = float(self.recycle)
        elif self.recycle == "auto" and idle_limit:
            retire = retire_after(idle_limit)
        self.connections[connection] = _Connection(
            fd if self.liveness == "auto" else None, retire, time.monotonic()
        )

    # ------------------------------------------------------------------ acquire

    def verdict(self, connection: Any) -> tuple[int, str]:
        """``HAND_OUT``, ``PING`` or ``REPLACE``, and why; costs no round trip."""
        kept = self.connections.get(connection)
        if kept is None:  # made before the guard saw it (or by another path): ping
            return (HAND_OUT, "") if self.liveness == "off" else (PING, "not seen at connect")
        idle = time.monotonic() - kept.returned_at
        if idle > kept.retire_after:
            return REPLACE, f"idle {idle:.1f}s, retired after {kept.retire_after:g}s"
        if self.liveness == "off":
            return HAND_OUT, ""
        if self.liveness == "ping":
            return PING, "ping at acquire"
        if kept.look is None:
            return PING, "no socket to look at"
        if kept.look(0):
            if kept.fd is not None and _sockets.pg_ended_while_idle(kept.fd):
                return REPLACE, "the server ended the session while it was idle"
            return PING, "the server sent something while it was idle"
        if idle > self.ping_after_idle_seconds:
            return PING, f"idle {idle:.1f}s"
        return HAND_OUT, ""

    def taken(self, connection: Any) -> None:
        """Note who takes ``connection`` now (from inside the pool's acquire hook)."""
        if not self.track_leaks:
            return
        kept = self.connections.get(connection)
        if kept is None:
            return
        now = time.monotonic()
        kept.held = Holder(
            taken_at=self._taken_at(),
            thread=threading.current_thread().name,
            since_monotonic=now,
            since_wall=time.time(),
            stack="".join(traceback.format_stack()) if self.capture_stacks else None,
            task=current_task_name(),
        )
        if now >= self._next_scan:
            self._scan(now)

    def returned(self, connection: Any) -> None:
        kept = self.connections.get(connection)
        if kept is not None:
            kept.held = None
            kept.returned_at = time.monotonic()

    def forget(self, connection: Any) -> None:
        self.connections.pop(connection, None)

    # ------------------------------------------------------------------ leaks

    def holders(self, is_open: Any = None) -> list[Holder]:
        """The connections taken and not returned, longest held first."""
        found = [
            kept.held
            for connection, kept in list(self.connections.items())
            if kept.held is not None and (is_open is None or is_open(connection))
        ]
        return sorted(found, key=lambda holder: holder.since_monotonic)

    def _scan(self, now: float) -> None:
        limit = self.hold_warning_seconds
        self._next_scan = now + max(limit / 4, 0.01)
        for kept in list(self.connections.values()):
            held = kept.held
            if held is not None and kept.warned is not held and now - held.since_monotonic > limit:
                kept.warned = held
                message = (
                    f"{self.name}: a pooled connection has been held for "
                    f"{held.held_seconds:.1f}s, taken at {held.taken_at} ({held.who})"
                )
                logger.warning("%s", message, extra={"sessionward_holder": held})
                try:
                    warnings.warn(message, LeakWarning, stacklevel=2)
                except Exception:  # warnings turned into errors must not break an acquire
                    logger.debug("LeakWarning raised as an error and dropped", exc_info=True)

    def _taken_at(self) -> str:
        """The first frame outside the driver, the pool, asyncio and sessionward: while a
        coroutine runs, its frame's ``f_back`` is the coroutine awaiting it."""
        frame: Any = sys._getframe(2)
        while frame is not None:
            code = frame.f_code
            known = self._internal_code.get(code)
            if known is None:
                top = str(frame.f_globals.get("__name__", "")).partition(".")[0]
                known = self._internal_code[code] = top in self.internal
            if not known:
                return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
            frame = frame.f_back
        return "<unknown>"


def current_task_name() -> str | None:
    """The running task's name; an unnamed one with its coroutine's name
    (``Task-7 (serve)``); None outside a task."""
    import asyncio

    try:
        task = asyncio.current_task()
    except RuntimeError:
        return None
    if task is None:
        return None
    name = task.get_name()
    if name.startswith(_UNNAMED):
        qualname = getattr(task.get_coro(), "__qualname__", None)
        if isinstance(qualname, str):
            return f"{name} ({qualname.rpartition('<locals>.')[2]})"
    return name
