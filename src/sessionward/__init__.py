"""sessionward: keep database sessions healthy from both ends of the wire.

``sessionward.connect(url)`` returns a ``SessionControl`` that lists, explains,
cancels and terminates the sessions of a PostgreSQL or MariaDB/MySQL server.
"""

from ._control import DEFAULT_WAIT_SECONDS, SessionControl, connect
from .core import (
    Action,
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    DatabaseInUse,
    DriverNotInstalled,
    DropResult,
    EndResult,
    Outcome,
    PermissionDenied,
    Safety,
    ServerInfo,
    Session,
    SessionFilter,
    SessionwardError,
    Snapshot,
    WaitNode,
    parse_duration,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_WAIT_SECONDS",
    "Action",
    "AuthenticationFailed",
    "ConfigurationError",
    "ConnectionFailed",
    "DatabaseInUse",
    "DriverNotInstalled",
    "DropResult",
    "EndResult",
    "Outcome",
    "PermissionDenied",
    "Safety",
    "ServerInfo",
    "Session",
    "SessionControl",
    "SessionFilter",
    "SessionwardError",
    "Snapshot",
    "WaitNode",
    "__version__",
    "connect",
    "parse_duration",
]
