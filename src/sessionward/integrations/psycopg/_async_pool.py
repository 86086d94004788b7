"""psycopg_pool's ``AsyncConnectionPool`` with ``harden()``'s promises, through its public
``configure``, ``check`` and ``reset`` callbacks (decisions in ``_pool_guard``).

- ``configure`` (a new connection): note its socket (``fileno()``) and the server's
  ``idle_session_timeout`` for ``recycle="auto"``.  Keepalives and ``tcp_user_timeout``
  travel as libpq parameters in ``kwargs`` (``Timeouts()``'s by default; yours win).
- ``check`` (every ``getconn``): the guard's verdict; a ping (the pool's own
  ``check_connection``) only when due.  A connection to replace is closed and ``check``
  raises: the pool discards it and hands out another, so the caller never sees it.  Then note
  who took it.
- ``reset`` (every return): your ``reset``; the connection is no longer held.  The
  pool itself rolls back a connection returned in a transaction and discards one
  returned with a statement running (a task cancelled mid-statement).
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from ...core import ConfigurationError, Timeouts
from .. import _pool_guard
from .._timeouts import libpq_client_params, libpq_params, load

Callback = Callable[[Any], Awaitable[None]]

_WHERE = "sessionward.psycopg.async_pool_args"
#: A new session's idle limit (and its socket's ends, unused here: ``fileno()`` is public).
_FACTS_QUERY = "get_pool_facts_postgresql"
#: ``psycopg.pq.TransactionStatus.IDLE``.
_IDLE = 0


class _Callbacks:
    def __init__(
        self,
        guard: _pool_guard.PoolGuard,
        configure: Callback | None,
        check: Callback | None,
        reset: Callback | None,
    ) -> None:
        self.guard = guard
        self.user_configure = configure
        self.user_check = check
        self.user_reset = reset

    async def configure(self, connection: Any) -> None:
        if self.user_configure is not None:
            await self.user_configure(connection)
        idle_limit = None
        if self.guard.wants_facts():
            cursor = await connection.execute(load(_FACTS_QUERY))
            row = await cursor.fetchone()
            if int(connection.info.transaction_status) != _IDLE:
                await connection.rollback()
            idle_limit = row[0] if row is not None and row[0] else None
        self.guard.connected(connection, connection.fileno(), idle_limit)

    async def check(self, connection: Any) -> None:
        import psycopg
        from psycopg_pool import AsyncConnectionPool

        if connection.closed:
            raise psycopg.OperationalError("sessionward: the connection is closed")
        verdict, why = self.guard.verdict(connection)
        if verdict == _pool_guard.REPLACE:
            # Closed, so the pool discards it: one that merely fails its check and is
            # still open goes back into the pool.
            await connection.close()
            raise psycopg.OperationalError(f"sessionward: {why}")
        if verdict == _pool_guard.PING:
            await AsyncConnectionPool.check_connection(connection)
        if self.user_check is not None:
            await self.user_check(connection)
        self.guard.taken(connection)

    async def reset(self, connection: Any) -> None:
        try:
            if self.user_reset is not None:
                await self.user_reset(connection)
        finally:
            self.guard.returned(connection)


def async_pool_args(
    *,
    conninfo: str = "",
    kwargs: Mapping[str, Any] | None = None,
    configure: Callback | None = None,
    check: Callback | None = None,
    reset: Callback | None = None,
    timeouts: Timeouts | None = None,
    liveness: _pool_guard.Liveness = "auto",
    recycle: float | Literal["auto"] | None = "auto",
    track_leaks: bool = True,
    ping_after_idle_seconds: float = _pool_guard.DEFAULT_PING_AFTER_IDLE_SECONDS,
    hold_warning_seconds: float = _pool_guard.DEFAULT_HOLD_WARNING_SECONDS,
    capture_stacks: bool = False,
    name: str = "psycopg async pool",
) -> dict[str, Any]:
    """``kwargs``, ``configure``, ``check`` and ``reset`` for ``AsyncConnectionPool``::

        pool = AsyncConnectionPool(url, **async_pool_args(conninfo=url))

    See ``sessionward.psycopg`` for the options; use ``async_pool`` to have
    ``async_pool_holders()`` too.
    """
    return _args_and_guard(**locals())[0]


def _args_and_guard(
    *,
    conninfo: str,
    kwargs: Mapping[str, Any] | None,
    configure: Callback | None,
    check: Callback | None,
    reset: Callback | None,
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
    for callback_name, callback in (("configure", configure), ("check", check), ("reset", reset)):
        _pool_guard.check_callback(where, callback_name, callback)
    if timeouts is not None and not isinstance(timeouts, Timeouts):
        raise ConfigurationError(f"{where}(timeouts=...) is a Timeouts or None, not {timeouts!r}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ConfigurationError(f"{where}(kwargs=...) is a mapping or None, not {kwargs!r}")
    if not isinstance(conninfo, str):
        raise ConfigurationError(f"{where}(conninfo=...) is a string, not {conninfo!r}")
    made = dict(kwargs or {})
    if timeouts is not None:
        ours = libpq_params(timeouts, server_version=None, options=made.pop("options", None))
        made.update(ours)
    else:  # defaults only: what the application set itself, here or in conninfo, stays
        given = _conninfo_keys(conninfo)
        for key, value in libpq_client_params(Timeouts()).items():
            if key not in given and key != "connect_timeout":
                made.setdefault(key, value)
    guard = _pool_guard.PoolGuard(
        name=name,
        liveness=liveness,
        recycle=recycle,
        ping_after_idle_seconds=ping_after_idle_seconds,
        track_leaks=track_leaks,
        hold_warning_seconds=hold_warning_seconds,
        capture_stacks=capture_stacks,
        internal=("psycopg", "psycopg_pool"),
    )
    callbacks = _Callbacks(guard, configure, check, reset)
    args = {
        "kwargs": made,
        "configure": callbacks.configure,
        "check": callbacks.check,
        "reset": callbacks.reset,
    }
    return args, guard


def _conninfo_keys(conninfo: str) -> set[str]:
    if not conninfo:
        return set()
    from psycopg.conninfo import conninfo_to_dict

    return set(conninfo_to_dict(conninfo))


_guards: weakref.WeakKeyDictionary[Any, _pool_guard.PoolGuard] = weakref.WeakKeyDictionary()


def async_pool(
    conninfo: str = "",
    *,
    kwargs: Mapping[str, Any] | None = None,
    configure: Callback | None = None,
    check: Callback | None = None,
    reset: Callback | None = None,
    timeouts: Timeouts | None = None,
    liveness: _pool_guard.Liveness = "auto",
    recycle: float | Literal["auto"] | None = "auto",
    track_leaks: bool = True,
    ping_after_idle_seconds: float = _pool_guard.DEFAULT_PING_AFTER_IDLE_SECONDS,
    hold_warning_seconds: float = _pool_guard.DEFAULT_HOLD_WARNING_SECONDS,
    capture_stacks: bool = False,
    **pool_kwargs: Any,
) -> Any:
    """``AsyncConnectionPool(conninfo, **pool_kwargs)`` with the callbacks of
    ``async_pool_args``; ``async_pool_holders(pool)`` lists who holds its connections."""
    from psycopg_pool import AsyncConnectionPool

    args, guard = _args_and_guard(
        conninfo=conninfo,
        kwargs=kwargs,
        configure=configure,
        check=check,
        reset=reset,
        timeouts=timeouts,
        liveness=liveness,
        recycle=recycle,
        track_leaks=track_leaks,
        ping_after_idle_seconds=ping_after_idle_seconds,
        hold_warning_seconds=hold_warning_seconds,
        capture_stacks=capture_stacks,
        name=str(pool_kwargs.get("name") or "psycopg async pool"),
        where="sessionward.psycopg.async_pool",
    )
    pool = AsyncConnectionPool(conninfo, **args, **pool_kwargs)
    _guards[pool] = guard
    return pool


def async_pool_holders(pool: Any) -> list[_pool_guard.Holder]:
    """Who holds the connections taken from ``pool`` (made by ``async_pool``) now, longest
    first: the asyncio task, the thread, and the code line that took each."""
    try:
        guard = _guards.get(pool)
    except TypeError:  # not weakly referenceable: not a pool at all
        guard = None
    if guard is None:
        raise ConfigurationError(
            "sessionward.psycopg.async_pool_holders() needs a pool made by "
            "sessionward.psycopg.async_pool"
        )
    return guard.holders(lambda connection: not connection.closed)
