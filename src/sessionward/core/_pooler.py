"""PgBouncer's view of its clients, joined with the server's view of its sessions.

PgBouncer's admin console lists its clients (``SHOW CLIENTS``) and its server
connections (``SHOW SERVERS``); a client holding a server connection names it
in ``link``.  A server connection's ``local_addr``/``local_port`` is the
socket PostgreSQL sees as ``client_addr``/``client_port`` of the session, so
the two views join without trusting anything the application sends.
``remote_pid`` (the backend pid, when PgBouncer knows it) is the fallback when
the addresses do not line up (NAT, a pooler in another network namespace).

Pure: rows arrive as dictionaries keyed by the console's column names, which
differ between PgBouncer versions; a missing column reads as unknown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import ConfigurationError
from ._session import Session, Snapshot

#: ``KILL_CLIENT`` appeared in PgBouncer 1.24.
KILL_CLIENT_SINCE = (1, 24, 0)
#: PgBouncer's client state for a client queued for a server connection.
WAITING = "waiting"
#: The console's own pseudo-database: its clients never hold a server connection.
ADMIN_DATABASE = "pgbouncer"
_VERSION = re.compile(r"PgBouncer\s+(\d+)\.(\d+)(?:\.(\d+))?")


def parse_pooler_version(text: str) -> tuple[int, int, int]:
    """The version ``SHOW VERSION`` reports, as a comparable triple.

    >>> parse_pooler_version("PgBouncer 1.18.0")
    (1, 18, 0)
    >>> parse_pooler_version("PgBouncer 1.24")
    (1, 24, 0)
    >>> parse_pooler_version("PostgreSQL 15")
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: not a PgBouncer version: 'PostgreSQL 15'
    """
    found = _VERSION.search(text)
    if found is None:
        raise ConfigurationError(f"not a PgBouncer version: {text[:60]!r}")
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch or 0)


@dataclass(frozen=True, slots=True)
class PoolerClient:
    """One client connection of the pooler (a row of ``SHOW CLIENTS``)."""

    #: The console's handle on it: ``ptr`` (``0x…``); servers name it in ``link``.
    ptr: str
    user: str | None = None
    database: str | None = None
    #: ``active``, ``waiting``, ``idle``, ``used``, ``active_cancel_req`` …
    state: str | None = None
    addr: str | None = None
    port: int | None = None
    application: str | None = None
    #: How long it has waited for a server connection (``wait`` + ``wait_us``).
    wait_seconds: float = 0.0
    #: ``ptr`` of the server connection it holds, if any.
    link: str | None = None
    #: The ``id`` column ``KILL_CLIENT`` takes (PgBouncer 1.24+), else ``None``.
    id: int | None = None

    @property
    def waiting(self) -> bool:
        """Queued for a server connection."""
        return self.state == WAITING

    @property
    def client(self) -> str:
        """``addr:port`` as a person writes it."""
        if self.addr is None:
            return "unix"
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"{host}:{self.port}" if self.port else host


@dataclass(frozen=True, slots=True)
class PoolerServer:
    """One server connection of the pooler (a row of ``SHOW SERVERS``)."""

    ptr: str
    user: str | None = None
    database: str | None = None
    state: str | None = None
    #: The pooler's end of the socket: PostgreSQL's ``client_addr``/``client_port``.
    local_addr: str | None = None
    local_port: int | None = None
    #: The backend pid, when PgBouncer knows it (0 in the console means unknown).
    remote_pid: int | None = None
    #: ``ptr`` of the client holding it, if any.
    link: str | None = None


@dataclass(frozen=True, slots=True)
class PoolerSnapshot:
    """What one PgBouncer said about its clients and server connections."""

    version: tuple[int, int, int]
    clients: tuple[PoolerClient, ...] = ()
    servers: tuple[PoolerServer, ...] = ()

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)

    @property
    def has_kill_client(self) -> bool:
        return self.version >= KILL_CLIENT_SINCE


@dataclass(frozen=True, slots=True)
class PooledSession:
    """One row of the joined view.

    A server session (``session``) with the pooler client holding it, if any;
    or a pooler client with no server session: waiting for one (``waiting``),
    or between transactions in transaction mode.
    """

    session: Session | None = None
    client: PoolerClient | None = None
    server: PoolerServer | None = None

    @property
    def waiting(self) -> bool:
        return self.client is not None and self.client.waiting


def client_from_row(row: Mapping[str, Any]) -> PoolerClient:
    """A ``SHOW CLIENTS`` row (column name → value) as a ``PoolerClient``.

    >>> client_from_row({"ptr": "0x1", "state": "waiting", "wait": 2, "wait_us": 500000,
    ...                  "link": "", "addr": "10.0.0.7", "port": 5123}).wait_seconds
    2.5
    """
    wait = _int(row.get("wait")) or 0
    wait_us = _int(row.get("wait_us")) or 0
    return PoolerClient(
        ptr=str(row.get("ptr") or ""),
        user=_text(row.get("user")),
        database=_text(row.get("database")),
        state=_text(row.get("state")),
        addr=_text(row.get("addr")),
        port=_int(row.get("port")),
        application=_text(row.get("application_name")),
        wait_seconds=wait + wait_us / 1_000_000,
        link=_text(row.get("link")),
        id=_int(row.get("id")),
    )


def server_from_row(row: Mapping[str, Any]) -> PoolerServer:
    """A ``SHOW SERVERS`` row as a ``PoolerServer``."""
    return PoolerServer(
        ptr=str(row.get("ptr") or ""),
        user=_text(row.get("user")),
        database=_text(row.get("database")),
        state=_text(row.get("state")),
        local_addr=_text(row.get("local_addr")),
        local_port=_int(row.get("local_port")),
        remote_pid=_int(row.get("remote_pid")) or None,
        link=_text(row.get("link")),
    )


def join_pooler(snapshot: Snapshot, pooler: PoolerSnapshot) -> tuple[PooledSession, ...]:
    """Pair every server session with the pooler client holding it.

    Every session of ``snapshot`` comes once (with ``client`` ``None`` when no
    pooler client holds it: a direct connection, or a pooled server connection
    idle in the pool), then every pooler client that holds no server session:
    waiting ones first, longest wait first.  Clients of the admin console
    itself (database ``pgbouncer``) are left out.
    """
    by_socket: dict[tuple[str | None, int | None], Session] = {
        (session.client_addr, session.client_port): session
        for session in snapshot.sessions
        if session.client_port is not None
    }
    clients = {client.ptr: client for client in pooler.clients if client.ptr}
    held: dict[int, tuple[PoolerServer, PoolerClient | None]] = {}
    for link in pooler.servers:
        found = by_socket.get((link.local_addr, link.local_port))
        if found is None and link.remote_pid is not None:
            found = snapshot.get(link.remote_pid)
        if found is not None:
            held[found.pid] = (link, clients.get(link.link or ""))
    rows: list[PooledSession] = []
    holding: set[str] = set()
    for session in snapshot.sessions:
        server, client = held.get(session.pid, (None, None))
        if client is not None:
            holding.add(client.ptr)
        rows.append(PooledSession(session=session, client=client, server=server))
    loose = [
        client
        for client in pooler.clients
        if client.ptr not in holding and client.database != ADMIN_DATABASE
    ]
    loose.sort(key=lambda c: (not c.waiting, -c.wait_seconds, c.ptr))
    rows.extend(PooledSession(client=client) for client in loose)
    return tuple(rows)


def find_pooler_client(pooler: PoolerSnapshot, spec: str) -> PoolerClient:
    """The client ``spec`` names: ``addr:port``, ``[v6]:port``, its ``ptr`` or its ``id``.

    >>> p = PoolerSnapshot((1, 18, 0), clients=(PoolerClient("0xa", addr="127.0.0.1", port=5),))
    >>> find_pooler_client(p, "127.0.0.1:5").ptr
    '0xa'
    >>> find_pooler_client(p, "127.0.0.1:6")
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: no client 127.0.0.1:6 on the pooler
    """
    for client in pooler.clients:
        names = {client.client, client.ptr, str(client.id) if client.id is not None else ""}
        if spec in names:
            return client
    raise ConfigurationError(f"no client {spec} on the pooler")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text or None


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
