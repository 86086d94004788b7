"""``Timeouts`` as Django ``DATABASES[…]["OPTIONS"]``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ...core import ConfigurationError, Timeouts
from .._timeouts import (
    Flavor,
    libpq_params,
    merge_init_command,
    mysql_assignments,
    mysql_server,
    round_up,
)


def database_options(
    timeouts: Timeouts,
    vendor: Literal["postgresql", "mysql"],
    *,
    options: Mapping[str, Any] | None = None,
    server_version: int | str | None = None,
    flavor: Flavor = "auto",
    allow_partial: bool = False,
) -> dict[str, Any]:
    """The ``OPTIONS`` of a ``DATABASES`` entry that apply ``timeouts``.

    ``options`` are your existing ``OPTIONS``; they are kept, and a libpq
    ``options`` string or a MySQL ``init_command`` is joined with ours.

    - ``"postgresql"`` (psycopg 3 or psycopg2): libpq parameters, as
      ``psycopg_kwargs``; ``server_version`` (an int such as ``150020`` or
      ``15``) turns a setting the server lacks into ``UnsupportedSetting``.
    - ``"mysql"`` (mysqlclient or PyMySQL): an ``init_command``, as
      ``pymysql_kwargs``, and ``connect_timeout`` in whole seconds;
      ``server_version`` (a ``SELECT VERSION()`` string) or ``flavor`` says
      whether the server is MariaDB or MySQL.

    >>> database_options(Timeouts(statement_seconds=30, tcp_user_timeout_seconds=None,
    ...     keepalive_idle_seconds=None, keepalive_interval_seconds=None,
    ...     max_keepalive_probes=None), "postgresql", options={"sslmode": "require"})
    {'sslmode': 'require', 'options': '-c statement_timeout=30000'}
    """
    merged = dict(options or {})
    if vendor == "postgresql":
        if isinstance(server_version, str):
            raise ConfigurationError(
                "server_version for PostgreSQL is a number such as 150020 or 15"
            )
        merged.update(
            libpq_params(timeouts, server_version=server_version, options=merged.get("options"))
        )
        return merged
    if vendor == "mysql":
        server = mysql_server(str(server_version)) if server_version else None
        assignments = mysql_assignments(
            timeouts, flavor=flavor, allow_partial=allow_partial, server=server
        )
        command = merge_init_command(assignments.init_command(), merged.get("init_command"))
        if command:
            merged["init_command"] = command
        if timeouts.connect_seconds:
            # mysqlclient takes whole seconds; 0 ("wait forever") leaves the driver default.
            merged["connect_timeout"] = round_up(timeouts.connect_seconds)
        return merged
    raise ConfigurationError(f"database_options knows 'postgresql' and 'mysql', not {vendor!r}")
