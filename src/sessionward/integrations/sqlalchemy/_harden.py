"""``harden(engine)``: no dead connection handed out, none kept past the server's idle limit,
and every checked-out connection accounted for — through SQLAlchemy's public events.

- ``do_connect`` (engine event): for PyMySQL, make the socket ourselves, so
  its descriptor is known (see ``_liveness``).
- ``connect`` (pool event): note the socket, when the connection was made,
  and once per connection the server's start time and idle limit.
- ``checkout``: raise ``DisconnectionError`` for a connection that is dead,
  older than a server restart seen since, or about to reach the server's idle
  limit; SQLAlchemy then replaces it before the application sees it.  Record
  who took it.
- ``checkin``, ``invalidate``, ``close``: forget the holder; warn when the
  connection came back because its holder was garbage-collected.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import threading
import time
import traceback
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool as _SAQueuePool

from ...core import ConcurrentUse, ConfigurationError, Timeouts
from . import _liveness
from ._timeouts import apply_timeouts

logger = logging.getLogger("sessionward.sqlalchemy")

#: A connection idle longer than this is pinged at checkout, for a network that
#: dropped it silently (no FIN ever arrives then).
DEFAULT_PING_AFTER_IDLE_SECONDS = 30.0
#: A connection is retired when it has been idle for this share of the server's idle limit.
RECYCLE_FRACTION = 0.8
#: ... and at least this long before the limit, for short limits.
RECYCLE_MARGIN_SECONDS = 1.0
#: A connection held longer than this is reported (once).
DEFAULT_HOLD_WARNING_SECONDS = 60.0
#: Held connections are scanned for overdue ones at most this often.
MIN_SCAN_INTERVAL_SECONDS = 0.01
#: Two start times closer than this are the same server run: PostgreSQL gives its
#: start time in microseconds, MariaDB/MySQL only an uptime in whole seconds
#: (a quick MariaDB restart is told by its connection ids starting again from 1).
SAME_START_TOLERANCE_SECONDS = {"postgresql": 0.001, "mysql": 2.0}

_DRIVERS = ("psycopg", "psycopg2", "pymysql")
#: Modules whose frames are never "who took the connection".
_NOT_THE_APPLICATION = ("sqlalchemy.", "sessionward.integrations.sqlalchemy", "contextlib")

# Keys in SQLAlchemy's per-connection ``info`` dictionary.
_FD = "sessionward.fd"
_CONNECTED_AT = "sessionward.connected_at"
_RETURNED_AT = "sessionward.returned_at"
_POLLER = "sessionward.poller"
_RETIRE_AFTER = "sessionward.retire_after_idle_seconds"

Liveness = Literal["auto", "ping", "off"]


class LeakWarning(ResourceWarning):
    """A pooled connection was held too long, or garbage-collected without being returned."""


class PoolTimeout(exc.TimeoutError):
    """No connection became free in time; the message names who holds them.

    A subclass of SQLAlchemy's ``TimeoutError``, so existing ``except`` clauses still work.
    """

    def __init__(self, message: str, holders: tuple[Holder, ...] = ()) -> None:
        super().__init__(message)
        self.holders = holders

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.holders))


@dataclass(frozen=True, slots=True)
class Holder:
    """A checked-out connection: who took it, from which thread, and since when."""

    taken_at: str  # "file.py:42 in func"
    thread: str
    since_monotonic: float
    since_wall: float
    stack: str | None = None

    @property
    def held_seconds(self) -> float:
        return time.monotonic() - self.since_monotonic

    def __str__(self) -> str:
        return f"{self.taken_at} (thread {self.thread}, held {self.held_seconds:.1f}s)"


class _Held:
    """A checkout as recorded on the hot path; turned into a ``Holder`` only when asked."""

    __slots__ = ("code", "line", "proxy", "since", "stack", "thread", "warned")

    def __init__(self, code: Any, line: int, thread: int, since: float, proxy: Any) -> None:
        self.code = code
        self.line = line
        self.thread = thread
        self.since = since
        self.proxy = proxy
        self.stack: str | None = None
        self.warned = False

    def holder(self) -> Holder:
        taken_at = (
            f"{self.code.co_filename}:{self.line} in {self.code.co_name}"
            if self.code is not None
            else "<unknown>"
        )
        return Holder(
            taken_at=taken_at,
            thread=_thread_name(self.thread),
            since_monotonic=self.since,
            since_wall=time.time() - (time.monotonic() - self.since),
            stack=self.stack,
        )


@dataclass
class _State:
    driver: str
    flavour: str
    liveness: Liveness
    recycle: float | Literal["auto"] | None
    ping_after_idle_seconds: float
    track_leaks: bool
    hold_warning_seconds: float
    capture_stacks: bool
    ping: Callable[[Any], Any]
    closed: Callable[[Any], bool]
    started_at: float | None = None
    max_connection_id: int = 0
    restarted_at: float = 0.0
    # Single dict operations are atomic under the GIL; only the scans copy it first.
    held: dict[int, _Held] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_scan: float = 0.0


_states: weakref.WeakKeyDictionary[Engine, _State] = weakref.WeakKeyDictionary()


def harden(
    engine: Engine,
    *,
    liveness: Liveness = "auto",
    recycle: float | Literal["auto"] | None = "auto",
    timeouts: Timeouts | None = None,
    track_leaks: bool = True,
    ping_after_idle_seconds: float = DEFAULT_PING_AFTER_IDLE_SECONDS,
    hold_warning_seconds: float = DEFAULT_HOLD_WARNING_SECONDS,
    capture_stacks: bool = False,
    check_threads: bool = False,
) -> Engine:
    """Make ``engine`` replace dead connections at checkout and account for held ones.

    - ``liveness="auto"``: at checkout, look at the socket without a round
      trip; ping only a connection idle longer than ``ping_after_idle_seconds``
      or whose socket has something to read.  ``"ping"``: ping every checkout
      (like ``pool_pre_ping``); ``"off"``.
    - ``recycle="auto"``: retire a connection before the server's
      ``idle_session_timeout`` (PostgreSQL 14+) or ``wait_timeout``
      (MariaDB/MySQL) would end it; a number: retire connections idle longer
      than that many seconds; ``None``: never.
    - ``timeouts``: ``apply_timeouts(engine, timeouts)`` first.
    - ``track_leaks``: record who took each connection (see ``holders``);
      warn with ``LeakWarning`` (and a log line) when one is held past
      ``hold_warning_seconds`` or garbage-collected unreturned;
      ``capture_stacks`` keeps the whole stack too.
    - ``check_threads`` (a debugging aid, off by default): raise
      ``ConcurrentUse`` when a connection, and so a ``Session``, is used by
      a second thread while the first is running a statement on it.

    Call it right after ``create_engine``; returns the engine.
    """
    driver = engine.dialect.driver
    if driver not in _DRIVERS or engine.dialect.is_async:
        raise ConfigurationError(
            f"sessionward.sqlalchemy.harden supports the synchronous psycopg, psycopg2 and "
            f"pymysql drivers, not {engine.url.drivername!r}"
        )
    if liveness not in ("auto", "ping", "off"):
        raise ConfigurationError(
            f"harden(liveness=...) is 'auto', 'ping' or 'off', not {liveness!r}"
        )
    if (
        recycle is not None
        and recycle != "auto"
        and (isinstance(recycle, bool) or not isinstance(recycle, (int, float)) or recycle <= 0)
    ):
        raise ConfigurationError(
            f"harden(recycle=...) is 'auto', None or seconds > 0, not {recycle!r}"
        )
    if engine in _states:
        raise ConfigurationError("harden() was already applied to this engine")
    if timeouts is not None:
        apply_timeouts(engine, timeouts)
    state = _State(
        driver=driver,
        flavour=_flavour(engine),
        liveness=liveness,
        recycle=recycle,
        ping_after_idle_seconds=ping_after_idle_seconds,
        track_leaks=track_leaks,
        hold_warning_seconds=hold_warning_seconds,
        capture_stacks=capture_stacks,
        ping=engine.dialect.do_ping,
        closed=_liveness.closed_check(driver),
    )
    _states[engine] = state
    if driver == "pymysql" and liveness == "auto":
        event.listen(engine, "do_connect", _pymysql_do_connect)
    event.listen(engine, "connect", functools.partial(_on_connect, state, engine))
    event.listen(engine, "checkout", functools.partial(_on_checkout, state))
    event.listen(engine, "checkin", functools.partial(_on_checkin, state))
    for name in ("invalidate", "soft_invalidate", "close", "detach"):
        event.listen(engine, name, functools.partial(_on_gone, state))
    if check_threads:
        event.listen(engine, "before_cursor_execute", _enter_statement)
        event.listen(engine, "after_cursor_execute", _leave_statement)
        event.listen(engine, "handle_error", _leave_failed_statement)
    return engine


def holders(engine: Engine) -> list[Holder]:
    """Who holds the engine's checked-out connections now, longest first."""
    state = _states.get(engine)
    if state is None:
        raise ConfigurationError("holders() needs an engine given to harden(track_leaks=True)")
    found = [held.holder() for held in list(state.held.values())]
    return sorted(found, key=lambda holder: holder.since_monotonic)


class QueuePool(_SAQueuePool):
    """SQLAlchemy's ``QueuePool`` whose timeout error names who holds the connections.

    ``create_engine(url, poolclass=sessionward.sqlalchemy.QueuePool)``, then
    ``harden(engine)``; raises ``PoolTimeout`` (a ``sqlalchemy.exc.TimeoutError``).
    """

    def connect(self) -> Any:
        try:
            return super().connect()
        except exc.TimeoutError as error:
            if isinstance(error, PoolTimeout):
                raise
            found = _holders_of(self)
            if not found:
                raise
            names = "; ".join(str(holder) for holder in found)
            raise PoolTimeout(f"{error} Held by: {names}", tuple(found)) from error


def _holders_of(pool: Any) -> list[Holder]:
    for engine, _ in list(_states.items()):
        if engine.pool is pool:
            return holders(engine)
    return []


# --------------------------------------------------------------------------- events


def _pymysql_do_connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
    connection, fd = _liveness.pymysql_connect(cargs, cparams)
    record.info[_FD] = fd
    return connection


def _on_connect(state: _State, engine: Engine, dbapi_connection: Any, record: Any) -> None:
    info = record.info
    fd = _liveness.descriptor(state.driver, dbapi_connection)
    if fd is not None:
        info[_FD] = fd
    if state.liveness == "auto" or state.recycle == "auto":
        started_at, idle_limit, connection_id = _facts(state, dbapi_connection)
        if state.recycle == "auto" and idle_limit:
            info[_RETIRE_AFTER] = retire_after(idle_limit)
        if started_at is not None and _restarted(state, started_at, connection_id):
            logger.warning(
                "%s: the server restarted; older pooled connections are replaced",
                engine.url.render_as_string(hide_password=True),
            )
            state.restarted_at = time.monotonic()
    if isinstance(state.recycle, (int, float)):
        info[_RETIRE_AFTER] = float(state.recycle)
    info.pop(_RETURNED_AT, None)
    if _FD in info:
        info[_POLLER] = _liveness.poller(info[_FD])
    info[_CONNECTED_AT] = time.monotonic()


def _restarted(state: _State, started_at: float, connection_id: int | None) -> bool:
    """Whether this new connection shows a server run later than the ones before it."""
    with state.lock:
        previous, previous_id = state.started_at, state.max_connection_id
        if previous is None or started_at > previous:
            state.started_at = started_at
        if connection_id is not None:
            state.max_connection_id = max(previous_id, connection_id)
        if previous is None:
            return False
        later = started_at - previous > SAME_START_TOLERANCE_SECONDS[state.flavour]
        if connection_id is not None and connection_id < previous_id:
            later = True
            state.max_connection_id = connection_id
        return later


def retire_after(idle_limit_seconds: float) -> float:
    """How long a connection may sit in the pool when the server ends sessions idle that long.

    >>> retire_after(28800), retire_after(10), retire_after(1)
    (23040.0, 8.0, 0.5)
    """
    early = min(idle_limit_seconds * RECYCLE_FRACTION, idle_limit_seconds - RECYCLE_MARGIN_SECONDS)
    return max(early, idle_limit_seconds / 2)


def _on_checkout(state: _State, dbapi_connection: Any, record: Any, proxy: Any) -> None:
    # Runs at every checkout: kept to a few dictionary reads and one poll().
    info = record.info
    now = time.monotonic()
    returned_at = info.get(_RETURNED_AT)
    if returned_at is not None:  # from the pool, not just connected
        _check(state, dbapi_connection, info, returned_at, now)
    if state.track_leaks:
        _track(state, record, proxy, now)


def _check(
    state: _State, dbapi_connection: Any, info: dict[str, Any], returned_at: float, now: float
) -> None:
    if info.get(_CONNECTED_AT, 0.0) < state.restarted_at:
        raise exc.DisconnectionError("sessionward: made before the server restarted")
    idle = now - returned_at
    retire = info.get(_RETIRE_AFTER)
    if retire is not None and idle > retire:
        raise exc.DisconnectionError(
            f"sessionward: idle {idle:.1f}s, retired after {retire:g}s before the server's limit"
        )
    if state.liveness == "off":
        return
    if state.liveness == "ping":
        _ping(state, dbapi_connection, "ping at checkout")
        return
    if state.closed(dbapi_connection):
        raise exc.DisconnectionError("sessionward: the driver reports the connection closed")
    poller = info.get(_POLLER)
    if poller is None:
        _ping(state, dbapi_connection, "no socket to look at")
    elif poller.poll(0):
        _ping(state, dbapi_connection, "the server sent something while it was idle")
    elif idle > state.ping_after_idle_seconds:
        _ping(state, dbapi_connection, f"idle {idle:.1f}s")


def _ping(state: _State, dbapi_connection: Any, why: str) -> None:
    try:
        alive = state.ping(dbapi_connection)
    except Exception as error:
        raise exc.DisconnectionError(f"sessionward: ping failed ({why}): {error}") from error
    if alive is False:
        raise exc.DisconnectionError(f"sessionward: ping failed ({why})")


def _on_checkin(state: _State, dbapi_connection: Any, record: Any) -> None:
    record.info[_RETURNED_AT] = time.monotonic()
    if not state.track_leaks:
        return
    held = state.held.pop(id(record), None)
    if held is not None and held.proxy() is None:
        holder = held.holder()
        _warn(
            f"a pooled connection was garbage-collected without being returned; "
            f"it was taken at {holder.taken_at} (thread {holder.thread}) "
            f"{holder.held_seconds:.1f}s ago",
            holder,
        )


def _on_gone(state: _State, dbapi_connection: Any, record: Any, *args: Any) -> None:
    if state.track_leaks and record is not None:
        state.held.pop(id(record), None)


# --------------------------------------------------------------------------- threads

_RUNNING_IN = "sessionward.running_in_thread"


def _enter_statement(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
    me = threading.get_ident()
    # setdefault is atomic: of two threads arriving together, one sees the other.
    owner = connection.info.setdefault(_RUNNING_IN, me)
    if owner != me:
        raise ConcurrentUse(
            f"this connection is running a statement in thread {_thread_name(owner)}; "
            f"thread {threading.current_thread().name} tried to run {statement[:80]!r} on it. "
            f"A Session (and its connection) must be used by one thread at a time: "
            f"give each thread its own, for example with scoped_session"
        )


def _leave_statement(connection: Any, *args: Any) -> None:
    if connection.info.get(_RUNNING_IN) == threading.get_ident():
        connection.info.pop(_RUNNING_IN, None)


def _leave_failed_statement(context: Any) -> None:
    connection = context.connection
    if connection is not None and not isinstance(context.original_exception, ConcurrentUse):
        _leave_statement(connection)


def _thread_name(ident: int) -> str:
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return f"{ident} (ended)"


# --------------------------------------------------------------------------- leaks


def _track(state: _State, record: Any, proxy: Any, now: float) -> None:
    code, line = _taken_at()
    held = _Held(code, line, threading.get_ident(), now, weakref.ref(proxy))
    if state.capture_stacks:
        held.stack = "".join(traceback.format_stack())
    state.held[id(record)] = held
    if now < state.next_scan:
        return
    state.next_scan = now + max(state.hold_warning_seconds / 4, MIN_SCAN_INTERVAL_SECONDS)
    overdue = []
    for other in list(state.held.values()):
        if not other.warned and now - other.since > state.hold_warning_seconds:
            other.warned = True
            overdue.append(other.holder())
    for late in overdue:
        _warn(
            f"a pooled connection has been held for {late.held_seconds:.1f}s, "
            f"taken at {late.taken_at} (thread {late.thread})",
            late,
        )


#: Code objects known to be ours or SQLAlchemy's, so each is judged once.
_internal_code: dict[Any, bool] = {}
#: How deep the application's frame was last time, from ``_taken_at``: checked
#: first, so the common case looks at two frames instead of walking the stack.
_last_depth = [2]


def _taken_at() -> tuple[Any, int]:
    """The first frame outside SQLAlchemy and sessionward: who asked for the connection."""
    depth = _last_depth[0]
    try:
        frame = sys._getframe(depth)
        if not _is_internal(frame.f_code) and _is_internal(sys._getframe(depth - 1).f_code):
            return frame.f_code, frame.f_lineno
    except ValueError:  # the stack is shorter this time
        pass
    depth = 2
    walk: Any = sys._getframe(depth)
    while walk is not None:
        if not _is_internal(walk.f_code):
            _last_depth[0] = depth
            return walk.f_code, walk.f_lineno
        walk = walk.f_back
        depth += 1
    return None, 0


def _is_internal(code: Any) -> bool:
    known = _internal_code.get(code)
    if known is None:
        module = _module_of(code)
        known = _internal_code[code] = module == __name__ or module.startswith(_NOT_THE_APPLICATION)
    return known


def _module_of(code: Any) -> str:
    frame: Any = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code:
            return str(frame.f_globals.get("__name__", ""))
        frame = frame.f_back
    return ""


def _warn(message: str, holder: Holder) -> None:
    logger.warning("%s", message, extra={"sessionward_holder": holder})
    try:
        warnings.warn(message, LeakWarning, stacklevel=2)
    except Exception:  # warnings turned into errors must not break a checkout
        logger.debug("LeakWarning raised as an error and dropped", exc_info=True)


# --------------------------------------------------------------------------- facts


def _flavour(engine: Engine) -> str:
    if engine.dialect.name == "postgresql":
        return "postgresql"
    return "mysql"


def _facts(state: _State, dbapi_connection: Any) -> tuple[float | None, float | None, int | None]:
    """The server's start time (epoch seconds), this session's idle limit (seconds) and,
    on MariaDB/MySQL, its connection id."""
    if state.flavour == "postgresql":
        name = "get_liveness_facts_postgresql"
    else:
        name = (
            "get_liveness_facts_mariadb"
            if _is_mariadb(dbapi_connection)
            else "get_liveness_facts_mysql"
        )
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(_load(name))
            row = cursor.fetchone()
        finally:
            cursor.close()
        dbapi_connection.rollback()
    except Exception:
        logger.info(
            "harden(): could not read the server's start time and idle limit", exc_info=True
        )
        with contextlib.suppress(Exception):
            dbapi_connection.rollback()
        return None, None, None
    if row is None:
        return None, None, None
    started_at = float(row[0]) if row[0] is not None else None
    idle_limit = float(row[1]) if row[1] is not None else None
    connection_id = int(row[2]) if row[2] is not None else None
    return started_at, (idle_limit or None), connection_id


def _is_mariadb(dbapi_connection: Any) -> bool:
    try:
        return "mariadb" in str(dbapi_connection.get_server_info()).lower()
    except Exception:
        return True


@functools.cache
def _load(name: str) -> str:
    return (resources.files(__package__) / "queries" / f"{name}.sql").read_text(encoding="utf-8")
