"""sessionward: keep database sessions healthy from both ends of the wire.

``sessionward.connect(url)`` returns a ``SessionControl`` that lists, explains,
cancels and terminates the sessions of a PostgreSQL or MariaDB/MySQL server.
"""

# Not ``typing.TYPE_CHECKING``: importing typing would delay the command line's Ctrl-C handling.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._control import DEFAULT_WAIT_SECONDS, SessionControl, connect
    from .core import (
        Action,
        AuthenticationFailed,
        CommitOutcomeUnknown,
        ConcurrentUse,
        ConfigurationError,
        ConnectionFailed,
        ConnectionLost,
        DatabaseInUse,
        Deadlock,
        DriverNotInstalled,
        DropResult,
        EndResult,
        IdleInTransactionTimeout,
        IdleSessionTimeout,
        LockTimeout,
        Outcome,
        PermissionDenied,
        QueryCanceled,
        Safety,
        SerializationFailure,
        ServerInfo,
        ServerShuttingDown,
        Session,
        SessionEnded,
        SessionFilter,
        SessionTerminated,
        SessionwardError,
        Snapshot,
        StatementInterrupted,
        StatementTimeout,
        Timeouts,
        TransactionTimeout,
        UnsupportedSetting,
        WaitNode,
        classify,
        parse_duration,
        translate,
    )

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_WAIT_SECONDS",
    "Action",
    "AuthenticationFailed",
    "CommitOutcomeUnknown",
    "ConcurrentUse",
    "ConfigurationError",
    "ConnectionFailed",
    "ConnectionLost",
    "DatabaseInUse",
    "Deadlock",
    "DriverNotInstalled",
    "DropResult",
    "EndResult",
    "IdleInTransactionTimeout",
    "IdleSessionTimeout",
    "LockTimeout",
    "Outcome",
    "PermissionDenied",
    "QueryCanceled",
    "Safety",
    "SerializationFailure",
    "ServerInfo",
    "ServerShuttingDown",
    "Session",
    "SessionControl",
    "SessionEnded",
    "SessionFilter",
    "SessionTerminated",
    "SessionwardError",
    "Snapshot",
    "StatementInterrupted",
    "StatementTimeout",
    "Timeouts",
    "TransactionTimeout",
    "UnsupportedSetting",
    "WaitNode",
    "__version__",
    "classify",
    "connect",
    "parse_duration",
    "translate",
]

#: Where each public name lives. They load on first use, so that ``import
#: sessionward`` (which the console script does before anything else) is quick
#: and the command line takes over Ctrl-C before the heavy imports start.
_CONTROL_NAMES = frozenset({"DEFAULT_WAIT_SECONDS", "SessionControl", "connect"})


def __getattr__(name: str) -> object:
    if name not in __all__ or name == "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name in _CONTROL_NAMES:
        from . import _control as module
    else:
        from . import core as module  # type: ignore[no-redef]
    value = getattr(module, name)
    globals()[name] = value
    return value


del TYPE_CHECKING


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
