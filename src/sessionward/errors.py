"""One hierarchy for every way a database session or statement ends, whatever the driver.

::

    SessionwardError
    ├── ConfigurationError
    │   ├── DriverNotInstalled
    │   └── UnsupportedSetting          a timeout the server cannot honour (names the version)
    ├── ConnectionFailed
    │   └── AuthenticationFailed
    ├── PermissionDenied
    ├── DatabaseInUse
    ├── CommitOutcomeUnknown
    ├── ConcurrentUse
    ├── StatementInterrupted            the statement ended; the connection survives
    │   ├── QueryCanceled               pg_cancel_backend (57014), KILL QUERY (1317)
    │   ├── StatementTimeout            statement_timeout (57014), max_statement_time (1969),
    │   │                               max_execution_time (3024)
    │   ├── LockTimeout                 lock_timeout (55P03), innodb_lock_wait_timeout (1205)
    │   ├── Deadlock                    40P01, 1213
    │   └── SerializationFailure        40001
    └── SessionEnded                    the connection is gone
        ├── SessionTerminated           pg_terminate_backend, fast restart (57P01), KILL (1927)
        ├── IdleInTransactionTimeout    idle_in_transaction_session_timeout (25P03)
        ├── IdleSessionTimeout          idle_session_timeout (57P05), MySQL wait_timeout (4031)
        ├── TransactionTimeout          transaction_timeout (25P04)
        ├── ServerShuttingDown          57P02, 57P03, a login while starting or stopping
        ├── ConnectionLost              no reason from the server: class 08, 2006, 2013, 2055
        │   └── ConnectionReplaced      a pooled connection found dead as it was handed out
        └── PoolerEnded                 PgBouncer closed the client (08P01 and its reason)
            ├── PoolerWaitTimeout       query_wait_timeout
            ├── PoolerIdleTimeout       client_idle_timeout, idle_transaction_timeout
            ├── PoolerServerLost        server conn crashed?
            ├── PoolerKilled            KILL, KILL_CLIENT from the admin console
            └── PoolerRefused           unsupported startup parameter, server_login_retry, …

``classify(error)`` names the class for a raw psycopg 3, psycopg2 or PyMySQL
error, or for one wrapped by SQLAlchemy or Django, without importing any
driver; ``None`` when it is none of these endings.  ``translate()`` re-raises
such errors as ours, ``from`` the original::

    from sessionward.errors import SessionEnded, StatementTimeout, classify, translate

    try:
        cur.execute("SELECT …")
    except Exception as error:
        if classify(error) is StatementTimeout:
            ...

    with translate():
        session.execute(...)       # raises StatementTimeout, SessionTerminated, …

Each ending class says whether the connection is still usable
(``connection_usable``) and whether rolling back and rerunning the whole
transaction is safe (``transaction_retry_safe``).  See
``sessionward.core._errors`` for their exact meaning and
``sessionward.core._classify`` for what is read from each driver.
"""

from .core import (
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
    classify,
    translate,
)

__all__ = [
    "AuthenticationFailed",
    "CommitOutcomeUnknown",
    "ConcurrentUse",
    "ConfigurationError",
    "ConnectionFailed",
    "ConnectionLost",
    "ConnectionReplaced",
    "DatabaseInUse",
    "Deadlock",
    "DriverNotInstalled",
    "IdleInTransactionTimeout",
    "IdleSessionTimeout",
    "LockTimeout",
    "PermissionDenied",
    "PoolerEnded",
    "PoolerIdleTimeout",
    "PoolerKilled",
    "PoolerRefused",
    "PoolerServerLost",
    "PoolerWaitTimeout",
    "QueryCanceled",
    "SerializationFailure",
    "ServerShuttingDown",
    "SessionEnded",
    "SessionTerminated",
    "SessionwardError",
    "StatementInterrupted",
    "StatementTimeout",
    "TransactionTimeout",
    "UnsupportedSetting",
    "classify",
    "translate",
]
