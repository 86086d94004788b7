"""asyncpg's own pool with ``harden()``'s promises: no dead connection handed out, none kept
past the server's idle limit, every acquired connection accounted for.

::

    import sessionward.asyncpg
    from sessionward import Timeouts

    pool = await sessionward.asyncpg.create_pool(url, timeouts=Timeouts(statement_seconds=30))
    async with pool.acquire() as connection:
        ...
    sessionward.asyncpg.holders(pool)  # who holds connections: task, thread, code line

    # or, keeping asyncpg.create_pool (a connection setup refuses reaches the caller):
    pool = await asyncpg.create_pool(url, **sessionward.asyncpg.pool_kwargs())

- ``liveness="auto"``: at acquire, look at the socket (no round trip); ping only a
  connection idle longer than ``ping_after_idle_seconds``, or whose socket has
  something to read or is unknown.  ``"ping"``: ping every acquire; ``"off"``.
- ``recycle="auto"``: retire a connection before the server's
  ``idle_session_timeout`` ends it; seconds: retire connections idle that long;
  ``None``: never.
- ``timeouts``: server limits in ``server_settings``; keepalives and
  ``tcp_user_timeout`` (``Timeouts()``'s by default) on the connection's socket, so a
  half-open connection fails within ``tcp_user_timeout_seconds``.
- ``track_leaks``: ``holders(pool)``; a ``LeakWarning`` for a connection held past
  ``hold_warning_seconds``.
- ``init``, ``setup``, ``reset`` (and ``server_settings``) of your own run as before;
  without a ``reset``, asyncpg's default ``Connection.reset()`` runs.
"""

from .core import ConnectionReplaced
from .integrations._pool_guard import Holder, LeakWarning
from .integrations.asyncpg._pool import create_pool, holders, pool_kwargs

__all__ = [
    "ConnectionReplaced",
    "Holder",
    "LeakWarning",
    "create_pool",
    "holders",
    "pool_kwargs",
]
