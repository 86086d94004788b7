"""What sessionward's Django engines add to Django's own ``DatabaseWrapper``.

``sessionward.django.db.backends.postgresql`` and ``.mysql`` subclass
Django's wrapper with ``SessionwardWrapperMixin`` in front.  Only Django's
documented backend hooks are overridden: ``get_connection_params``,
``is_usable`` and ``close_if_health_check_failed``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from ...core import ConfigurationError, Timeouts
from ._databases import Vendor
from ._liveness import Liveness, liveness
from ._timeouts import database_options

#: ``OPTIONS`` keys read (and removed) by the engines.
TIMEOUTS_KEY = "sessionward_timeouts"
SERVER_VERSION_KEY = "sessionward_server_version"
FLAVOR_KEY = "sessionward_flavor"
PING_AFTER_KEY = "sessionward_ping_after_seconds"
#: Without a socket to look at (PyMySQL), a connection idle this long is pinged before use.
DEFAULT_PING_AFTER_SECONDS = 1.0
#: PostgreSQL keeps the first 63 bytes of ``application_name`` (NAMEDATALEN - 1).
PG_NAME_BYTES = 63


def session_name() -> str:
    """``<program>[<pid>]:<thread>``: who holds a session, as ``sessionward ls`` shows it.

    >>> ":" in session_name() and "[" in session_name()
    True
    """
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    name = f"{program or 'python'}[{os.getpid()}]:{threading.current_thread().name}"
    return name.encode()[:PG_NAME_BYTES].decode(errors="ignore")


class SessionwardWrapperMixin:
    """Timeouts from ``OPTIONS``, a socket look before use, and a session name."""

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

        def close(self) -> None: ...

    def get_connection_params(self) -> dict[str, Any]:
        base: Any = super()
        params: dict[str, Any] = base.get_connection_params()
        timeouts = params.pop(TIMEOUTS_KEY, None)
        server_version = params.pop(SERVER_VERSION_KEY, None)
        flavor = params.pop(FLAVOR_KEY, "auto")
        params.pop(PING_AFTER_KEY, None)
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
        if self.vendor == "postgresql":
            params.setdefault("application_name", session_name())
        elif getattr(self.Database, "__name__", "") == "pymysql":
            # A connection attribute; mysqlclient has no such argument.
            params.setdefault("program_name", session_name())
        return params

    def is_usable(self) -> bool:
        if self.connection is None:
            return False
        state = liveness(self.connection)
        if state is Liveness.CLOSED:
            return False
        if state is Liveness.QUIET and not self.errors_occurred:
            return True
        base: Any = super()
        return bool(base.is_usable())

    def close_if_health_check_failed(self) -> None:
        base: Any = super()
        # Called before every cursor: the time since the last one is how long it sat idle.
        now = time.monotonic()
        idle_seconds = now - getattr(self, "_sessionward_used_at", now)
        self._sessionward_used_at = now
        if (
            self.connection is None
            or self.in_atomic_block
            or getattr(self, "pool", None)
            or self.autocommit != self.settings_dict["AUTOCOMMIT"]
        ):
            # Inside a transaction a silent replacement would lose it: let the error show.
            base.close_if_health_check_failed()
            return
        state = liveness(self.connection)
        if state is Liveness.QUIET or (
            state is Liveness.UNKNOWN and idle_seconds < self._sessionward_ping_after()
        ):
            self.health_check_done = True
            return
        # Closed, something waiting on the socket, or (no socket to look at,
        # PyMySQL) idle long enough to be worth a ping: confirm with a round trip.
        if state is Liveness.CLOSED or not base.is_usable():
            with suppress(Exception):
                self.close()
        self.health_check_done = True

    def _sessionward_ping_after(self) -> float:
        value = self.settings_dict["OPTIONS"].get(PING_AFTER_KEY, DEFAULT_PING_AFTER_SECONDS)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigurationError(
                f'OPTIONS["{PING_AFTER_KEY}"] must be a number of seconds >= 0, not {value!r}'
            )
        return float(value)
