"""The one exception tree of sessionward.

::

    SessionwardError
    ├── ConfigurationError          bad input: a URL, a filter, a duration, a missing driver
    │   ├── DriverNotInstalled      the extra for this server is not installed
    │   └── UnsupportedSetting      the server cannot honour a timeout (names the version)
    ├── ConnectionFailed            the server could not be reached or refused the login
    │   └── AuthenticationFailed    wrong user or password
    ├── PermissionDenied            the role lacks a privilege the action needs
    ├── DatabaseInUse               sessions, locks or prepared transactions keep a database
    │                               from being dropped; nothing was dropped
    ├── CommitOutcomeUnknown        the connection died during COMMIT: the transaction may
    │                               or may not have been applied; never rerun blindly
    ├── ConcurrentUse               one connection used from two threads at once (a debug check)
    ├── StatementInterrupted        the statement ended; the connection survives
    │   ├── QueryCanceled           pg_cancel_backend, KILL QUERY
    │   ├── StatementTimeout        statement_timeout, max_statement_time, max_execution_time
    │   ├── LockTimeout             lock_timeout, innodb_lock_wait_timeout, NOWAIT
    │   ├── Deadlock                the server broke a deadlock by failing this transaction
    │   └── SerializationFailure    a concurrent update made this transaction unserializable
    └── SessionEnded                the connection is gone
        ├── SessionTerminated       pg_terminate_backend, fast shutdown, KILL (1927)
        ├── IdleInTransactionTimeout
        ├── IdleSessionTimeout
        ├── TransactionTimeout
        ├── ServerShuttingDown      crash restart, starting up, shutting down
        ├── ConnectionLost          no reason from the server: network, KILL and restart on
        │                           MariaDB/MySQL (2006, 2013), a connection already closed
        └── PoolerEnded             the pooler (PgBouncer), not the server, closed it (08P01)
            ├── PoolerWaitTimeout   query_wait_timeout: no server connection came free
            ├── PoolerIdleTimeout   client_idle_timeout, idle_transaction_timeout
            ├── PoolerServerLost    server conn crashed?: the server link under it broke
            ├── PoolerKilled        the admin console: KILL, KILL_CLIENT
            └── PoolerRefused       at login: unsupported startup parameter, server_login_retry,
                                    max_client_conn

The ending classes (``StatementInterrupted``, ``SessionEnded`` and below) carry
two facts on the class, so ``classify()`` can answer without an instance:

``connection_usable``
    The same connection can run statements again.  On PostgreSQL an open
    transaction refuses every statement (``25P02``) until ``ROLLBACK``; on
    MariaDB/MySQL only the failed statement was undone and the transaction is
    still open, so roll it back before going on.

``transaction_retry_safe``
    Rolling back and rerunning the *whole* transaction from its start applies
    it at most once: nothing of it can have committed.  For connection-level
    endings the server has already rolled it back.  ``ConnectionLost`` says
    ``False``: with no word from the server, a statement in flight in
    autocommit mode may still have committed there.  Neither fact covers a
    failure raised by ``COMMIT`` itself: whatever the class, the outcome of an
    interrupted ``COMMIT`` is unknown.

Errors carry a message and a few plain attributes so they pickle across
processes; the driver error they were made from stays as ``__cause__`` (and is
not pickled).  At the CLI edge every ``SessionwardError`` becomes one line on
stderr and a non-zero exit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ._session import Session


class SessionwardError(Exception):
    """Base of every error sessionward raises on purpose."""


class ConfigurationError(SessionwardError):
    """The caller asked for something that cannot work as stated."""


class DriverNotInstalled(ConfigurationError):
    """The database driver for a server kind is missing."""


class UnsupportedSetting(ConfigurationError):
    """A timeout the server (or this server version) cannot honour.

    ``setting`` names the server setting (``transaction_timeout``); ``server``
    names the server and version when known (``PostgreSQL 15.20``).
    """

    def __init__(self, message: str, *, setting: str, server: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting
        self.server = server

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, {"setting": self.setting, "server": self.server}))


class ConnectionFailed(SessionwardError):
    """The server could not be reached, or it refused the connection."""


class AuthenticationFailed(ConnectionFailed):
    """The server rejected the user name or password."""


class PermissionDenied(SessionwardError):
    """The connected role lacks a privilege the action needs."""


class DatabaseInUse(SessionwardError):
    """A database was not dropped because something still uses it.

    ``sessions`` lists the sessions seen using it, when known; it travels in
    the instance dictionary, so the error still pickles with its message.
    """

    def __init__(self, message: str, *, sessions: tuple[Session, ...] = ()) -> None:
        super().__init__(message)
        self.sessions = sessions


class CommitOutcomeUnknown(SessionwardError):
    """The connection was lost while ``COMMIT`` was in flight.

    The server may have applied the transaction or not; rerunning it could
    apply it twice.  Raised by sessionward's retrying wrappers instead of a
    retry; the ending that interrupted the ``COMMIT`` is the ``__cause__``.
    Check for the transaction's effect (an idempotency key) before redoing it.
    """


class ConcurrentUse(SessionwardError):
    """One connection (so one ``Session``) was used from two threads at once.

    Raised by ``harden(check_threads=True)`` in the thread that came second,
    before its statement is sent.  Give each thread its own ``Session``
    (``scoped_session``).
    """


class AuditUnavailable(SessionwardError):
    """The reaper's audit (file or table) could not record its decisions, so none was
    acted on."""


class _Ending(SessionwardError):
    """A statement or session the server (or the network) ended."""

    connection_usable: ClassVar[bool]
    transaction_retry_safe: ClassVar[bool]

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        #: The SQLSTATE (``"57P01"``) or MariaDB/MySQL error number (``"2013"``), if any.
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, {"code": self.code}))


class StatementInterrupted(_Ending):
    """The statement ended early; the connection survives.

    Also raised for a PostgreSQL ``57014`` whose text is not one of the two
    English messages (a non-English ``lc_messages``): then it cannot be told
    whether a timeout or a cancel stopped the statement.
    """

    connection_usable = True
    transaction_retry_safe = True


class QueryCanceled(StatementInterrupted):
    """Someone cancelled the statement: ``pg_cancel_backend``, ``KILL QUERY``."""


class StatementTimeout(StatementInterrupted):
    """The statement ran past the session's statement time limit."""


class LockTimeout(StatementInterrupted):
    """The statement waited too long for a lock (or would not wait: ``NOWAIT``)."""


class Deadlock(StatementInterrupted):
    """The server broke a deadlock by failing this transaction; rerun it whole."""


class SerializationFailure(StatementInterrupted):
    """A concurrent change made this transaction unserializable; rerun it whole."""


class SessionEnded(_Ending):
    """The connection is gone: the server ended the session, or the link broke."""

    connection_usable = False
    transaction_retry_safe = True


class SessionTerminated(SessionEnded):
    """The server ended the session: ``pg_terminate_backend``, fast shutdown, ``KILL``."""


class IdleInTransactionTimeout(SessionEnded):
    """The session sat idle inside a transaction past its limit."""


class IdleSessionTimeout(SessionEnded):
    """The session sat idle (outside a transaction) past its limit."""


class TransactionTimeout(SessionEnded):
    """The transaction ran past its limit (PostgreSQL 17+ ``transaction_timeout``)."""


class ServerShuttingDown(SessionEnded):
    """The server crashed, is shutting down or is still starting up."""


class ConnectionLost(SessionEnded):
    """The connection broke without a reason from the server.

    A network failure, or, on MariaDB/MySQL, every server-side ending (``KILL``,
    ``wait_timeout``, a restart): the client library sees only ``2006`` or
    ``2013``.  Also a connection that was already closed when used.
    """

    transaction_retry_safe = False


class ConnectionReplaced(ConnectionLost):
    """A pooled connection sessionward found dead, or due for retirement, as it was handed out.

    Raised in asyncpg's pool ``setup`` hook, the one way to make asyncpg close a
    connection there.  ``sessionward.asyncpg.create_pool``'s pool then acquires
    another, so only a pool made with ``asyncpg.create_pool(**pool_kwargs())``
    lets it reach the caller.
    """


class PoolerEnded(SessionEnded):
    """A connection pooler closed the client's connection; the server did not end it.

    PgBouncer sends its reason as the text of a FATAL ``08P01`` (never
    translated); an unknown reason gives this class.  A session the *server*
    ended is reported through the pooler with the server's own code
    (``SessionTerminated`` …).  Not retry-safe by default: a statement in
    flight may have committed on the server.
    """

    transaction_retry_safe = False


class PoolerWaitTimeout(PoolerEnded):
    """No server connection came free within PgBouncer's ``query_wait_timeout``.

    Nothing of the statement reached the server.
    """

    transaction_retry_safe = True


class PoolerIdleTimeout(PoolerEnded):
    """The client sat idle past PgBouncer's ``client_idle_timeout`` (or, inside a
    transaction, ``idle_transaction_timeout``); the server rolled back."""

    transaction_retry_safe = True


class PoolerServerLost(PoolerEnded):
    """The server connection under the client broke (PgBouncer: "server conn crashed?")."""


class PoolerKilled(PoolerEnded):
    """Someone ended the client from PgBouncer's admin console (``KILL``, ``KILL_CLIENT``)."""

    transaction_retry_safe = True


class PoolerRefused(PoolerEnded):
    """PgBouncer refused the client before anything ran: an unsupported startup
    parameter (``options``), failing server logins (``server_login_retry``),
    ``max_client_conn`` reached."""

    transaction_retry_safe = True


def _rebuild(cls: type[Exception], args: tuple[Any, ...], attributes: dict[str, Any]) -> Exception:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(attributes)
    return error
