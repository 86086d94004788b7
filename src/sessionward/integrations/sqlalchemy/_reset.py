"""The pool's reset on return, without the ``ROLLBACK`` that follows a commit (MySQL drivers).

SQLAlchemy rolls back every connection returned to its pool.  psycopg and
psycopg2 skip that round trip themselves when no transaction is open; PyMySQL
and mysqlclient always send ``ROLLBACK``, so a one-row transaction costs three
round trips instead of two.  Neither driver says publicly whether anything ran
since the last commit (raw DB-API use included), and on MariaDB even the
server's "in transaction" flag stays off while a read of an Aria table holds a
metadata lock, so neither can be trusted.

What is trusted is the socket: Linux counts the bytes each TCP socket sent
(``TCP_INFO``'s ``tcpi_bytes_sent``).  When SQLAlchemy commits or rolls back
(the ``commit``/``rollback`` engine events, just before the driver sends
``COMMIT``/``ROLLBACK``), the count is noted plus the length of that one
packet.  At return (with ``pool_reset_on_return=None`` and the pool's
``reset`` and ``checkin`` events: SQLAlchemy's documented way to reset
differently) the ``ROLLBACK`` is left out only when the count is exactly
that: nothing at all was sent since, so nothing can be open.  In every
other case (another statement, TLS or compression changing the sizes, a
retransmission, a failed commit, an unknown socket, a closed connection, a
non-Linux system) the connection is rolled back as SQLAlchemy would.

Installed only by the ``sessionward`` plugin, when asked
(``sessionward_skip_rollback_after_commit=true``) and the user did not set
``pool_reset_on_return``: ``harden()`` on an engine already made cannot change
its pool's reset through public API.  Opt-in, because it listens for the
engine's ``commit`` and ``rollback`` events: an engine with such listeners
takes SQLAlchemy's slower path for events on every statement, and no longer
reports itself free of engine events (``engine._has_events``), which
SQLAlchemy's own tests check.
"""

from __future__ import annotations

import functools
import logging
import socket
import struct
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

#: The drivers whose reset is taken over: those that always send ``ROLLBACK``.
DRIVERS = frozenset({"pymysql", "mysqldb"})
#: Where ``harden()`` keeps a connection's socket descriptor (see ``_harden._FD``).
_FD = "sessionward.fd"
#: Where the byte count expected at return is noted, in the pool entry's ``info``.
_EXPECTED = "sessionward.sent_after_end"
#: Whether the ``reset`` event found a rollback due, for the ``checkin`` that follows.
_DUE = "sessionward.rollback_due"

#: A MySQL packet: a 4-byte header, then ``COM_QUERY`` (one byte) and the statement.
_COMMIT_BYTES = 4 + 1 + len(b"COMMIT")
_ROLLBACK_BYTES = 4 + 1 + len(b"ROLLBACK")

#: Linux's ``struct tcp_info``: ``tcpi_bytes_sent`` (a ``__u64``, Linux 4.19+) at offset 200.
_TCP_INFO = getattr(socket, "TCP_INFO", None) if hasattr(socket, "IPPROTO_TCP") else None
_BYTES_SENT_OFFSET = 200
_TCP_INFO_LENGTH = _BYTES_SENT_OFFSET + 8
_unpack_sent = struct.Struct("=Q").unpack_from

logger = logging.getLogger("sessionward.sqlalchemy")


@functools.cache
def supported() -> bool:
    """Whether this system counts the bytes a socket sent (Linux 4.19 and later)."""
    if _TCP_INFO is None:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            raw = probe.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_LENGTH)
        except OSError:
            return False
    return len(raw) >= _TCP_INFO_LENGTH


def bytes_sent(fd: int) -> int | None:
    """The bytes the TCP socket ``fd`` has sent so far, or None when not known.

    The descriptor is the driver's: it is looked at through a socket object that
    is detached, never closed.
    """
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fd)
    except OSError:  # closed, or not a socket any more
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_LENGTH)  # type: ignore[arg-type]
    except OSError:
        return None
    finally:
        sock.detach()
    if len(raw) < _TCP_INFO_LENGTH:
        return None
    return int(_unpack_sent(raw, _BYTES_SENT_OFFSET)[0])


def install(engine: Engine) -> None:
    """Reset ``engine``'s returned connections; its pool must have ``reset_on_return=None``.

    The ``ROLLBACK`` is sent from the ``checkin`` event, which follows every ``reset``
    listener, so the application's own ``reset`` listeners run before it, as they do
    before the pool's own reset; the ``reset`` listener only notes whether one is due.
    """
    dialect = engine.dialect

    def ending(length: int) -> Any:
        def on_end(conn: Any) -> None:
            try:
                info = conn.connection.info  # the DB-API connection's, as the pool entry's
                fd = info.get(_FD)
                sent = bytes_sent(fd) if fd is not None else None
                if sent is None:
                    info.pop(_EXPECTED, None)
                else:
                    info[_EXPECTED] = sent + length
            except Exception:  # nothing noted: the connection is rolled back on return
                return

        return on_end

    def on_error(context: Any) -> None:
        # A failed COMMIT or ROLLBACK still sent its bytes: never trust that count.
        connection = context.connection
        if connection is None or connection.invalidated or connection.closed:
            return
        try:
            info = connection.connection.info
        except Exception:
            return
        info.pop(_EXPECTED, None)

    def on_reset(dbapi_connection: Any, record: Any, reset_state: Any) -> None:
        # As SQLAlchemy's rollback-on-return: nothing when the Connection already rolled
        # back, or where no I/O may run.
        due = not reset_state.transaction_was_reset and reset_state.asyncio_safe
        if record is not None and not reset_state.terminate_only:
            record.info[_DUE] = due  # the checkin that follows decides
        elif due:  # detached, closed right after: no checkin follows
            dialect.do_rollback(dbapi_connection)

    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        info = record.info
        due = info.pop(_DUE, False)
        expected = info.pop(_EXPECTED, None)
        if not due or dbapi_connection is None:
            return
        if (
            expected is not None
            and dbapi_connection.open
            and (fd := info.get(_FD)) is not None
            and bytes_sent(fd) == expected
        ):
            return  # nothing was sent since the COMMIT or ROLLBACK: nothing is open
        try:
            dialect.do_rollback(dbapi_connection)
        except BaseException as error:
            # As the pool does when its own reset fails: the connection is discarded.
            logger.error("Exception during reset or similar", exc_info=True)
            record.invalidate(error)
            if not isinstance(error, Exception):
                raise

    event.listen(engine, "commit", ending(_COMMIT_BYTES))
    event.listen(engine, "rollback", ending(_ROLLBACK_BYTES))
    event.listen(engine, "handle_error", on_error)
    event.listen(engine, "reset", on_reset)
    event.listen(engine, "checkin", on_checkin)
