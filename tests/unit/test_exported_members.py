"""The public names are pinned: adding or dropping one is a decision, not an accident."""

import types

import pytest

import sessionward
import sessionward.core

SESSIONWARD_ALL = [
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

CORE_ALL = [
    "ACTIVE",
    "BACKGROUND",
    "CLIENT",
    "IDLE",
    "IDLE_IN_TRANSACTION",
    "IDLE_IN_TRANSACTION_ABORTED",
    "PLATFORM",
    "PLATFORMS",
    "REPLICATION",
    "SCHEMA_ID",
    "STATES",
    "Action",
    "AuditUnavailable",
    "AuthenticationFailed",
    "Backend",
    "CommitOutcomeUnknown",
    "ConcurrentUse",
    "ConfigurationError",
    "ConnectionFailed",
    "ConnectionLost",
    "ConnectionReplaced",
    "DatabaseInUse",
    "Deadlock",
    "Decision",
    "DriverNotInstalled",
    "DropResult",
    "EndResult",
    "Engine",
    "History",
    "IdleInTransactionTimeout",
    "IdleSessionTimeout",
    "Limits",
    "LockTimeout",
    "Match",
    "Origin",
    "Outcome",
    "PermissionDenied",
    "Policy",
    "PolicyAction",
    "PoolerEnded",
    "PoolerIdleTimeout",
    "PoolerKilled",
    "PoolerRefused",
    "PoolerServerLost",
    "PoolerWaitTimeout",
    "Protect",
    "QueryCanceled",
    "Rule",
    "Safety",
    "SerializationFailure",
    "ServerInfo",
    "ServerShuttingDown",
    "Session",
    "SessionEnded",
    "SessionFilter",
    "SessionTerminated",
    "SessionwardError",
    "Snapshot",
    "StatementInterrupted",
    "StatementTimeout",
    "Sweep",
    "Target",
    "Timeouts",
    "TransactionTimeout",
    "UnsupportedSetting",
    "Verdict",
    "Victims",
    "WaitNode",
    "application_name_for",
    "checked_platform",
    "classify",
    "compile_query_regex",
    "decide",
    "dump_snapshot",
    "encode_comment",
    "format_age",
    "load_snapshot",
    "lock_forest",
    "parse_client",
    "parse_duration",
    "parse_origin",
    "parse_policy",
    "parse_state",
    "parse_target",
    "plan",
    "platform_of_login",
    "redact_url",
    "refusal",
    "root_blockers",
    "snapshot_from_dict",
    "snapshot_json_schema",
    "snapshot_to_dict",
    "translate",
    "with_comment",
]


@pytest.mark.parametrize(
    ("module", "expected"),
    [(sessionward, SESSIONWARD_ALL), (sessionward.core, CORE_ALL)],
    ids=["sessionward", "sessionward.core"],
)
def test_all_is_pinned(module, expected):
    assert module.__all__ == expected


@pytest.mark.parametrize("module", [sessionward, sessionward.core], ids=lambda m: m.__name__)
def test_every_exported_name_resolves(module):
    for name in module.__all__:
        assert hasattr(module, name), name
        assert not isinstance(getattr(module, name), types.ModuleType), name


@pytest.mark.parametrize("module", [sessionward, sessionward.core], ids=lambda m: m.__name__)
def test_every_public_name_is_exported(module):
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    # `annotations` is the __future__ feature object, not part of the API.
    public.discard("annotations")
    assert public <= set(module.__all__)


def test_top_level_reexports_the_core_objects():
    for name in set(SESSIONWARD_ALL) & set(CORE_ALL):
        assert getattr(sessionward, name) is getattr(sessionward.core, name), name


def test_version_is_a_string():
    assert sessionward.__version__ == "0.1.0"
