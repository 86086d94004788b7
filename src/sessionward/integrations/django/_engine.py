"""What sessionward's Django engines add to Django's own ``DatabaseWrapper``.

``sessionward.django.db.backends.postgresql`` and ``.mysql`` subclass
Django's wrapper with ``SessionwardWrapperMixin`` in front.  Only Django's
documented backend hooks are overridden: ``get_connection_params``,
``create_cursor`` (its cursors append the origin comment, see ``_origin``),
``is_usable`` and ``close_if_health_check_failed``, and
``DatabaseOperations.last_executed_query`` (which reports statements without it).

Django's health check is kept as it is: with ``CONN_HEALTH_CHECKS`` it asks
``is_usable()`` once per request, and whatever ``is_usable()`` answers (a
subclass's, a test's patch) decides.  Ours answers from a look at the socket
when it is quiet, so that check costs no round trip.  On top of it, before
every cursor outside a transaction, the engine takes the same look and
confirms a suspicion with Django's own ping, so a connection the server ended
is replaced even without ``CONN_HEALTH_CHECKS`` and within a request.

A connection made with ``target_session_attrs=read-write`` (or ``primary``) on
a server that has since reported it takes no writes (a switchover fenced it
with ``default_transaction_read_only``, PostgreSQL 14+ reports that) is
replaced the same way, outside a transaction: the new one goes through libpq's
host list again and finds the promoted replica (see ``.._failover``).
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from ...core import ConfigurationError, Timeouts
from .._failover import reports_read_only, wants_writable
from .._timeouts import libpq_client_params, pg_settings, set_pg_transaction_settings
from ._databases import Vendor
from ._liveness import Liveness, liveness
from ._origin import (
    ORIGIN_KEY,
    ORIGIN_MAX_BYTES_KEY,
    StatementOrigin,
    name_connection,
    settings_of,
    statement_origin,
)
from ._timeouts import database_options

#: ``OPTIONS`` keys read (and removed) by the engines.
TIMEOUTS_KEY = "sessionward_timeouts"
#: The same limits set per transaction (PostgreSQL behind a transaction-mode pooler).
TRANSACTION_TIMEOUTS_KEY = "sessionward_transaction_timeouts"
SERVER_VERSION_KEY = "sessionward_server_version"
FLAVOR_KEY = "sessionward_flavor"
PING_AFTER_KEY = "sessionward_ping_after_seconds"
#: Without a socket to look at (PyMySQL), a connection idle this long is pinged before use.
DEFAULT_PING_AFTER_SECONDS = 1.0


class SessionwardWrapperMixin:
    """Timeouts from ``OPTIONS``, a socket look before use, and the session's origin."""

    if TYPE_CHECKING:  # provided by Django's DatabaseWrapper
        vendor: str
        connection: Any
        in_atomic_block: bool
        autocommit: bool
        errors_occurred: bool
        health_check_done: bool
        health_check_enabled: bool
        settings_dict: dict[str, Any]
        Database: Any
        wrap_database_errors: Any

        def close(self) -> None: ...

    #: The origin of this wrapper's statements, once worked out (None: off).
    _sessionward_origin: StatementOrigin | None
    #: ``OPTIONS["sessionward_transaction_timeouts"]`` as settings, set in each transaction.
    _sessionward_transaction_settings: dict[str, int] | None = None

    def create_cursor(self, name: str | None = None) -> Any:
        origin: StatementOrigin | None
        try:
            origin = self._sessionward_origin
        except AttributeError:
            origin = statement_origin(self.settings_dict.get("OPTIONS") or {})
            self._sessionward_origin = origin
        base: Any = super()
        if origin is None or name:  # named (server-side) cursors are left alone
            return base.create_cursor(name)
        # The cursor is made with a subclass of the connection's cursor class that
        # appends the origin comment (see ``_origin``); the connection keeps its own.
        with origin.tagging(self.connection, getattr(self.Database, "__name__", "")):
            return base.create_cursor(name)

    def get_connection_params(self) -> dict[str, Any]:
        base: Any = super()
        params: dict[str, Any] = base.get_connection_params()
        timeouts = params.pop(TIMEOUTS_KEY, None)
        transaction_timeouts = params.pop(TRANSACTION_TIMEOUTS_KEY, None)
        server_version = params.pop(SERVER_VERSION_KEY, None)
        flavor = params.pop(FLAVOR_KEY, "auto")
        params.pop(PING_AFTER_KEY, None)
        service, _ = settings_of(
            {key: params.pop(key) for key in (ORIGIN_KEY, ORIGIN_MAX_BYTES_KEY) if key in params}
        )
        if timeouts is not None:
            if not isinstance(timeouts, Timeouts):
                raise ConfigurationError(
                    f'OPTIONS["{TIMEOUTS_KEY}"] must be a sessionward.Timeouts, '
                    f"not {type(timeouts).__name__}"
                )
            vendor: Vendor = "postgresql" if self.vendor == "postgresql" else "mysql"
            params = database_options(
                timeouts, vendor, options=params, server_version=server_version, flavor=flavor
            )
        if transaction_timeouts is not None:
            params.update(self._sessionward_per_transaction(transaction_timeouts, timeouts))
        if service is not None:
            # ``service[pid]@host``, unless the parameters name the session already.
            # mysqlclient takes no connection attributes, and MariaDB has no session
            # variable a client could name itself with instead.
            driver = getattr(self.Database, "__name__", "")
            name_connection(params, service, self.vendor, driver)
        return params

    def _sessionward_per_transaction(
        self, timeouts: object, session_timeouts: object
    ) -> dict[str, int]:
        """Check ``OPTIONS["sessionward_transaction_timeouts"]``; its client-side parameters."""
        if not isinstance(timeouts, Timeouts):
            raise ConfigurationError(
                f'OPTIONS["{TRANSACTION_TIMEOUTS_KEY}"] must be a sessionward.Timeouts, '
                f"not {type(timeouts).__name__}"
            )
        if self.vendor != "postgresql":
            raise ConfigurationError(
                f'OPTIONS["{TRANSACTION_TIMEOUTS_KEY}"] is for PostgreSQL behind a '
                f'transaction-mode pooler; use OPTIONS["{TIMEOUTS_KEY}"] for {self.vendor}'
            )
        if session_timeouts is not None:
            raise ConfigurationError(
                f'OPTIONS["{TIMEOUTS_KEY}"] and OPTIONS["{TRANSACTION_TIMEOUTS_KEY}"] '
                "exclude each other: give the limits once"
            )
        self._sessionward_transaction_settings = pg_settings(timeouts, server_version=None)
        return libpq_client_params(timeouts)

    def _set_autocommit(self, autocommit: bool) -> None:
        base: Any = super()
        base._set_autocommit(autocommit)
        settings = self._sessionward_transaction_settings
        if autocommit or not settings:
            return
        # Autocommit just went off (``atomic()`` entering, or ``set_autocommit(False)``):
        # the limits become the first statement of the transaction, and end with it.
        psycopg3 = getattr(self.Database, "__name__", "") == "psycopg"
        with self.wrap_database_errors:
            set_pg_transaction_settings(
                self.connection, settings, execute_options={"prepare": False} if psycopg3 else None
            )

    def is_usable(self) -> bool:
        """Whether the connection works: a look at its socket, a round trip only if in doubt.

        A quiet socket is enough, except after an error, when Django wants to
        know the connection itself still works.  A readable socket, or a driver
        without one (PyMySQL), gets Django's own check, as with Django's engine.
        """
        if self.connection is None or self._sessionward_fenced():
            return False
        return self._sessionward_usable(trust_quiet=not self.errors_occurred, trust_recent=False)

    def close_if_health_check_failed(self) -> None:
        # Django's own check first, through is_usable(), when it wants one.
        django_checks = (
            self.connection is not None and self.health_check_enabled and not self.health_check_done
        )
        base: Any = super()
        base.close_if_health_check_failed()
        # Ours, before every cursor: Django's ping confirms a suspicion, so a
        # subclass's is_usable() is asked only where Django asks it.
        if (
            not django_checks
            and self._sessionward_replaceable()
            and (
                not self._sessionward_usable(trust_quiet=True, trust_recent=True)
                or self._sessionward_fenced()
            )
        ):
            with suppress(Exception):  # close() forgets the connection even when it fails
                self.close()
        # Called before every cursor: the time since the last one is how long it sat idle.
        self._sessionward_used_at = time.monotonic()

    def _sessionward_replaceable(self) -> bool:
        """Outside a transaction, where a new connection loses nothing."""
        return not (
            self.connection is None
            or self.in_atomic_block
            or getattr(self, "pool", None)  # Django's psycopg pool checks its own
            or self.autocommit != self.settings_dict["AUTOCOMMIT"]
        )

    def _sessionward_fenced(self) -> bool:
        """Whether the server said it takes no writes under a connection that asked for a
        writable one; read from the driver's copy of the server's reports, no round trip."""
        driver = getattr(self.Database, "__name__", "")
        try:
            return reports_read_only(driver, self.connection) and wants_writable(
                driver, self.connection
            )
        except Exception:  # a closed connection: the liveness look handles it
            return False

    def _sessionward_usable(self, *, trust_quiet: bool, trust_recent: bool) -> bool:
        """``trust_recent``: with no socket to look at, a connection used lately is trusted."""
        state = liveness(self.connection)
        if state is Liveness.CLOSED:
            return False
        if trust_quiet and state is Liveness.QUIET:
            return True
        if (
            trust_recent
            and state is Liveness.UNKNOWN
            and self._sessionward_idle_seconds() < self._sessionward_ping_after()
        ):
            return True
        # Something waits on the socket, or (no socket, PyMySQL) it sat idle
        # long enough to be worth a ping: Django's own round trip decides.
        base: Any = super()
        return bool(base.is_usable())

    def _sessionward_idle_seconds(self) -> float:
        used_at = getattr(self, "_sessionward_used_at", None)
        return 0.0 if used_at is None else time.monotonic() - used_at

    def _sessionward_ping_after(self) -> float:
        value = self.settings_dict["OPTIONS"].get(PING_AFTER_KEY, DEFAULT_PING_AFTER_SECONDS)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigurationError(
                f'OPTIONS["{PING_AFTER_KEY}"] must be a number of seconds >= 0, not {value!r}'
            )
        return float(value)
