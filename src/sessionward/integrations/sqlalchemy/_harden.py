"""``harden(engine)``: no dead connection handed out, none kept past the server's idle limit,
and every checked-out connection accounted for — through SQLAlchemy's public events.

Connections are made by the engine's own path (``creator``, the ``do_connect``
chain, ``dialect.connect``), untouched; what is needed is read from the
connection handed over.

- ``connect`` (pool event): note the socket, when the connection was made,
  and once per connection the server's start time and idle limit (and, for
  PyMySQL, the client address that finds its socket, see ``_liveness``).
- ``checkout``: raise ``DisconnectionError`` for a connection that is dead,
  older than a server restart seen since, or about to reach the server's idle
  limit; SQLAlchemy then replaces it before the application sees it.  Record
  who took it, with a weak reference to the checkout's proxy.
- ``invalidate``, ``close``, ``detach``: forget the holder.
- Primary failover (psycopg, psycopg2; see ``_failover``): a connection made with
  ``target_session_attrs=read-write`` whose server now reports itself read-only is
  replaced at checkout, and the older ones retired; ``handle_error`` reports a write
  refused there (``25006``) as a disconnect.

There is no ``checkin`` listener: checkin runs on every transaction, and
SQLAlchemy's dispatch to a listener costs as much as the work it would do.
Instead:

- idle time is counted from the previous checkout, so it includes the time the
  connection was held: it can only make a ping or a retirement come sooner;
- whether a connection is out is the pool entry's public ``in_use``;
- the proxy's weak reference calls back when the proxy is gone, which on the
  usual path is right after its checkin.  If the entry is still in use then,
  the proxy was garbage-collected without being returned: a ``LeakWarning``.
  (The callback runs before SQLAlchemy's own finalizer returns the connection:
  CPython calls the newest weak reference's callback first.)

Fail open: an add-on must not break what it hardens.  Should anything of ours
fail on a connection (the fact query on a PG-wire proxy, a server lacking a
function, a mocked DBAPI), that connection is used as usual and pinged at every
checkout, like ``pool_pre_ping``; the engine says so once, with a
``FallbackWarning`` and a log line naming the cause.  The only error a listener
of ours raises is ``DisconnectionError`` at checkout, for a connection to replace.
"""

from __future__ import annotations

import contextlib
import decimal
import functools
import logging
import math
import operator
import sys
import threading
import time
import traceback
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool as _SAQueuePool

from ...core import ConcurrentUse, ConfigurationError, Timeouts
from .. import _origin as _origin_names
from . import _async_timeouts, _cancel, _failover, _liveness
from ._origin import EngineOrigin
from ._tasks import task_names, task_stack
from ._timeouts import apply_timeouts

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

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

#: SQLAlchemy's names of the drivers harden() knows, and how to name them to people.
_DRIVERS = {
    "psycopg": "psycopg",
    "psycopg2": "psycopg2",
    "pymysql": "pymysql",
    "mysqldb": "mysqldb (mysqlclient)",
}
SUPPORTED_DRIVERS = ", ".join(_DRIVERS.values())
#: The async drivers harden() knows on an ``AsyncEngine``, by SQLAlchemy's driver name;
#: the values are our names for them (psycopg's async dialect is also called "psycopg").
_ASYNC_DRIVERS = {
    "asyncpg": "asyncpg",
    "psycopg": "psycopg_async",
    "aiomysql": "aiomysql",
    "asyncmy": "asyncmy",
}
SUPPORTED_ASYNC_DRIVERS = (
    "postgresql+asyncpg, postgresql+psycopg (async), mysql+aiomysql, mysql+asyncmy"
)
#: Default server ports, for drivers whose socket is found from the server's view of it.
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
#: A ``look`` for a connection whose socket is unknown: always "something to read"
#: (``not 0``), so it is pinged; a builtin, like ``poll``, called without a frame.
_ALWAYS = operator.not_
#: Modules whose frames are never "who took the connection".
_NOT_THE_APPLICATION = ("sqlalchemy.", "sessionward.integrations.sqlalchemy", "contextlib")

# Keys in SQLAlchemy's per-connection ``info`` dictionary (cleared when the connection is
# replaced): the socket's descriptor, and everything the checkout looks at.
_FD = "sessionward.fd"
_SLOT = "sessionward.liveness"

# Read on every checkout: module globals are found faster than attributes.
_monotonic = time.monotonic
_get_ident = threading.get_ident
_getframe = sys._getframe
_weakref = weakref.ref

Liveness = Literal["auto", "ping", "off"]
#: ``harden()`` returns what it was given: an ``Engine`` or an ``AsyncEngine``.
_AnyEngine = TypeVar("_AnyEngine", "Engine", "AsyncEngine")


class FallbackWarning(RuntimeWarning):
    """``harden()`` could not do its part on a connection: it is used as usual, and pinged."""


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
    """A checked-out connection: who took it, from which thread (and asyncio task, under
    an ``AsyncEngine``), and since when."""

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
        """``thread T``, or ``task N, thread T`` under an ``AsyncEngine``."""
        task = f"task {self.task}, " if self.task is not None else ""
        return f"{task}thread {self.thread}"

    def __str__(self) -> str:
        return f"{self.taken_at} ({self.who}, held {self.held_seconds:.1f}s)"


#: A checkout as recorded on the hot path: the code object and instruction offset that
#: took the connection (the line is worked out only when asked), the thread, when, a weak
#: reference to the connection proxy, the stack when captured, and the asyncio task's name.
_Entry = tuple[Any, int, int, float, "weakref.ref[Any]", "str | None", "str | None"]


class _Slot:
    """What harden() keeps on one DBAPI connection, in its pool entry's ``info``: all
    that a checkout reads and writes."""

    __slots__ = (
        "__weakref__",
        "closed",
        "connected_at",
        "held",
        "look",
        "plain",
        "pool_entry",
        "quiet_limit",
        "retire_after",
        "taken_at",
        "warned",
        "writable_only",
    )

    def __init__(
        self,
        pool_entry: Any,
        connected_at: float,
        look: Callable[[int], Any],
        retire_after: float,
        ping_after: float,
        closed: Callable[[], Any],
    ) -> None:
        #: A weak reference to the pool entry (SQLAlchemy's ``ConnectionPoolEntry``).
        self.pool_entry: Callable[[], Any] = weakref.ref(pool_entry)
        self.connected_at = connected_at
        #: ``look(0)`` is true when the socket has something to read: ``poll`` of a
        #: poll object on it, or ``_ALWAYS`` when its descriptor is unknown.
        self.look = look
        #: ``closed()`` is true when the driver knows the connection is unusable: the
        #: engine's ``closed`` check bound to this connection (``_liveness.closed_now``).
        self.closed = closed
        #: Seconds idle after which the connection is retired; ``math.inf``: never.
        self.retire_after = retire_after
        #: Idle longer than this, the connection is retired or pinged at checkout.
        self.quiet_limit = min(retire_after, ping_after)
        #: When it was last checked out; None while it never has been.
        self.taken_at: float | None = None
        #: The latest checkout (replaced whole, so a reader in another thread sees one
        #: checkout); it still holds the connection while the pool entry is ``in_use``.
        self.held: _Entry | None = None
        #: The checkout already reported as held too long.
        self.warned: _Entry | None = None
        #: Fallen back to plain ping checking: nothing else of the driver is trusted.
        self.plain = False
        #: Made with ``target_session_attrs=read-write|primary`` (see ``_failover``).
        self.writable_only = False

    def out(self) -> _Entry | None:
        """The checkout holding the connection now, if any."""
        held = self.held
        if held is None:
            return None
        pool_entry = self.pool_entry()
        return held if pool_entry is not None and pool_entry.in_use else None

    def proxy_gone(self, proxy_ref: Any) -> None:
        """The proxy of a checkout is gone: returned first, or garbage-collected.

        Writes nothing when it was returned: another thread may be checking the
        connection out again right now, and the pool entry's ``in_use`` already
        tells that this checkout is over.
        """
        held = self.held
        if held is None or held[4] is not proxy_ref:  # checked out again since, or invalidated
            return
        pool_entry = self.pool_entry()
        if pool_entry is not None and pool_entry.in_use:  # still out, so nobody else has it
            self.held = None
            try:
                _lost(held)
            except Exception:  # a weak reference callback: nowhere to raise to
                logger.debug("reporting a lost connection failed", exc_info=True)


def _holder(entry: _Entry) -> Holder:
    code, lasti, thread, since, _, stack, task = entry
    taken_at = (
        f"{code.co_filename}:{_line_of(code, lasti)} in {code.co_name}"
        if code is not None
        else "<unknown>"
    )
    return Holder(
        taken_at=taken_at,
        thread=_thread_name(thread),
        since_monotonic=since,
        since_wall=time.time() - (time.monotonic() - since),
        stack=stack,
        task=task,
    )


def _line_of(code: Any, lasti: int) -> int | None:
    """The line of the instruction at byte offset ``lasti``, as ``frame.f_lineno`` gives it."""
    for start, end, line in code.co_lines():
        if start <= lasti < end:
            return line  # type: ignore[no-any-return]
    return None


@dataclass(slots=True)
class _State:
    name: str
    driver: str
    flavour: str
    liveness: Liveness
    recycle: float | Literal["auto"] | None
    ping_after_idle_seconds: float
    track_leaks: bool
    hold_warning_seconds: float
    capture_stacks: bool
    ping: Callable[[Any], Any]
    closed: Callable[[Any], Any]
    #: The server's port as the URL names it: asyncpg does not tell its own publicly.
    server_port: int = 0
    started_at: float | None = None
    max_connection_id: int = 0
    #: Restarts seen so far.
    restarts: int = 0
    #: Per pool entry being connected: the highest connection id and the restarts
    #: seen before it was asked for (see ``_restarted``).
    before_connect: weakref.WeakKeyDictionary[Any, tuple[int, int]] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    restarted_at: float = 0.0
    #: The engine's connections by ``id``; each leaves when its record drops it.  A dict
    #: rather than a WeakSet: ``list(dict.values())`` copies it in one step, while another
    #: thread may be adding a connection.
    slots: dict[int, weakref.ref[_Slot]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_scan: float = 0.0
    #: Whether the engine has said it fell back (it says so once).
    fell_back: bool = False
    #: The origin each session carries (``harden(origin=...)``); None: off.
    origin: EngineOrigin | None = None


_states: weakref.WeakKeyDictionary[Engine, _State] = weakref.WeakKeyDictionary()


def harden(
    engine: _AnyEngine,
    *,
    liveness: Liveness = "auto",
    recycle: float | Literal["auto"] | None = "auto",
    timeouts: Timeouts | None = None,
    track_leaks: bool = True,
    ping_after_idle_seconds: float = DEFAULT_PING_AFTER_IDLE_SECONDS,
    hold_warning_seconds: float = DEFAULT_HOLD_WARNING_SECONDS,
    capture_stacks: bool = False,
    check_threads: bool = False,
    origin: bool | str = True,
    origin_max_bytes: int = _origin_names.DEFAULT_MAX_BYTES,
) -> _AnyEngine:
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
    - ``origin`` (on by default; a string names the service, else the
      program's name): each session carries ``service[pid]@host`` from
      connect (PostgreSQL's ``application_name`` where none is set; PyMySQL's
      and aiomysql's ``program_name`` connection attribute), and each statement
      of a checkout a sqlcommenter comment naming the holder (thread or
      asyncio task) and the code line that took the connection, at most
      ``origin_max_bytes`` long.  ``origin=False`` sends nothing.

    An ``AsyncEngine`` (``create_async_engine``) on asyncpg, psycopg (async),
    aiomysql or asyncmy is hardened through its ``sync_engine``'s pool events, which run in
    SQLAlchemy's greenlet; ``check_threads`` is not offered for it.  There ``timeouts``
    are set per driver (see ``_async_timeouts``), TCP keepalives and ``tcp_user_timeout``
    are on by default (``Timeouts()``'s), and a connection discarded by a cancellation
    mid-statement has its MariaDB/MySQL session killed (see ``_cancel``).

    Call it right after ``create_engine``; returns the engine.
    """
    sync_engine = engine if isinstance(engine, Engine) else engine.sync_engine
    if sync_engine.dialect.is_async:
        driver = check_async_driver(sync_engine, timeouts=timeouts, check_threads=check_threads)
    else:
        driver = sync_engine.dialect.driver
        check_driver(driver, False, sync_engine.url.drivername)
    if driver == "mysqldb" and getattr(sync_engine.dialect.dbapi, "__name__", None) == "pymysql":
        driver = "pymysql"  # pymysql.install_as_MySQLdb(), as Django projects do
    check_arguments(
        liveness=liveness,
        recycle=recycle,
        ping_after_idle_seconds=ping_after_idle_seconds,
        hold_warning_seconds=hold_warning_seconds,
    )
    service = _origin_names.service_for(origin, "harden(origin=...)")
    _origin_names.check_max_bytes(origin_max_bytes, "harden(origin_max_bytes=...)")
    if sync_engine.dialect.is_async:
        if sync_engine in _states:
            raise ConfigurationError("harden() was already applied to this engine")
        # Before harden()'s own connect listener, so recycle="auto" sees the limits set.
        _async_timeouts.install_limits(sync_engine, driver, timeouts)
    _harden_sync(
        sync_engine,
        driver,
        origin=None
        if service is None
        else EngineOrigin(
            name=sync_engine.url.render_as_string(hide_password=True),
            driver=driver,
            service=service,
            max_bytes=origin_max_bytes,
            is_async=sync_engine.dialect.is_async,
            paramstyle=sync_engine.dialect.paramstyle,
            warning=FallbackWarning,
        ),
        liveness=liveness,
        recycle=recycle,
        timeouts=None if sync_engine.dialect.is_async else timeouts,
        track_leaks=track_leaks,
        ping_after_idle_seconds=ping_after_idle_seconds,
        hold_warning_seconds=hold_warning_seconds,
        capture_stacks=capture_stacks,
        check_threads=check_threads,
    )
    if sync_engine.dialect.is_async:
        name = _states[sync_engine].name
        _cancel.install(sync_engine, driver, name)
        _async_timeouts.install_keepalives(sync_engine, driver, timeouts, name)
    return engine


def _harden_sync(
    engine: Engine,
    driver: str,
    *,
    liveness: Liveness,
    recycle: float | Literal["auto"] | None,
    timeouts: Timeouts | None,
    track_leaks: bool,
    ping_after_idle_seconds: float,
    hold_warning_seconds: float,
    capture_stacks: bool,
    check_threads: bool,
    origin: EngineOrigin | None = None,
) -> None:
    if engine in _states:
        raise ConfigurationError("harden() was already applied to this engine")
    if timeouts is not None:
        apply_timeouts(engine, timeouts)
    state = _State(
        name=engine.url.render_as_string(hide_password=True),
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
        server_port=engine.url.port or _DEFAULT_PORTS[_flavour(engine)],
        origin=origin,
    )
    _states[engine] = state
    if origin is not None:
        origin.install(engine)
    if state.flavour == "mysql":
        # Only notes a number: the connection is still made by whatever comes next.
        event.listen(engine, "do_connect", functools.partial(_before_connect, state))
    event.listen(engine, "connect", functools.partial(_on_connect, state))
    event.listen(engine, "checkout", _checkout_listener(state))
    for name in ("invalidate", "soft_invalidate", "close", "detach"):
        event.listen(engine, name, functools.partial(_on_gone, state))
    if driver in ("psycopg", "psycopg2"):
        event.listen(engine, "handle_error", functools.partial(_failover.on_error, driver))
    if check_threads:
        event.listen(engine, "before_cursor_execute", _enter_statement)
        event.listen(engine, "after_cursor_execute", _leave_statement)
        event.listen(engine, "handle_error", _leave_failed_statement)


def check_async_driver(engine: Engine, *, timeouts: Timeouts | None, check_threads: bool) -> str:
    """Our name for the async driver of ``engine`` (an ``AsyncEngine``'s ``sync_engine``);
    ``ConfigurationError`` for one ``harden()`` does not support, or an option it does not
    offer for async engines yet."""
    driver = _ASYNC_DRIVERS.get(engine.dialect.driver)
    if driver is None:
        raise ConfigurationError(
            f"sessionward.sqlalchemy.harden supports async engines on "
            f"{SUPPORTED_ASYNC_DRIVERS}, not {engine.url.drivername!r}"
        )
    if check_threads:
        raise ConfigurationError("harden(check_threads=True) is not supported for async engines")
    return driver


def check_driver(driver: str, is_async: bool, drivername: str) -> None:
    """Raise ``ConfigurationError`` for a driver ``harden()`` does not support."""
    if driver not in _DRIVERS or is_async:
        raise ConfigurationError(
            f"sessionward.sqlalchemy.harden supports the synchronous {SUPPORTED_DRIVERS} "
            f"drivers, not {drivername!r}"
        )


def check_arguments(
    *,
    liveness: object,
    recycle: object,
    ping_after_idle_seconds: object,
    hold_warning_seconds: object,
) -> None:
    """Raise ``ConfigurationError`` naming what is accepted, for a bad ``harden()`` argument."""
    if liveness not in ("auto", "ping", "off"):
        raise ConfigurationError(
            f"harden(liveness=...) is 'auto', 'ping' or 'off', not {liveness!r}"
        )
    if recycle is not None and recycle != "auto" and not _positive(recycle):
        raise ConfigurationError(
            f"harden(recycle=...) is 'auto', None or seconds > 0, not {recycle!r}"
        )
    for name, value in (
        ("ping_after_idle_seconds", ping_after_idle_seconds),
        ("hold_warning_seconds", hold_warning_seconds),
    ):
        if not _positive(value):
            raise ConfigurationError(f"harden({name}=...) is seconds > 0, not {value!r}")


def _positive(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0


def holders(engine: Engine | AsyncEngine) -> list[Holder]:
    """Who holds the engine's checked-out connections now, longest first."""
    sync_engine = engine if isinstance(engine, Engine) else engine.sync_engine
    state = _states.get(sync_engine)
    if state is None:
        raise ConfigurationError("holders() needs an engine given to harden(track_leaks=True)")
    found = [_holder(held) for slot in _slots(state) if (held := slot.out()) is not None]
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


def _slots(state: _State) -> list[_Slot]:
    return [slot for ref in list(state.slots.values()) if (slot := ref()) is not None]


def _holders_of(pool: Any) -> list[Holder]:
    for engine, _ in list(_states.items()):
        if engine.pool is pool:
            return holders(engine)
    return []


# --------------------------------------------------------------------------- events


def _on_connect(state: _State, dbapi_connection: Any, record: Any) -> None:
    """Note a new connection; on any failure of ours, fall back to a ping at checkout."""
    connected_at = time.monotonic()
    try:
        _connected(state, dbapi_connection, record, connected_at)
    except _NotTheDriver as error:
        _fall_back(state, f"nothing is read from a new connection: {error}", None)
        _plain_slot(state, dbapi_connection, record, connected_at)
    except Exception as error:
        _fall_back(state, "could not read the facts of a new connection", error)
        _plain_slot(state, dbapi_connection, record, connected_at)


def _plain_slot(state: _State, dbapi_connection: Any, record: Any, connected_at: float) -> None:
    """A slot for a connection harden() fell back on: pinged at checkout, nothing else."""
    with contextlib.suppress(Exception):  # the checkout adopts it otherwise
        record.info.pop(_FD, None)
        closed = functools.partial(state.closed, dbapi_connection)
        slot = record.info[_SLOT] = _new_slot(state, record, connected_at, math.inf, closed)
        slot.plain = True


class _NotTheDriver(TypeError):
    """A connection that is not the driver's own: a mock, a stand-in, a wrapper that hides it."""


def _connected(state: _State, dbapi_connection: Any, record: Any, connected_at: float) -> None:
    info = record.info
    info.pop(_FD, None)  # a record reconnecting keeps its info
    before = state.before_connect.pop(record, None)
    if not _liveness.is_driver_connection(state.driver, dbapi_connection):
        # Nothing is asked of it, not even fileno(): it may be a mock counting calls.
        named = _DRIVERS.get(state.driver, state.driver)
        raise _NotTheDriver(f"{type(dbapi_connection).__qualname__} is not a {named} connection")
    fd = _liveness.descriptor(state.driver, dbapi_connection)
    retire = math.inf
    if state.liveness == "auto" or state.recycle == "auto":
        facts = _facts(state, dbapi_connection)
        if state.recycle == "auto" and facts.idle_limit:
            retire = retire_after(facts.idle_limit)
        if state.liveness == "auto" and state.driver in _FOUND_FROM_ADDRESS:
            fd = _socket_from_address(state, dbapi_connection, facts.client_address)
        if facts.started_at is not None and _restarted(
            state, facts.started_at, facts.connection_id, before
        ):
            logger.warning(
                "%s: the server restarted; older pooled connections are replaced", state.name
            )
            state.restarted_at = time.monotonic()
    if fd is not None:
        info[_FD] = fd
    closed = _liveness.closed_now(state.driver, dbapi_connection)
    slot = info[_SLOT] = _new_slot(state, record, connected_at, retire, closed)
    if _failover.wants_writable(state.driver, dbapi_connection):
        slot.writable_only = True
        slot.look = _failover.writable_look(slot.look, state.driver, dbapi_connection)


#: Drivers that keep their socket private: it is found from the client address the
#: server reports (see ``_liveness.find_socket``).
_FOUND_FROM_ADDRESS = frozenset({"pymysql", "asyncpg", "aiomysql", "asyncmy"})


def _socket_from_address(
    state: _State, dbapi_connection: Any, client_address: str | None
) -> int | None:
    """The descriptor of a connection's socket, found from the server's view of it."""
    if not client_address:
        return None
    if state.driver in ("asyncpg", "asyncmy"):
        port: Any = state.server_port  # they keep the address they connected to private
    else:
        port = _liveness.driver_connection(dbapi_connection).port
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"{state.driver} connection.port is {port!r}, not a port number")
    fd = _liveness.find_socket(client_address, port)
    if fd is None:
        logger.debug(
            "no socket of this process is the server's client %s: pinged at checkout",
            client_address,
        )
    return fd


def _fall_back(state: _State, what: str, error: BaseException | None) -> None:
    """Say once per engine that harden() fell back to pinging, and why."""
    if state.fell_back:
        logger.debug("harden(): %s", what, exc_info=error)
        return
    state.fell_back = True
    cause = f" ({type(error).__name__}: {error})" if error is not None else ""
    message = (
        f"sessionward harden() on {state.name}: {what}{cause}; "
        f"such connections are used as usual and pinged at every checkout"
    )
    logger.warning("%s", message, exc_info=error)
    try:
        warnings.warn(message, FallbackWarning, stacklevel=2)
    except Exception:  # warnings turned into errors must not break a connect or checkout
        logger.debug("FallbackWarning raised as an error and dropped", exc_info=True)


def _new_slot(
    state: _State, record: Any, connected_at: float, retire: float, closed: Callable[[], Any]
) -> _Slot:
    if isinstance(state.recycle, (int, float)):
        retire = float(state.recycle)
    fd = record.info.get(_FD)
    auto = state.liveness == "auto"
    look = _liveness.poller(fd).poll if fd is not None and auto else _ALWAYS
    ping_after = state.ping_after_idle_seconds if auto else math.inf
    slot = _Slot(record, connected_at, look, retire, ping_after, closed)
    key, slots = id(slot), state.slots
    slots[key] = weakref.ref(slot, lambda _: slots.pop(key, None))
    return slot


def _adopt(state: _State, dbapi_connection: Any, record: Any) -> _Slot:
    """A slot for a connection made before ``harden()``: its age unknown, so taken as old."""
    info = record.info
    ours = _liveness.is_driver_connection(state.driver, dbapi_connection)
    fd = _liveness.descriptor(state.driver, dbapi_connection) if ours else None
    if fd is not None:
        info[_FD] = fd
    closed = (
        _liveness.closed_now(state.driver, dbapi_connection)
        if ours
        else functools.partial(state.closed, dbapi_connection)
    )
    slot = info[_SLOT] = _new_slot(state, record, 0.0, math.inf, closed)
    slot.plain = not ours
    slot.taken_at = 0.0  # from the pool, long idle
    return slot


def _restarted(
    state: _State, started_at: float, connection_id: int | None, before: tuple[int, int] | None
) -> bool:
    """Whether this new connection shows a server run later than the ones before it.

    ``before`` is the highest connection id seen before this connection was
    asked for, and how many restarts had been seen then: the server gave every
    one of those ids before this one, so a lower id means it started again,
    unless that restart has been seen since.  (Ids of connections made at the
    same time arrive in any order: only those seen before count.)
    """
    with state.lock:
        previous = state.started_at
        if previous is None or started_at > previous:
            state.started_at = started_at
        if connection_id is not None:
            state.max_connection_id = max(state.max_connection_id, connection_id)
        if previous is None:
            return False
        later = started_at - previous > SAME_START_TOLERANCE_SECONDS[state.flavour]
        if connection_id is not None and before is not None:
            id_before, restarts_before = before
            if connection_id < id_before and restarts_before == state.restarts:
                later = True
                state.max_connection_id = connection_id
        if later:
            state.restarts += 1
        return later


def _before_connect(state: _State, dialect: Any, record: Any, *args: Any) -> None:
    """Note the highest connection id seen so far (see ``_restarted``); makes nothing."""
    try:
        # Kept beside the record, not in its info: other do_connect listeners see that.
        state.before_connect[record] = (state.max_connection_id, state.restarts)
    except TypeError:  # a stand-in record that takes no weak reference: no id rule for it
        pass
    except Exception as error:
        _fall_back(state, "noting a connect failed in sessionward", error)


def retire_after(idle_limit_seconds: float) -> float:
    """How long a connection may sit in the pool when the server ends sessions idle that long.

    >>> retire_after(28800), retire_after(10), retire_after(1)
    (23040.0, 8.0, 0.5)
    """
    early = min(idle_limit_seconds * RECYCLE_FRACTION, idle_limit_seconds - RECYCLE_MARGIN_SECONDS)
    return max(early, idle_limit_seconds / 2)


def _checkout_listener(state: _State) -> Callable[..., None]:
    """The ``checkout`` listener of one engine.

    It runs at every checkout: a few attribute reads, one ``poll()``, and for
    leak tracking a tuple, a weak reference and a look at one frame (the
    instruction offset is kept, its line found only when asked).  Should any
    of that fail, the connection is pinged instead (``_checkout_failed``).
    """
    track = state.track_leaks
    stacks = state.capture_stacks
    looks = state.liveness != "off"
    origin = state.origin
    in_tasks = state.driver in _liveness.ASYNC_DRIVERS

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        # One frame, one try (free until something raises): the hot path stays as it was.
        try:
            try:
                slot = record.info[_SLOT]
            except KeyError:
                slot = _adopt(state, dbapi_connection, record)
            now = _monotonic()
            taken_at = slot.taken_at
            slot.taken_at = now
            # One test for the usual case, a connection fine to hand out; which part
            # failed, and what follows, is worked out apart.
            if taken_at is not None and (  # from the pool, not just connected
                now - taken_at > slot.quiet_limit
                or slot.connected_at < state.restarted_at
                or (looks and (slot.look(0) or slot.closed()))
            ):
                _inspect(state, dbapi_connection, slot, now - taken_at)
            if not track and origin is None:
                return
            # Who took it: the frame found last time, when it is the same code again.
            depth, code = _site
            frame: Any
            try:
                frame = _getframe(depth)
                if frame.f_code is code:
                    lasti = frame.f_lasti
                else:
                    code, lasti = _taken_at()
            except ValueError:  # a shorter stack this time
                code, lasti = _taken_at()
            # Under an AsyncEngine: the task's names, for holders() and the comment, at once.
            task, holder = task_names() if in_tasks else (None, None)
            if origin is not None:  # never raises: it falls back on its own
                origin.tag(dbapi_connection, record.info, code, lasti, holder)
                if not track:
                    return
            slot.held = (
                code,
                lasti,
                _get_ident(),
                now,
                _weakref(proxy, slot.proxy_gone),
                (task_stack() if in_tasks else "".join(traceback.format_stack()))
                if stacks
                else None,
                task,
            )
            if now >= state.next_scan:
                _scan(state, now)
        except exc.DisconnectionError:
            raise
        except Exception as error:
            _checkout_failed(state, dbapi_connection, error)

    return on_checkout


def _checkout_failed(state: _State, dbapi_connection: Any, error: Exception) -> None:
    _fall_back(state, "a checkout failed in sessionward", error)
    if state.liveness != "off":
        _ping(state, dbapi_connection, "sessionward fell back")


def _inspect(state: _State, dbapi_connection: Any, slot: _Slot, idle: float) -> None:
    """Raise ``DisconnectionError`` for a pooled connection that must not be handed out,
    after a ping where one is due."""
    if slot.writable_only and _failover.reports_read_only(state.driver, dbapi_connection):
        # The server stopped taking writes (a switchover fenced it): so did every older
        # pooled connection, which reconnect through target_session_attrs too.
        state.restarted_at = time.monotonic()
        raise exc.DisconnectionError(
            "sessionward: the server no longer takes writes (target_session_attrs)"
        )
    if slot.connected_at < state.restarted_at:
        raise exc.DisconnectionError("sessionward: made before the server restarted")
    if idle > slot.retire_after:
        raise exc.DisconnectionError(
            f"sessionward: idle {idle:.1f}s, "
            f"retired after {slot.retire_after:g}s before the server's limit"
        )
    if state.liveness == "off":
        return
    if slot.plain:
        _ping(state, dbapi_connection, "sessionward fell back to pinging")
        return
    if state.closed(dbapi_connection):
        raise exc.DisconnectionError("sessionward: the driver reports the connection closed")
    if state.liveness == "ping":
        _ping(state, dbapi_connection, "ping at checkout")
    elif slot.look is _ALWAYS:
        _ping(state, dbapi_connection, "no socket to look at")
    elif slot.look(0):
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


def _lost(entry: _Entry) -> None:
    holder = _holder(entry)
    _warn(
        f"a pooled connection was garbage-collected without being returned; "
        f"it was taken at {holder.taken_at} ({holder.who}) "
        f"{holder.held_seconds:.1f}s ago",
        holder,
    )


def _on_gone(state: _State, dbapi_connection: Any, record: Any, *args: Any) -> None:
    try:
        if record is not None:
            slot = record.info.get(_SLOT)
            if slot is not None:
                slot.held = None
    except Exception as error:
        _fall_back(state, "forgetting a connection failed in sessionward", error)


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


def _scan(state: _State, now: float) -> None:
    """Report, once each, the connections held longer than ``hold_warning_seconds``."""
    limit = state.hold_warning_seconds
    state.next_scan = now + max(limit / 4, MIN_SCAN_INTERVAL_SECONDS)
    late = []
    for slot in _slots(state):
        entry = slot.held
        if (
            entry is not None
            and slot.warned is not entry
            and now - entry[3] > limit
            and slot.out() is entry
        ):
            slot.warned = entry
            late.append(_holder(entry))
    for holder in late:
        _warn(
            f"a pooled connection has been held for {holder.held_seconds:.1f}s, "
            f"taken at {holder.taken_at} ({holder.who})",
            holder,
        )


#: Code objects known to be ours or SQLAlchemy's, so each is judged once.
_internal_code: dict[int, tuple[Any, bool]] = {}
#: Where the application's frame was found last time: how many frames above the
#: checkout listener, and its code.  Looked at first, so the usual case costs one
#: frame.  (Should the same code sit at that depth while another application frame
#: is nearer, through a shorter path, the farther one is named: still the
#: application's code.)
_site: tuple[int, Any] = (0, None)
#: The same under an AsyncEngine, where the application's coroutine waits in the parent
#: of SQLAlchemy's greenlet: found there last time, after every frame of the greenlet
#: was SQLAlchemy's or ours; how deep the greenlet's stack was (from the checkout
#: listener) and the code of its first frame (SQLAlchemy's function the greenlet runs),
#: then how many frames above the waiting one the application's was, and its code (and
#: ``greenlet.getcurrent``).  The same first code at the same depth is taken for the same
#: path through SQLAlchemy, so the greenlet's frames are not judged again.
_task_site: tuple[int, Any, int, Any, Any] = (0, None, 0, None, None)


def _taken_at() -> tuple[Any, int]:
    """The first frame below the checkout listener outside SQLAlchemy and sessionward:
    who asked for the connection, as its code and instruction offset."""
    global _site, _task_site
    greenlet_depth, first_code, up, code, getcurrent = _task_site
    if code is not None:  # the path found last time under an AsyncEngine, if it is again
        try:
            first = _getframe(greenlet_depth + 1)
        except ValueError:  # a shorter stack: another path
            first = None
        if first is not None and first.f_code is first_code and first.f_back is None:
            parent = getcurrent().parent  # _waiting_frame(), inlined
            frame = parent.gr_frame if parent is not None else None
            while up and frame is not None:
                frame = frame.f_back
                up -= 1
            if frame is not None and frame.f_code is code:
                return code, frame.f_lasti
    frame = _getframe(2)  # the listener's caller
    depth = 1
    first, first_depth = None, 0
    while frame is not None:
        if not _is_internal(frame):
            _site = (depth, frame.f_code)
            return frame.f_code, frame.f_lasti
        first, first_depth = frame, depth
        frame = frame.f_back
        depth += 1
    # Under an AsyncEngine the checkout runs in a greenlet SQLAlchemy spawned: the
    # application's coroutine waits in the greenlet that spawned it.
    frame = _waiting_frame()
    up = 0
    while frame is not None:
        if not _is_internal(frame):
            if first is not None:
                getcurrent = sys.modules["greenlet"].getcurrent  # found a frame: imported
                _task_site = (first_depth, first.f_code, up, frame.f_code, getcurrent)
            return frame.f_code, frame.f_lasti
        frame = frame.f_back
        up += 1
    return None, -1


def _waiting_frame() -> Any:
    """Where the parent of the current greenlet waits (``gr_frame``, greenlet's public
    view of it): under an AsyncEngine, the application's coroutine; else None."""
    greenlet = sys.modules.get("greenlet")
    parent = greenlet.getcurrent().parent if greenlet is not None else None
    return parent.gr_frame if parent is not None else None


def _is_internal(frame: Any) -> bool:
    code = frame.f_code
    # By id: a code object's hash walks its constants each time.  The code is kept
    # beside the answer, so a freed code's id reused by another is told apart.
    seen = _internal_code.get(id(code))
    if seen is None or seen[0] is not code:
        module = str(frame.f_globals.get("__name__", ""))
        internal = module == __name__ or module.startswith(_NOT_THE_APPLICATION)
        seen = _internal_code[id(code)] = (code, internal)
    return seen[1]


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


@dataclass(frozen=True, slots=True)
class _Facts:
    #: When the server started, epoch seconds.
    started_at: float | None
    #: This session's idle limit, seconds; None: none.
    idle_limit: float | None
    #: MariaDB/MySQL: this session's id.
    connection_id: int | None
    #: MariaDB/MySQL: this session's client, as the server sees it (``ip:port``).
    client_address: str | None


def _facts(state: _State, dbapi_connection: Any) -> _Facts:
    """What the server says about a new session; raises on anything unexpected."""
    if state.flavour == "postgresql":
        name = (
            "get_liveness_facts_postgresql_client"
            if state.driver in _FOUND_FROM_ADDRESS
            else "get_liveness_facts_postgresql"
        )
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
    except Exception:
        dbapi_connection.rollback()
        raise
    # Not in a ``finally``: after a cancellation the driver closed the connection, and
    # the rollback's error would replace the CancelledError (and fall back silently).
    dbapi_connection.rollback()
    if state.driver == "asyncpg" and row is not None:
        row = tuple(row)  # an asyncpg Record, through SQLAlchemy's adapted cursor
    if not isinstance(row, (tuple, list)) or len(row) != 4:
        raise TypeError(f"the fact query {name}.sql returned {row!r}, not one row of 4 columns")
    started_at, idle_limit, connection_id, client_address = row
    return _Facts(
        started_at=_number(started_at, float, name),
        idle_limit=_number(idle_limit, float, name) or None,
        connection_id=_number(connection_id, int, name),
        client_address=_text(client_address, name),
    )


def _number(value: Any, kind: type[float] | type[int], query: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
        raise TypeError(f"the fact query {query}.sql returned {value!r}, not a number")
    return kind(value)


def _text(value: Any, query: str) -> str | None:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"the fact query {query}.sql returned {value!r}, not text")


def _is_mariadb(dbapi_connection: Any) -> bool:
    try:
        server_info = _liveness.driver_connection(dbapi_connection).get_server_info()
        return "mariadb" in str(server_info).lower()
    except Exception:
        return True


@functools.cache
def _load(name: str) -> str:
    return (resources.files(__package__) / "queries" / f"{name}.sql").read_text(encoding="utf-8")
