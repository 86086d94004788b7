"""asyncpg's ``Pool`` with ``harden()``'s promises, through its public hooks.

- ``init`` (a new connection): find its socket from the addresses the server reports
  (asyncpg keeps its own private), set keepalives and ``tcp_user_timeout`` on it, note
  the server's ``idle_session_timeout`` for ``recycle="auto"``.
- ``setup`` (every acquire): the guard's verdict (``_pool_guard``); a ping only when
  due; a connection to replace makes ``setup`` raise ``ConnectionReplaced``, after which
  asyncpg closes it.  ``create_pool``'s ``Pool`` then acquires again, so the caller
  never sees it; a plain ``asyncpg.create_pool(**pool_kwargs())`` lets it reach the
  caller (asyncpg has no hook to replace a connection at acquire).
- ``reset`` (every release): your ``reset``, or asyncpg's default ``Connection.reset()``
  (roll back, close cursors, unlisten, ``RESET ALL``), then the connection is no longer
  held.  A task cancelled mid-statement is handled by asyncpg's own ``release``
  (shielded; it waits for the cancel request, then resets or terminates).

Server limits of ``timeouts`` travel in ``server_settings`` (the startup packet), so
``RESET ALL`` at release keeps them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from ...core import ConfigurationError, ConnectionReplaced, Timeouts
from .. import _pool_guard, _sockets
from .._timeouts import load, pg_settings

logger = logging.getLogger("sessionward.asyncpg")

_WHERE = "sessionward.asyncpg.pool_kwargs"
#: A new session's idle limit and the two ends of its socket.
FACTS_QUERY = "get_pool_facts_postgresql"
#: The hook names asyncpg's ``create_pool`` takes, which ours wrap.
_HOOKS = ("init", "setup", "reset")

Hook = Callable[[Any], Awaitable[None]]


class _Hooks:
    """The ``init``, ``setup`` and ``reset`` of one pool, around the caller's own."""

    def __init__(
        self,
        guard: _pool_guard.PoolGuard,
        options: list[tuple[int, int, int]],
        init: Hook | None,
        setup: Hook | None,
        reset: Hook | None,
    ) -> None:
        self.guard = guard
        self.options = options
        self.user_init = init
        self.user_setup = setup
        self.user_reset = reset
        #: asyncpg hands ``setup`` a proxy whose connection is private: found by its
        #: backend's pid (public on the proxy), which no other live session shares.
        self.by_pid: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self.said = False

    async def init(self, connection: Any) -> None:
        if self.user_init is not None:
            await self.user_init(connection)
        fd: int | None = None
        idle_limit: float | None = None
        try:
            if self.guard.wants_facts() or self.options:
                row = await connection.fetchrow(load(FACTS_QUERY))
                idle_limit = row[0] or None
                if row[1] is not None and row[2] is not None:
                    fd = _sockets.find_socket(str(row[1]), int(row[2]))
                if self.options:
                    if fd is None:
                        raise LookupError("the connection's socket is unknown")
                    _sockets.set_socket_options(fd, self.options)
        except Exception as error:  # fail open: pinged at acquire instead
            if not self.said:
                self.said = True
                logger.warning(
                    "%s: socket not found (%s); keepalives left to the operating system, "
                    "connections pinged at acquire",
                    self.guard.name,
                    error,
                )
        self.by_pid[connection.get_server_pid()] = connection
        self.guard.connected(connection, fd, idle_limit)

    async def setup(self, proxy: Any) -> None:
        connection = self.by_pid.get(proxy.get_server_pid())
        key = connection if connection is not None else proxy
        verdict, why = self.guard.verdict(key)
        if verdict == _pool_guard.REPLACE:
            raise ConnectionReplaced(f"sessionward: {why}")
        if verdict == _pool_guard.PING:
            try:
                await proxy.execute("SELECT 1")
            except (Exception, asyncio.CancelledError) as error:
                if isinstance(error, asyncio.CancelledError):
                    raise
                raise ConnectionReplaced(f"sessionward: ping failed ({why}): {error}") from error
        if self.user_setup is not None:
            await self.user_setup(proxy)
        if connection is not None:
            self.guard.taken(connection)

    async def reset(self, connection: Any) -> None:
        try:
            if self.user_reset is not None:
                await self.user_reset(connection)
            else:
                await connection.reset()
        finally:
            self.guard.returned(connection)


def pool_kwargs(
    *,
    init: Hook | None = None,
    setup: Hook | None = None,
    reset: Hook | None = None,
    server_settings: Mapping[str, str] | None = None,
    timeouts: Timeouts | None = None,
    liveness: _pool_guard.Liveness = "auto",
    recycle: float | Literal["auto"] | None = "auto",
    track_leaks: bool = True,
    ping_after_idle_seconds: float = _pool_guard.DEFAULT_PING_AFTER_IDLE_SECONDS,
    hold_warning_seconds: float = _pool_guard.DEFAULT_HOLD_WARNING_SECONDS,
    capture_stacks: bool = False,
    name: str = "asyncpg pool",
) -> dict[str, Any]:
    """Keyword arguments for ``asyncpg.create_pool``: see ``sessionward.asyncpg``."""
    return _kwargs_and_guard(**locals())[0]


def _kwargs_and_guard(
    *,
    init: Hook | None,
    setup: Hook | None,
    reset: Hook | None,
    server_settings: Mapping[str, str] | None,
    timeouts: Timeouts | None,
    liveness: _pool_guard.Liveness,
    recycle: float | Literal["auto"] | None,
    track_leaks: bool,
    ping_after_idle_seconds: float,
    hold_warning_seconds: float,
    capture_stacks: bool,
    name: str,
    where: str = _WHERE,
) -> tuple[dict[str, Any], _pool_guard.PoolGuard]:
    _pool_guard.check_options(
        where,
        liveness=liveness,
        recycle=recycle,
        ping_after_idle_seconds=ping_after_idle_seconds,
        hold_warning_seconds=hold_warning_seconds,
        track_leaks=track_leaks,
        capture_stacks=capture_stacks,
    )
    for hook_name, hook in (("init", init), ("setup", setup), ("reset", reset)):
        _pool_guard.check_callback(where, hook_name, hook)
    if timeouts is not None and not isinstance(timeouts, Timeouts):
        raise ConfigurationError(f"{where}(timeouts=...) is a Timeouts or None, not {timeouts!r}")
    if server_settings is not None and not isinstance(server_settings, Mapping):
        raise ConfigurationError(
            f"{where}(server_settings=...) is a mapping of names to strings, "
            f"not {server_settings!r}"
        )
    chosen = timeouts if timeouts is not None else Timeouts()
    settings = dict(server_settings or {})
    # Server limits in the startup packet: kept through RESET ALL at release.  A limit
    # the server lacks refuses the login, naming the parameter.
    for setting, value in pg_settings(chosen, server_version=None).items():
        settings.setdefault(setting, str(int(value)))
    guard = _pool_guard.PoolGuard(
        name=name,
        liveness=liveness,
        recycle=recycle,
        ping_after_idle_seconds=ping_after_idle_seconds,
        track_leaks=track_leaks,
        hold_warning_seconds=hold_warning_seconds,
        capture_stacks=capture_stacks,
        internal=("asyncpg",),
    )
    hooks = _Hooks(guard, _sockets.socket_options(chosen), init, setup, reset)
    made: dict[str, Any] = {"init": hooks.init, "setup": hooks.setup, "reset": hooks.reset}
    if settings:
        made["server_settings"] = settings
    if timeouts is not None and timeouts.connect_seconds:
        made["timeout"] = timeouts.connect_seconds
    return made, guard


def create_pool(
    dsn: str | None = None,
    *,
    timeouts: Timeouts | None = None,
    liveness: _pool_guard.Liveness = "auto",
    recycle: float | Literal["auto"] | None = "auto",
    track_leaks: bool = True,
    ping_after_idle_seconds: float = _pool_guard.DEFAULT_PING_AFTER_IDLE_SECONDS,
    hold_warning_seconds: float = _pool_guard.DEFAULT_HOLD_WARNING_SECONDS,
    capture_stacks: bool = False,
    **asyncpg_kwargs: Any,
) -> Any:
    """``asyncpg.create_pool(dsn, **asyncpg_kwargs)`` with the guard's hooks; its
    ``acquire`` replaces a connection ``setup`` refused, so the caller never sees one."""
    import asyncpg

    where = "sessionward.asyncpg.create_pool"
    hooks = {key: asyncpg_kwargs.pop(key, None) for key in _HOOKS}
    made, guard = _kwargs_and_guard(
        init=hooks["init"],
        setup=hooks["setup"],
        reset=hooks["reset"],
        server_settings=asyncpg_kwargs.pop("server_settings", None),
        timeouts=timeouts,
        liveness=liveness,
        recycle=recycle,
        track_leaks=track_leaks,
        ping_after_idle_seconds=ping_after_idle_seconds,
        hold_warning_seconds=hold_warning_seconds,
        capture_stacks=capture_stacks,
        name=where if dsn is None else _safe_name(dsn),
        where=where,
    )
    if dsn is not None and not isinstance(dsn, str):
        raise ConfigurationError(f"{where}(dsn=...) is a connection string or None, not {dsn!r}")
    made.update(asyncpg_kwargs)
    # ``Pool`` takes no defaults of its own: those of ``create_pool``, whatever the version.
    for parameter in inspect.signature(asyncpg.create_pool).parameters.values():
        if parameter.kind is parameter.KEYWORD_ONLY and parameter.default is not parameter.empty:
            made.setdefault(parameter.name, parameter.default)
    pool = _pool_class(asyncpg.Pool)(dsn, **made)
    pool.sessionward_guard = guard
    return pool


def holders(pool: Any) -> list[_pool_guard.Holder]:
    """Who holds the connections acquired from ``pool`` (made by ``create_pool``) now,
    longest first: the asyncio task, the thread, and the code line that acquired each."""
    guard = getattr(pool, "sessionward_guard", None)
    if not isinstance(guard, _pool_guard.PoolGuard):
        raise ConfigurationError(
            "sessionward.asyncpg.holders() needs a pool made by sessionward.asyncpg.create_pool"
        )
    return guard.holders(lambda connection: not connection.is_closed())


def _safe_name(dsn: str) -> str:
    scheme, _, rest = dsn.partition("://")
    credentials, at, host = rest.rpartition("@")
    if at and ":" in credentials:
        rest = f"{credentials.partition(':')[0]}:***@{host}"
    return f"{scheme}://{rest}" if scheme and rest else dsn


@functools.cache
def _pool_class(base: Any) -> type:
    """asyncpg's ``Pool`` whose ``acquire`` tries again when ``setup`` refused a
    connection (asyncpg closed it meanwhile, so the next try gets another one)."""

    class Pool(base):  # type: ignore[misc]
        #: The guard of the pool, for ``holders()`` (asyncpg's ``Pool`` has slots only).
        __slots__ = ("sessionward_guard",)

        def acquire(self, *, timeout: float | None = None) -> _Acquire:
            return _Acquire(self, base.acquire, timeout)

    Pool.__qualname__ = Pool.__name__ = "Pool"
    Pool.__module__ = "sessionward.asyncpg"
    return Pool


class _Acquire:
    """``await pool.acquire()`` and ``async with pool.acquire() as connection``."""

    __slots__ = ("acquire", "connection", "pool", "timeout")

    def __init__(self, pool: Any, acquire: Callable[..., Any], timeout: float | None) -> None:
        self.pool = pool
        self.acquire = acquire
        self.timeout = timeout
        self.connection: Any = None

    def __await__(self) -> Any:
        return self._acquire().__await__()

    async def __aenter__(self) -> Any:
        if self.connection is not None:
            raise ConfigurationError("a connection is already acquired by this context")
        self.connection = await self._acquire()
        return self.connection

    async def __aexit__(self, *exc_info: object) -> None:
        connection, self.connection = self.connection, None
        await self.pool.release(connection)

    async def _acquire(self) -> Any:
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout is None else loop.time() + self.timeout
        # Each refusal closed one connection; past one per pool slot, something else
        # is wrong (the server refuses every new one too): let the caller see it.
        tries = self.pool.get_max_size() + 1
        for attempt in range(tries):
            remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
            try:
                return await self.acquire(self.pool, timeout=remaining)
            except ConnectionReplaced as error:
                if attempt == tries - 1:
                    raise
                logger.debug("replaced a pooled connection: %s", error)
        raise AssertionError("unreachable")
