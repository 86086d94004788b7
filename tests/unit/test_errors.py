import pickle

import pytest

from sessionward.core import (
    AuditUnavailable,
    AuthenticationFailed,
    CommitOutcomeUnknown,
    ConcurrentUse,
    ConfigurationError,
    ConnectionFailed,
    ConnectionLost,
    ConnectionReplaced,
    DatabaseInUse,
    Deadlock,
    DriverNotInstalled,
    IdleInTransactionTimeout,
    IdleSessionTimeout,
    LockTimeout,
    PermissionDenied,
    PoolerEnded,
    PoolerIdleTimeout,
    PoolerKilled,
    PoolerRefused,
    PoolerServerLost,
    PoolerWaitTimeout,
    QueryCanceled,
    SerializationFailure,
    ServerShuttingDown,
    SessionEnded,
    SessionTerminated,
    SessionwardError,
    StatementInterrupted,
    StatementTimeout,
    TransactionTimeout,
    UnsupportedSetting,
)
from sessionward.core._errors import _Ending

ERRORS = [
    AuditUnavailable,
    SessionwardError,
    ConfigurationError,
    DriverNotInstalled,
    ConnectionFailed,
    AuthenticationFailed,
    PermissionDenied,
    CommitOutcomeUnknown,
    ConcurrentUse,
    DatabaseInUse,
    UnsupportedSetting,
    StatementInterrupted,
    QueryCanceled,
    StatementTimeout,
    LockTimeout,
    Deadlock,
    SerializationFailure,
    SessionEnded,
    SessionTerminated,
    IdleInTransactionTimeout,
    IdleSessionTimeout,
    TransactionTimeout,
    ServerShuttingDown,
    ConnectionLost,
    ConnectionReplaced,
    PoolerEnded,
    PoolerIdleTimeout,
    PoolerKilled,
    PoolerRefused,
    PoolerServerLost,
    PoolerWaitTimeout,
]
#: Needed to build them, beyond the message.
REQUIRED = {UnsupportedSetting: {"setting": "transaction_timeout"}}


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_the_list_covers_every_subclass():
    ours = {c for c in _subclasses(SessionwardError) if c.__module__.startswith("sessionward.")}
    assert ours - {_Ending} == set(ERRORS) - {SessionwardError}


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_errors_pickle_with_their_message(cls):
    error = cls("pid 42: must be superuser to terminate", **REQUIRED.get(cls, {}))
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        copy = pickle.loads(pickle.dumps(error, protocol=protocol))
        assert type(copy) is cls
        assert str(copy) == "pid 42: must be superuser to terminate"
        assert copy.args == error.args


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (ConfigurationError, SessionwardError),
        (DriverNotInstalled, ConfigurationError),
        (ConnectionFailed, SessionwardError),
        (AuthenticationFailed, ConnectionFailed),
        (PermissionDenied, SessionwardError),
        (DatabaseInUse, SessionwardError),
        (UnsupportedSetting, ConfigurationError),
        (StatementInterrupted, _Ending),
        (QueryCanceled, StatementInterrupted),
        (StatementTimeout, StatementInterrupted),
        (LockTimeout, StatementInterrupted),
        (Deadlock, StatementInterrupted),
        (SerializationFailure, StatementInterrupted),
        (SessionEnded, _Ending),
        (SessionTerminated, SessionEnded),
        (IdleInTransactionTimeout, SessionEnded),
        (IdleSessionTimeout, SessionEnded),
        (TransactionTimeout, SessionEnded),
        (ServerShuttingDown, SessionEnded),
        (ConnectionLost, SessionEnded),
        (ConnectionReplaced, ConnectionLost),
    ],
)
def test_tree(cls, parent):
    assert cls.__bases__ == (parent,)


def test_branches_are_separate():
    assert not issubclass(PermissionDenied, ConnectionFailed)
    assert not issubclass(ConnectionFailed, ConfigurationError)
    assert not issubclass(ConfigurationError, PermissionDenied)


def test_database_in_use_pickles_with_its_sessions():
    from sessionward.core import Session

    sessions = (Session(pid=7, database="test_app", user="app"), Session(pid=9))
    error = DatabaseInUse("database 'test_app' is in use by 2 sessions", sessions=sessions)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        copy = pickle.loads(pickle.dumps(error, protocol=protocol))
        assert str(copy) == "database 'test_app' is in use by 2 sessions"
        assert copy.sessions == sessions
    assert DatabaseInUse("no sessions known").sessions == ()
