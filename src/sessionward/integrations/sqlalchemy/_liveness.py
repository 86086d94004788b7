"""Whether a pooled connection is still alive, without a round trip to the server.

A server that ends a session (``pg_terminate_backend``, ``KILL``, an idle
timeout, a shutdown or restart) sends an error message and closes the socket.
On an idle connection nothing else is expected, so a socket with something to
read means the session probably ended; a ``poll()`` with a zero timeout looks
at it in about a microsecond.

Where the socket comes from, through public API only:

- psycopg 3, psycopg2 and mysqlclient: ``connection.fileno()``, plus the
  driver's own ``closed`` / ``broken`` / ``open`` flags.
- PyMySQL keeps its socket private (``_sock``) and ``harden()`` does not make
  its connections (they come from the engine's own path, whatever stands on
  it).  The server names the client's address of the session
  (``information_schema.PROCESSLIST.HOST``, ``ip:port`` over TCP); the one
  socket in this process with that local address and the server's port is the
  connection's (``find_socket``, from ``/proc/self/fd`` or ``/dev/fd``).  When
  none or several match (a Unix socket, a proxy or NAT between, a server that
  resolves client names, two servers reached from one local port), the
  connection has no known socket and is pinged at checkout instead.

Something to read is not proof: PostgreSQL also sends ``LISTEN`` notifications
unasked.  A readable socket is therefore confirmed with one ping, which costs a
round trip only on a connection that is most likely dead anyway.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import operator
import os
import select
import socket
import stat
from collections.abc import Callable
from typing import Any

#: Anything to read, or an error or hang-up on the socket.
_POLL_EVENTS = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP


def descriptor(driver: str, dbapi_connection: Any) -> int | None:
    """The socket's file descriptor of a new connection, when the driver tells it."""
    if driver in ("psycopg", "psycopg2", "mysqldb", "psycopg_async"):
        try:
            fd = driver_connection(dbapi_connection).fileno()
        except Exception:
            return None
        return fd if isinstance(fd, int) and fd >= 0 else None
    return None


#: The connection class of each driver, by module and name: imported only when asked.
_CONNECTION_CLASSES = {
    "psycopg": ("psycopg", "Connection"),
    "psycopg2": ("psycopg2.extensions", "connection"),
    "pymysql": ("pymysql.connections", "Connection"),
    "mysqldb": ("MySQLdb.connections", "Connection"),
    "asyncpg": ("asyncpg.connection", "Connection"),
    "psycopg_async": ("psycopg", "AsyncConnection"),
    "aiomysql": ("aiomysql.connection", "Connection"),
    "asyncmy": ("asyncmy.connection", "Connection"),
}

#: Async drivers: SQLAlchemy hands listeners its adapter (``AdaptedConnection``), whose
#: public ``driver_connection`` is the driver's own connection.
ASYNC_DRIVERS = frozenset({"asyncpg", "psycopg_async", "aiomysql", "asyncmy"})


def driver_connection(dbapi_connection: Any) -> Any:
    """The driver's own connection: the one given, or the one an async adapter wraps."""
    adapted = getattr(type(dbapi_connection), "driver_connection", None)
    return dbapi_connection.driver_connection if adapted is not None else dbapi_connection


@functools.cache
def connection_class(driver: str) -> type | None:
    """The driver's own connection class, or None when the driver cannot be imported."""
    module_name, name = _CONNECTION_CLASSES[driver]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    found = getattr(module, name, None)
    return found if isinstance(found, type) else None


def is_driver_connection(driver: str, dbapi_connection: Any) -> bool:
    """Whether ``dbapi_connection`` is the driver's own (a subclass, or a proxy that
    says so, as instrumentation's do), not a mock or a stand-in."""
    made = connection_class(driver)
    if made is None:
        return False
    if driver in ASYNC_DRIVERS:
        try:
            dbapi_connection = driver_connection(dbapi_connection)
        except Exception:
            return False
    return isinstance(dbapi_connection, made)


def closed_check(driver: str) -> Callable[[Any], Any]:
    """For ``driver``: a function whose result is true when the driver itself already
    knows a connection is unusable.

    It runs at every checkout, so where it can it is an ``attrgetter`` (no Python
    frame) rather than the driver's ``closed`` property.
    """
    if driver == "psycopg":
        # What ``connection.closed`` reads (a broken connection is closed too): the
        # libpq status, which is ``ConnStatus.OK`` (0) on a usable connection.
        return operator.attrgetter("pgconn.status")
    if driver == "psycopg2":
        return operator.attrgetter("closed")  # 0, or 1 closed, 2 broken
    if driver in ("pymysql", "mysqldb"):
        return lambda connection: not connection.open
    # Async drivers, through SQLAlchemy's adapter: asyncpg marks a connection closed as
    # soon as its event loop sees the server hang up; aiomysql only when closed by us.
    if driver == "asyncpg":
        return lambda connection: connection.driver_connection.is_closed()
    if driver == "psycopg_async":
        return operator.attrgetter("driver_connection.pgconn.status")
    if driver == "aiomysql":
        return operator.attrgetter("driver_connection.closed")
    if driver == "asyncmy":
        return lambda connection: not connection.driver_connection.connected
    return lambda connection: False


def closed_now(driver: str, dbapi_connection: Any) -> Callable[[], Any]:
    """``closed_check(driver)`` bound to one connection of the driver's own: what can be
    found once (the driver's connection behind SQLAlchemy's async adapter, psycopg's
    ``pgconn``) is found here, so a checkout calls no Python function of ours.

    Only for a connection ``is_driver_connection`` accepted: it is asked for its parts now.
    """
    if driver == "asyncpg":
        return driver_connection(dbapi_connection).is_closed  # type: ignore[no-any-return]
    if driver in ("psycopg", "psycopg_async"):
        # The connection keeps its PGconn for life; its status is what ``closed`` reads.
        return functools.partial(getattr, driver_connection(dbapi_connection).pgconn, "status")
    if driver in ("psycopg2", "aiomysql"):
        return functools.partial(getattr, driver_connection(dbapi_connection), "closed")
    return functools.partial(closed_check(driver), dbapi_connection)


#: What a server that resolves client names calls ``localhost``.
_LOOPBACK = ("127.0.0.1", "::1")
#: Where this process's open descriptors are listed (Linux, then macOS and the BSDs).
_FD_DIRECTORIES = ("/proc/self/fd", "/dev/fd")


def find_socket(client_address: str, server_port: int) -> int | None:
    """The descriptor of this process's one TCP socket whose local end is
    ``client_address`` (``ip:port`` as the server shows it) and whose peer's port is
    ``server_port``.

    ``localhost:port`` (a server that resolves client names, as MariaDB does by
    default) stands for either loopback address.  ``None`` when the address is not
    an IP or ``localhost`` and a port (a Unix socket, or another name the server
    resolved), or when not exactly one socket matches: two connections to
    different servers may share a local port, and the wrong socket would vouch for a
    dead session (or, in ``transaction()``, call a live one ended).

    >>> find_socket("localhost", 3306) is None
    True
    >>> find_socket("db.example:41234", 3306) is None
    True
    """
    host, _, port_text = client_address.rpartition(":")
    if not port_text.isdigit() or not host:
        return None
    port = int(port_text)
    ips: tuple[str, ...]
    if host == "localhost":
        ips = _LOOPBACK
    else:
        try:
            ips = (str(ipaddress.ip_address(host.strip("[]"))),)
        except ValueError:
            return None
    found = [
        fd
        for fd in _descriptors()
        if (ends := _tcp_ends(fd)) is not None
        and ends[0][1] == port
        and ends[1][1] == server_port
        and any(_same_ip(ends[0][0], ip) for ip in ips)
    ]
    return found[0] if len(found) == 1 else None


def _tcp_ends(fd: int) -> tuple[Any, Any] | None:
    """The local and peer addresses of ``fd`` when it is a TCP socket, else None."""
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return None
        duplicate = os.dup(fd)
    except OSError:
        return None
    try:
        sock = socket.socket(fileno=duplicate)
    except OSError:  # no longer a socket: closed and reused since the fstat
        os.close(duplicate)
        return None
    with sock:
        if sock.type != socket.SOCK_STREAM or sock.family not in (
            socket.AF_INET,
            socket.AF_INET6,
        ):
            return None
        try:
            return sock.getsockname(), sock.getpeername()
        except OSError:  # not connected
            return None


def _same_ip(local: str, ip: str) -> bool:
    mapped = ipaddress.ip_address(local.split("%", 1)[0])
    if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
        return str(mapped.ipv4_mapped) == ip or str(mapped) == ip
    return str(mapped) == ip


def _descriptors() -> list[int]:
    for directory in _FD_DIRECTORIES:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        return sorted(int(name) for name in names if name.isdigit())
    return []


def poller(fd: int) -> Any:
    """A ``poll`` object on ``fd``: ``poller.poll(0)`` is non-empty when the peer sent
    something or hung up, and never waits."""
    made = select.poll()
    made.register(fd, _POLL_EVENTS)
    return made


#: PostgreSQL's ErrorResponse message type: a FATAL on an idle session.
_PG_ERROR_MESSAGE = b"E"
#: MariaDB/MySQL: a 4-byte packet header, then 0xFF for an error packet.
_MYSQL_ERROR_OFFSET = 4
_MYSQL_ERROR_MARKER = 0xFF
#: A TLS record starts with its content type (alert 21, data 23, ...) and major version 3.
#: No plain message of ours can: a MySQL error packet that long, or a PostgreSQL message
#: of that type, is never sent to an idle session.
_TLS_RECORD_TYPES = frozenset({20, 21, 22, 23})
_TLS_MAJOR_VERSION = b"\x03"


def ended_while_idle(driver: str, dbapi_connection: Any, fd: int | None) -> bool:
    """Whether the server already ended this idle session: it sent an error or closed.

    Looks at the first bytes waiting on the socket without consuming them; only
    an error message or the end of the stream counts, never a notification.
    Encrypted connections show no plain bytes: they are never judged ended.
    """
    if fd is None or not poller(fd).poll(0):
        return False
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            head = sock.recv(_MYSQL_ERROR_OFFSET + 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset by the peer
    if head == b"":
        return True  # the server closed the connection
    if head[0] in _TLS_RECORD_TYPES and head[1:2] == _TLS_MAJOR_VERSION:
        return False  # TLS: nothing to tell from the bytes
    if driver in ("psycopg", "psycopg2"):
        return head[:1] == _PG_ERROR_MESSAGE
    return len(head) > _MYSQL_ERROR_OFFSET and head[_MYSQL_ERROR_OFFSET] == _MYSQL_ERROR_MARKER
