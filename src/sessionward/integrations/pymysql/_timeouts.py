"""``Timeouts`` for PyMySQL connections to MariaDB or MySQL."""

from __future__ import annotations

from typing import Any

from ...core import Timeouts
from .._timeouts import Flavor, apply_mysql_timeouts, mysql_connect_timeout, mysql_init_command


def pymysql_kwargs(
    timeouts: Timeouts,
    *,
    flavor: Flavor = "auto",
    allow_partial: bool = False,
    server_version: str | None = None,
    init_command: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``pymysql.connect``: an ``init_command`` and ``connect_timeout``.

    - statement: MariaDB ``max_statement_time`` (seconds, every statement).
      MySQL's ``max_execution_time`` (milliseconds) covers read-only SELECT
      only, so it needs ``allow_partial=True``; so does ``flavor="auto"``,
      which cannot know which server it will meet.
    - lock: ``innodb_lock_wait_timeout`` (row locks) and ``lock_wait_timeout``
      (metadata locks), whole seconds rounded up.
    - idle in transaction: MariaDB ``idle_transaction_timeout`` (whole seconds);
      MySQL has none.  idle session: ``wait_timeout``.  transaction: neither has one.

    ``flavor="auto"`` puts flavour-specific parts in executable comments that
    only the right server runs; ``server_version`` (``SELECT VERSION()``)
    decides the flavour instead.  Your own ``init_command``, if a plain
    ``SET``, is joined with ours.  PyMySQL turns TCP keepalives on with the
    operating system's timers and offers no way to shorten them, so the
    keepalive fields are not used here.

    >>> print(pymysql_kwargs(Timeouts(statement_seconds=0.5, lock_seconds=2),
    ...                      flavor="mariadb")["init_command"])
    SET SESSION innodb_lock_wait_timeout=2, lock_wait_timeout=2, max_statement_time=0.5
    """
    kwargs = mysql_init_command(
        timeouts,
        flavor=flavor,
        allow_partial=allow_partial,
        server_version=server_version,
        init_command=init_command,
    )
    kwargs.update(mysql_connect_timeout(timeouts))
    return kwargs


def apply_timeouts(connection: Any, timeouts: Timeouts, *, allow_partial: bool = False) -> None:
    """Set the server limits of ``timeouts`` on an open PyMySQL connection.

    The flavour and version come from the server's handshake.
    """
    apply_mysql_timeouts(connection, timeouts, allow_partial=allow_partial)
