"""``Timeouts`` for psycopg2 connections: the same libpq parameters as psycopg 3."""

from __future__ import annotations

from typing import Any

from ...core import Timeouts
from .._timeouts import libpq_params, pg_settings, set_pg_settings
from ..psycopg._timeouts import set_transaction_timeouts

__all__ = ["apply_timeouts", "psycopg2_kwargs", "set_transaction_timeouts"]

#: ``psycopg2.extensions.TRANSACTION_STATUS_IDLE``.
_IDLE = 0


def psycopg2_kwargs(
    timeouts: Timeouts, *, server_version: int | None = None, options: str | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``psycopg2.connect`` (libpq parameters, as for psycopg 3).

    ``server_version`` (``conn.server_version`` or a major version) turns a
    setting the server lacks into ``UnsupportedSetting`` before connecting.

    >>> from sessionward import UnsupportedSetting
    >>> try:
    ...     psycopg2_kwargs(Timeouts(idle_session_seconds=600), server_version=13)
    ... except UnsupportedSetting as error:
    ...     print(error.setting, "/", error.server)
    idle_session_timeout / PostgreSQL 13.0
    """
    return libpq_params(timeouts, server_version=server_version, options=options)


def apply_timeouts(connection: Any, timeouts: Timeouts) -> None:
    """Set the server limits of ``timeouts`` on an open psycopg2 connection."""
    settings = pg_settings(timeouts, server_version=connection.server_version)
    in_transaction = connection.get_transaction_status() != _IDLE
    set_pg_settings(connection, settings, in_transaction=in_transaction)
