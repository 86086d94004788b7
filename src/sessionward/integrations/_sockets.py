"""A connection's socket, for integrations that cannot import SQLAlchemy: found from the
address the server reports, looked at without a round trip, given keepalives.

The drivers' own async pools (``sessionward.asyncpg``, ``sessionward.psycopg``'s
``async_pool``) must work without SQLAlchemy installed, so they cannot use
``integrations.sqlalchemy._liveness`` (whose package imports SQLAlchemy).  The rules
are the same; see that module's docstring for why each holds.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import stat
from typing import Any

from ..core import Timeouts
from ._timeouts import round_up

#: Anything to read, or an error or hang-up on the socket.
_POLL_EVENTS = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
#: PostgreSQL's ErrorResponse message type: a FATAL on an idle session.
_PG_ERROR_MESSAGE = b"E"
#: A TLS record starts with its content type and major version 3 (see ``_liveness``).
_TLS_RECORD_TYPES = frozenset({20, 21, 22, 23})
_TLS_MAJOR_VERSION = b"\x03"
#: Where this process's open descriptors are listed (Linux, then macOS and the BSDs).
_FD_DIRECTORIES = ("/proc/self/fd", "/dev/fd")
_KEEPIDLE = getattr(socket, "TCP_KEEPIDLE", getattr(socket, "TCP_KEEPALIVE", None))
_KEEPINTVL = getattr(socket, "TCP_KEEPINTVL", None)
_KEEPCNT = getattr(socket, "TCP_KEEPCNT", None)
_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", None)


def find_socket(client_address: str, server_port: int) -> int | None:
    """The descriptor of this process's one TCP socket whose local end is
    ``client_address`` (``ip:port``) and whose peer's port is ``server_port``; None
    when the address is not an IP and port, or when not exactly one socket matches.

    >>> find_socket("localhost", 5432) is None
    True
    """
    host, _, port_text = client_address.rpartition(":")
    if not port_text.isdigit() or not host:
        return None
    port = int(port_text)
    try:
        ip = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None
    found = [
        fd
        for fd in _descriptors()
        if (ends := _tcp_ends(fd)) is not None
        and ends[0][1] == port
        and ends[1][1] == server_port
        and _same_ip(ends[0][0], ip)
    ]
    return found[0] if len(found) == 1 else None


def _tcp_ends(fd: int) -> tuple[Any, Any] | None:
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return None
        duplicate = os.dup(fd)
    except OSError:
        return None
    try:
        sock = socket.socket(fileno=duplicate)
    except OSError:  # closed and reused since the fstat
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


def pg_ended_while_idle(fd: int) -> bool:
    """Whether the PostgreSQL server already ended this idle session: an error message
    or the end of the stream waits on the socket (peeked, not consumed)."""
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            head = sock.recv(2, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset by the peer
    if head == b"":
        return True
    if head[0] in _TLS_RECORD_TYPES and head[1:2] == _TLS_MAJOR_VERSION:
        return False
    return head[:1] == _PG_ERROR_MESSAGE


def socket_options(timeouts: Timeouts) -> list[tuple[int, int, int]]:
    """``(level, option, value)`` for ``setsockopt``: keepalives and TCP user timeout.

    >>> len(socket_options(Timeouts())) >= 2
    True
    """
    options: list[tuple[int, int, int]] = []
    tcp = socket.IPPROTO_TCP
    if timeouts.keepalives:
        options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
        for option, value in (
            (_KEEPIDLE, timeouts.keepalive_idle_seconds),
            (_KEEPINTVL, timeouts.keepalive_interval_seconds),
        ):
            if option is not None and value is not None:
                options.append((tcp, option, round_up(value)))
        if _KEEPCNT is not None and timeouts.max_keepalive_probes is not None:
            options.append((tcp, _KEEPCNT, timeouts.max_keepalive_probes))
    if _USER_TIMEOUT is not None and timeouts.tcp_user_timeout_seconds is not None:
        options.append((tcp, _USER_TIMEOUT, round_up(timeouts.tcp_user_timeout_seconds * 1000)))
    return options


def set_socket_options(fd: int, options: list[tuple[int, int, int]]) -> None:
    """``setsockopt`` on the socket behind ``fd``, through a duplicate of it (options
    belong to the socket, so the driver's descriptor sees them)."""
    with socket.socket(fileno=os.dup(fd)) as sock:  # closing the duplicate only
        for level, option, value in options:
            sock.setsockopt(level, option, value)
