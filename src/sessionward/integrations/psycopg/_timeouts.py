"""``Timeouts`` for psycopg 3 connections and psycopg_pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...core import ConfigurationError, Timeouts
from .._timeouts import (
    libpq_params,
    pg_settings,
    set_pg_settings,
    set_pg_transaction_settings,
)

if TYPE_CHECKING:
    import psycopg

#: ``psycopg.pq.TransactionStatus`` (psycopg2's ``TRANSACTION_STATUS_*`` agree): no
#: transaction open, and one open and healthy.
_IDLE = 0
_INTRANS = 2


def psycopg_kwargs(
    timeouts: Timeouts, *, server_version: int | None = None, options: str | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``psycopg.connect`` and psycopg_pool's ``kwargs``.

    Server limits travel in libpq's ``options`` (``-c statement_timeout=…``, in
    milliseconds); your own ``options`` string is kept in front of them.
    ``connect_timeout`` is whole seconds, at least 2 (libpq reads 1 as 2).
    Keepalives and ``tcp_user_timeout`` come from the ``Timeouts`` defaults.

    With ``server_version`` (``conn.info.server_version``, or a major version
    such as ``15``) a setting the server lacks raises ``UnsupportedSetting``;
    without it, such a server refuses the login with "unrecognized
    configuration parameter".

    >>> psycopg_kwargs(Timeouts(lock_seconds=0.25, tcp_user_timeout_seconds=None),
    ...                options="-c search_path=app")  # doctest: +NORMALIZE_WHITESPACE
    {'options': '-c search_path=app -c lock_timeout=250', 'keepalives': 1,
     'keepalives_idle': 30, 'keepalives_interval': 10, 'keepalives_count': 3}
    """
    return libpq_params(timeouts, server_version=server_version, options=options)


def apply_timeouts(connection: psycopg.Connection[Any], timeouts: Timeouts) -> None:
    """Set the server limits of ``timeouts`` on an open connection, checked against its version.

    Works as psycopg_pool's ``configure`` callback
    (``configure=lambda conn: apply_timeouts(conn, timeouts)``).  Client-side
    fields (connect timeout, keepalives) can only be given when connecting.
    """
    settings = pg_settings(timeouts, server_version=connection.info.server_version)
    in_transaction = int(connection.info.transaction_status) != _IDLE
    set_pg_settings(connection, settings, in_transaction=in_transaction)


def set_transaction_timeouts(connection: Any, timeouts: Timeouts) -> None:
    """Set the server limits of ``timeouts`` for this transaction only.

    For a connection behind a transaction-mode pooler (PgBouncer), where
    ``psycopg_kwargs``'s startup ``options`` are refused and ``apply_timeouts``'s
    session-level settings would stay with the server connection for its next
    client.  Call it first thing in each transaction: with autocommit off, or
    inside ``with conn.transaction():``; it costs one round trip.  Works for
    psycopg 3 and psycopg2 connections.

    Raises ``ConfigurationError`` on an autocommit connection outside a
    transaction block (there is no transaction to carry the limits) or in a
    failed transaction.
    """
    status = int(connection.info.transaction_status)
    if status == _IDLE and connection.autocommit:
        raise ConfigurationError(
            "set_transaction_timeouts needs a transaction to carry the limits: call it inside "
            "`with conn.transaction():` or on a connection with autocommit off"
        )
    if status not in (_IDLE, _INTRANS):
        raise ConfigurationError(
            "set_transaction_timeouts cannot run in a failed or busy transaction: roll back first"
        )
    settings = pg_settings(timeouts, server_version=connection.info.server_version)
    # psycopg 3 would prepare the statement after a few runs; a prepared statement
    # outlives the pooled transaction, so it is never prepared.
    options = {"prepare": False} if type(connection).__module__.startswith("psycopg.") else {}
    set_pg_transaction_settings(connection, settings, execute_options=options)
