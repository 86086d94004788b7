"""``Timeouts`` for mysqlclient connections to MariaDB or MySQL."""

from __future__ import annotations

from typing import Any

from ...core import Timeouts
from .._timeouts import (
    Flavor,
    apply_mysql_timeouts,
    mysql_init_command,
    mysqlclient_connect_timeout,
)


def mysqlclient_kwargs(
    timeouts: Timeouts,
    *,
    flavor: Flavor = "auto",
    allow_partial: bool = False,
    server_version: str | None = None,
    init_command: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``MySQLdb.connect``: an ``init_command`` and ``connect_timeout``.

    The server limits are those of ``pymysql_kwargs``, with the same
    ``flavor``, ``allow_partial``, ``server_version`` and ``init_command``.
    ``connect_timeout`` is whole seconds, rounded up (0, "wait forever", is
    left out).  mysqlclient turns TCP keepalives on with the operating
    system's timers and offers no way to shorten them, so the keepalive
    fields are not used here.

    >>> mysqlclient_kwargs(Timeouts(lock_seconds=2, connect_seconds=0.5), flavor="mariadb")
    ... # doctest: +NORMALIZE_WHITESPACE
    {'init_command': 'SET SESSION innodb_lock_wait_timeout=2, lock_wait_timeout=2',
     'connect_timeout': 1}
    """
    kwargs = mysql_init_command(
        timeouts,
        flavor=flavor,
        allow_partial=allow_partial,
        server_version=server_version,
        init_command=init_command,
    )
    kwargs.update(mysqlclient_connect_timeout(timeouts))
    return kwargs


def apply_timeouts(connection: Any, timeouts: Timeouts, *, allow_partial: bool = False) -> None:
    """Set the server limits of ``timeouts`` on an open mysqlclient connection.

    The flavour and version come from the server's handshake.
    """
    apply_mysql_timeouts(connection, timeouts, allow_partial=allow_partial)
