"""Tell whether an idle DB-API connection was ended by the server, without a round trip.

An idle client connection has nothing to read: the server speaks only when
asked.  When the server ends the session (``pg_terminate_backend``, a restart,
an idle timeout), it sends its last words and closes the socket, so the socket
turns readable.  One ``poll()`` with a zero timeout sees that; no statement is
sent.  Anything readable is only a suspicion (a ``NOTIFY`` or a parameter
change also arrives unasked): the caller confirms it with a real round trip.

Only public driver API is read: ``fileno()`` (psycopg 3, psycopg2,
mysqlclient), ``closed``/``broken`` (psycopg), ``closed`` (psycopg2), ``open``
(PyMySQL, mysqlclient).  PyMySQL has no public ``fileno()``: its connections are ``UNKNOWN``
and the caller falls back to a ping.
"""

from __future__ import annotations

import enum
import select
from typing import Any


class Liveness(enum.Enum):
    """What a look at a connection's socket says."""

    #: The driver already knows the connection is closed or broken.
    CLOSED = "closed"
    #: Nothing to read and no hang-up: the server has not ended the session.
    QUIET = "quiet"
    #: Data or a hang-up is waiting: probably ended; confirm with a round trip.
    READABLE = "readable"
    #: The driver gives no socket to look at.
    UNKNOWN = "unknown"


_POLL_EVENTS = getattr(select, "POLLIN", 1) | getattr(select, "POLLPRI", 2)


def liveness(raw: Any) -> Liveness:
    """Look at a raw driver connection (``wrapper.connection`` in Django) without using it.

    >>> class Closed:
    ...     closed = 1
    >>> liveness(Closed())
    <Liveness.CLOSED: 'closed'>
    >>> liveness(object())
    <Liveness.UNKNOWN: 'unknown'>
    """
    if raw is None or _driver_says_closed(raw):
        return Liveness.CLOSED
    fileno = getattr(raw, "fileno", None)
    if not callable(fileno):
        return Liveness.UNKNOWN
    try:
        fd = int(fileno())
    except Exception:  # a closed psycopg2 connection raises here
        return Liveness.CLOSED
    if fd < 0:
        return Liveness.CLOSED
    return socket_liveness(fd)


def socket_liveness(fd: int) -> Liveness:
    """``QUIET`` when nothing waits on the socket ``fd``, else ``READABLE`` (or ``CLOSED``)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, _POLL_EVENTS)
        try:
            events = poller.poll(0)
        except OSError:
            return Liveness.CLOSED
        if not events:
            return Liveness.QUIET
        mask = events[0][1]
        return Liveness.CLOSED if mask & select.POLLNVAL else Liveness.READABLE
    try:  # pragma: no cover - Windows has no poll()
        readable, _, failed = select.select([fd], [], [fd], 0)
    except (OSError, ValueError):  # pragma: no cover
        return Liveness.CLOSED
    return Liveness.READABLE if readable or failed else Liveness.QUIET  # pragma: no cover


def _driver_says_closed(raw: Any) -> bool:
    broken = getattr(raw, "broken", None)  # psycopg 3
    if broken is True:
        return True
    closed = getattr(raw, "closed", None)  # psycopg 3 (bool), psycopg2 (int)
    if isinstance(closed, (bool, int)) and closed:
        return True
    is_open = getattr(raw, "open", None)  # PyMySQL (bool), mysqlclient (int)
    return isinstance(is_open, (bool, int)) and not is_open
