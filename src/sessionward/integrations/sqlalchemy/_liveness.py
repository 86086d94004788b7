"""Whether a pooled connection is still alive, without a round trip to the server.

A server that ends a session (``pg_terminate_backend``, ``KILL``, an idle
timeout, a shutdown or restart) sends an error message and closes the socket.
On an idle connection nothing else is expected, so a socket with something to
read means the session probably ended; a ``poll()`` with a zero timeout looks
at it in about a microsecond.

Where the socket comes from, through public API only:

- psycopg 3 and psycopg2: ``connection.fileno()``, plus the driver's own
  ``closed`` / ``broken`` flags.
- PyMySQL keeps its socket private (``_sock``).  ``harden()`` therefore makes
  the socket itself (see ``_pymysql``) and so knows the descriptor.  A
  connection made some other way has no known socket and is pinged instead.

Something to read is not proof: PostgreSQL also sends ``LISTEN`` notifications
unasked.  A readable socket is therefore confirmed with one ping, which costs a
round trip only on a connection that is most likely dead anyway.
"""

from __future__ import annotations

import operator
import os
import select
import socket
from collections.abc import Callable
from typing import Any

#: Anything to read, or an error or hang-up on the socket.
_POLL_EVENTS = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP


def descriptor(driver: str, dbapi_connection: Any) -> int | None:
    """The socket's file descriptor of a new connection, when the driver tells it."""
    if driver in ("psycopg", "psycopg2"):
        try:
            fd = dbapi_connection.fileno()
        except Exception:
            return None
        return fd if isinstance(fd, int) and fd >= 0 else None
    return None


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
    if driver == "pymysql":
        return lambda connection: not connection.open
    return lambda connection: False


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
    if driver in ("psycopg", "psycopg2"):
        return head[:1] == _PG_ERROR_MESSAGE
    if getattr(dbapi_connection, "ssl", False):
        return False
    return len(head) > _MYSQL_ERROR_OFFSET and head[_MYSQL_ERROR_OFFSET] == _MYSQL_ERROR_MARKER
