"""The pure core: session snapshots, filters, lock forests and ending decisions.

Nothing here does I/O or imports a database driver.
"""

from ._blockers import WaitNode, lock_forest, root_blockers
from ._drop import DropResult
from ._durations import format_age, parse_duration
from ._endings import Action, EndResult, Outcome, Safety, plan, refusal
from ._errors import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    DatabaseInUse,
    DriverNotInstalled,
    PermissionDenied,
    SessionwardError,
)
from ._filter import SessionFilter, compile_query_regex, parse_client, parse_state
from ._protocol import Backend
from ._session import (
    ACTIVE,
    BACKGROUND,
    CLIENT,
    IDLE,
    IDLE_IN_TRANSACTION,
    IDLE_IN_TRANSACTION_ABORTED,
    REPLICATION,
    STATES,
    Engine,
    ServerInfo,
    Session,
    Snapshot,
)
from ._snapshot_json import (
    SCHEMA_ID,
    dump_snapshot,
    load_snapshot,
    snapshot_from_dict,
    snapshot_json_schema,
    snapshot_to_dict,
)
from ._target import Target, parse_target, redact_url

__all__ = [
    "ACTIVE",
    "BACKGROUND",
    "CLIENT",
    "IDLE",
    "IDLE_IN_TRANSACTION",
    "IDLE_IN_TRANSACTION_ABORTED",
    "REPLICATION",
    "SCHEMA_ID",
    "STATES",
    "Action",
    "AuthenticationFailed",
    "Backend",
    "ConfigurationError",
    "ConnectionFailed",
    "DatabaseInUse",
    "DriverNotInstalled",
    "DropResult",
    "EndResult",
    "Engine",
    "Outcome",
    "PermissionDenied",
    "Safety",
    "ServerInfo",
    "Session",
    "SessionFilter",
    "SessionwardError",
    "Snapshot",
    "Target",
    "WaitNode",
    "compile_query_regex",
    "dump_snapshot",
    "format_age",
    "load_snapshot",
    "lock_forest",
    "parse_client",
    "parse_duration",
    "parse_state",
    "parse_target",
    "plan",
    "redact_url",
    "refusal",
    "root_blockers",
    "snapshot_from_dict",
    "snapshot_json_schema",
    "snapshot_to_dict",
]
