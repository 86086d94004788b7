"""The small protocol every server adapter implements.

Core, API and CLI see servers only through it; adapters turn driver rows into
core values and driver errors into ``sessionward`` errors.  The first methods
read and end sessions; the last four serve ``drop_database``, which calls them
in this order: ``database_exists``, ``block_connections``, ``database_users``
(then ends those sessions), ``drop_database``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from ._session import ServerInfo, Session, Snapshot


class Backend(Protocol):
    @property
    def server(self) -> ServerInfo: ...

    def snapshot(
        self, pids: Collection[int] | None = None, *, transactions_only: bool = False
    ) -> Snapshot:
        """Read every session, background processes included, and who blocks whom.

        ``pids``: read only those sessions (a ``partial`` snapshot; the ones
        gone are left out), each as exactly as a whole snapshot would show
        it.  Lock waits still name their blockers by pid.
        ``transactions_only``: read only the sessions with an open transaction
        (also a ``partial`` snapshot).
        """
        ...

    def cancel(self, pid: int, *, started_at: str | None = None) -> bool:
        """Ask ``pid`` to stop its statement; False when no such session exists.

        ``started_at`` (from the snapshot) makes a reused pid count as gone
        instead of signalling a newer session.  Raise ``PermissionDenied``
        when the role may not signal it.
        """
        ...

    def terminate(self, pid: int, *, started_at: str | None = None) -> bool:
        """Ask ``pid`` to end its session; False when no such session exists.

        ``started_at`` as for ``cancel``.  Raise ``PermissionDenied`` when the
        role may not signal it.
        """
        ...

    def terminate_many(self, targets: Sequence[tuple[int, str | None]]) -> set[int] | None:
        """Ask each ``(pid, started_at)`` to end in one statement; return the pids
        signalled (the others were gone), or ``None`` when the server ends one
        session per statement, so the caller signals each with ``terminate``.

        Raise ``PermissionDenied`` when the role may not signal one of them:
        some may have been signalled already, so the caller signals each
        again singly (a second request is harmless).
        """
        ...

    def foresee_refusals(self, action: str, sessions: Sequence[Session]) -> dict[int, str]:
        """For a dry run: which ``sessions`` the server would refuse to let this login
        ``action`` (``cancel`` or ``terminate``), each with the reason naming the
        missing privilege; the others are left out.  Signals nothing.

        When the login's privileges cannot be read with certainty (MariaDB/MySQL
        roles), a session is left out: the real run will find out.
        """
        ...

    def try_leader_lock(self, name: str) -> bool:
        """Take the server lock ``name`` without waiting, held until this connection ends;
        False when another connection holds it.  Call it only until it succeeds."""
        ...

    def probe(self, pids: Collection[int]) -> dict[int, str | None]:
        """For each pid still present, a token naming its running statement.

        The token is ``None`` when the session runs nothing; a new statement
        gets a new token, so a cancel is confirmed when the token changes.
        """
        ...

    def wait_for_exit(
        self, pid: int, *, timeout_seconds: float, started_at: str | None = None
    ) -> None:
        """Wait a little for ``pid``, a session already told to terminate, to exit.

        Return when it exited, when the timeout passed, or earlier (callers
        probe again): PostgreSQL 14+ waits on the server, others sleep a poll
        interval.
        """
        ...

    def database_exists(self, name: str) -> bool:
        """Whether database (MySQL: schema) ``name`` exists.

        Raise ``ConfigurationError`` when it is the one this connection uses,
        one the server itself needs (``template0``, ``mysql``…), or a name
        longer than the server keeps whole; ``PermissionDenied`` when this
        login may not drop it (or, not allowed to see it, cannot tell).  Every
        method taking ``name`` refuses an over-long one the same way.
        """
        ...

    def block_connections(self, name: str) -> Callable[[], None]:
        """Keep new sessions off ``name`` until it is dropped; return what undoes that.

        PostgreSQL turns ``ALLOW_CONNECTIONS`` off and clears the template
        flag (``PermissionDenied`` unless owner or superuser); a server that
        cannot refuse logins per database does nothing.
        """
        ...

    def database_users(self, name: str) -> tuple[frozenset[int], tuple[str, ...]]:
        """The pids of the sessions using ``name``, and notes on what could not be seen.

        Sessions connected to it and, on MariaDB/MySQL, those holding metadata
        locks on its objects.  Never our own session.
        """
        ...

    def drop_database(self, name: str, *, force: bool, if_exists: bool) -> None:
        """Drop ``name``; with ``force`` the server ends whatever session is still on it.

        Raise ``DatabaseInUse`` when sessions, locks or prepared transactions
        keep it, without waiting long for them.
        """
        ...

    def close(self) -> None: ...
