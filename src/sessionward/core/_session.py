"""Session snapshots: what a server said about its sessions at one moment."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from ._origin import Origin

Engine = Literal["postgresql", "mariadb", "mysql"]

#: Session states, shared by every engine.  PostgreSQL reports them as they are;
#: the MySQL adapter derives them from the processlist command and InnoDB.
ACTIVE = "active"
IDLE = "idle"
IDLE_IN_TRANSACTION = "idle in transaction"
IDLE_IN_TRANSACTION_ABORTED = "idle in transaction (aborted)"
STATES = (
    ACTIVE,
    IDLE,
    IDLE_IN_TRANSACTION,
    IDLE_IN_TRANSACTION_ABORTED,
    "fastpath function call",
    "disabled",
)
IDLE_STATES = frozenset({IDLE, IDLE_IN_TRANSACTION, IDLE_IN_TRANSACTION_ABORTED})

#: Backend kinds: ``client`` is an ordinary application session,
#: ``replication`` a WAL sender or binlog dump thread (ended only when asked
#: for), ``background`` a server process (never ended), ``platform`` a session
#: of a managed platform's own logins (``rdsadmin`` …; never ended).
CLIENT = "client"
REPLICATION = "replication"
BACKGROUND = "background"
PLATFORM = "platform"


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Which server a snapshot came from."""

    engine: Engine
    version: str
    #: Comparable version, ``major * 10000 + minor * 100 + patch`` for MySQL,
    #: ``server_version_num`` for PostgreSQL.
    version_num: int
    #: The session sessionward itself uses: never listed, never ended.
    own_pid: int


@dataclass(frozen=True, slots=True)
class Session:
    """One server session as seen in a snapshot.

    Ages are float seconds measured by the server clock at snapshot time, or
    ``None`` where they do not apply (no transaction open) or the server does
    not tell (session age on MariaDB).
    """

    pid: int
    backend_kind: str = CLIENT
    backend_type: str = "client backend"
    database: str | None = None
    user: str | None = None
    application: str | None = None
    #: IP address of the client, or ``None`` for a local (Unix socket) client.
    client_addr: str | None = None
    client_port: int | None = None
    state: str | None = None
    session_age_seconds: float | None = None
    xact_age_seconds: float | None = None
    #: Time since the state last changed: for an idle session, how long it idles.
    state_age_seconds: float | None = None
    query_age_seconds: float | None = None
    #: What the session waits for, ``"Lock:transactionid"`` or a MySQL stage.
    wait: str | None = None
    wait_age_seconds: float | None = None
    #: The lock it waits on, when known: ``"relation public.accounts"``.
    wait_target: str | None = None
    blocked_by: tuple[int, ...] = ()
    query: str | None = None
    is_superuser: bool | None = None
    #: How many transactions this session holds the xmin horizon back (PostgreSQL).
    xmin_age: int | None = None
    #: When the session began (ISO 8601, server clock).  With the pid it names
    #: one session even after the pid is reused; ``None`` where ids are never
    #: reused (MariaDB/MySQL) or the server hides it.
    started_at: str | None = None
    #: Who holds the session, as its client said (``application_name``, a
    #: sqlcommenter comment in the statement text): untrusted, never a reason
    #: to spare or end a session by itself.
    origin: Origin | None = None

    @property
    def is_client(self) -> bool:
        return self.backend_kind == CLIENT

    @property
    def is_idle(self) -> bool:
        return self.state in IDLE_STATES

    @property
    def idle_age_seconds(self) -> float | None:
        """How long the session has been idle, in or out of a transaction."""
        return self.state_age_seconds if self.is_idle else None

    @property
    def running_age_seconds(self) -> float | None:
        """How long the current statement has run; ``None`` unless active."""
        return self.query_age_seconds if self.state == ACTIVE else None

    @property
    def client(self) -> str:
        """The client as a person writes it: ``10.0.0.7:51234`` or ``local``."""
        if self.client_addr is None:
            return "local"
        if self.client_port is None:
            return self.client_addr
        if ":" in self.client_addr:
            return f"[{self.client_addr}]:{self.client_port}"
        return f"{self.client_addr}:{self.client_port}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every session of one server at one moment, and the lock waits between them."""

    server: ServerInfo
    taken_at: dt.datetime
    sessions: tuple[Session, ...]
    #: Features the adapter could not read (a missing privilege, an absent
    #: plugin), each with the reason: the snapshot is partial there.
    degraded: tuple[str, ...] = ()
    #: Only the sessions asked for were read (``Backend.snapshot(pids=...)``):
    #: a session missing from it may still exist.
    partial: bool = False
    #: Why other users' sessions are left out of ``sessions`` altogether (the
    #: privilege that would list them, named); a pid not listed may then
    #: still exist.  Empty when the server listed every session.
    unlisted: str = ""
    #: Why other users' sessions are listed without state, query, times or
    #: client (the privilege that would show them, named): filters on those
    #: cannot choose them.  Empty when every session is shown whole.
    undetailed: str = ""
    _by_pid: dict[int, Session] = field(init=False, repr=False, compare=False)
    _blocking: dict[int, tuple[int, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_pid = {session.pid: session for session in self.sessions}
        blocking: dict[int, list[int]] = {}
        for session in self.sessions:
            for blocker in session.blocked_by:
                blocking.setdefault(blocker, []).append(session.pid)
        object.__setattr__(self, "_by_pid", by_pid)
        object.__setattr__(
            self, "_blocking", {pid: tuple(sorted(w)) for pid, w in blocking.items()}
        )

    def get(self, pid: int) -> Session | None:
        return self._by_pid.get(pid)

    def __contains__(self, pid: object) -> bool:
        return pid in self._by_pid

    def blocking(self, pid: int) -> tuple[int, ...]:
        """The pids that wait directly on ``pid``."""
        return self._blocking.get(pid, ())

    def with_sessions(self, sessions: tuple[Session, ...]) -> Snapshot:
        """Return a snapshot of the same moment holding only ``sessions``."""
        return Snapshot(
            server=self.server,
            taken_at=self.taken_at,
            sessions=sessions,
            degraded=self.degraded,
            partial=self.partial,
            unlisted=self.unlisted,
            undetailed=self.undetailed,
        )
