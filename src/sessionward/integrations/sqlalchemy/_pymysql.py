"""The PyMySQL connections ``harden()`` makes, in SQLAlchemy's ``do_connect`` event.

Two things PyMySQL does not offer by itself, through its public API only:

- **The socket is ours.**  PyMySQL keeps its socket private (``_sock``), so we
  make the socket and hand it to PyMySQL's public ``connect(sock=...)`` (with
  ``defer_connect=True``): its descriptor is then known, for the look at
  checkout (see ``_liveness``).
- **A rollback with nothing to roll back sends nothing.**  SQLAlchemy resets
  every connection it gets back with ``rollback()``, also right after a commit.
  psycopg and psycopg2 know from the protocol that no transaction is open and
  skip it; PyMySQL sends ``ROLLBACK`` every time: a round trip per transaction,
  some 15% of a single-row transaction.  ``Connection`` below skips it when no
  statement has run since the last ``commit()`` or ``rollback()`` that the
  server acknowledged, that acknowledgement did not report a transaction open
  (``completion_type = CHAIN`` starts one), and the connection is still open.
  Every statement passes through ``query()`` (every cursor calls it) or
  ``begin()``, so a transaction opened by any of them, SQLAlchemy's or raw
  DBAPI use alike, is still rolled back.  PyMySQL calls ``query()`` internal:
  should a later release send statements some other way,
  ``test_pymysql_reset.py`` fails.
"""

from __future__ import annotations

import functools
import socket
from typing import Any

#: PyMySQL's own defaults, for a socket we make in its place.
DEFAULT_HOST = "localhost"
DEFAULT_PORT = 3306
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10.0
#: CR_CONN_HOST_ERROR: the client library could not reach the server.
CR_CONN_HOST_ERROR = 2003


@functools.cache
def connection_class() -> type:
    """PyMySQL's ``Connection``, with a ``rollback()`` that sends nothing when nothing is open.

    Made on first use: PyMySQL is an optional dependency.
    """
    import pymysql
    from pymysql.constants import SERVER_STATUS

    in_transaction = SERVER_STATUS.SERVER_STATUS_IN_TRANS

    class Connection(pymysql.connections.Connection):
        #: No statement since the last acknowledged commit or rollback.  False until
        #: the first one: connecting runs statements of its own.
        sessionward_settled = False

        def connect(self, sock: Any = None) -> None:
            self.sessionward_settled = False  # a new session, with statements of its own
            super().connect(sock)

        def query(self, sql: Any, unbuffered: bool = False) -> int:
            self.sessionward_settled = False
            return super().query(sql, unbuffered)

        def begin(self) -> None:
            self.sessionward_settled = False
            super().begin()

        def commit(self) -> None:
            self.sessionward_settled = False
            super().commit()
            self.sessionward_settled = True

        def rollback(self) -> None:
            # server_status is the one of the commit's or rollback's own OK packet
            # here: no result set has come since to leave it stale.  A closed
            # connection goes on to PyMySQL's error, so SQLAlchemy discards it.
            if self.sessionward_settled and self.open:
                status: int = self.server_status  # type: ignore[attr-defined]  # not in the stubs
                if not status & in_transaction:
                    return
            self.sessionward_settled = False
            super().rollback()
            self.sessionward_settled = True

    Connection.__qualname__ = Connection.__name__ = "SessionwardPyMySQLConnection"
    return Connection


def connect(cargs: Any, cparams: dict[str, Any]) -> tuple[Any, int]:
    """A PyMySQL connection on a socket we made, and that socket's descriptor."""
    import pymysql

    params = dict(cparams)
    params.pop("defer_connect", None)
    connection = connection_class()(*cargs, defer_connect=True, **params)
    timeout = params.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT_SECONDS)
    unix_socket = params.get("unix_socket")
    host = params.get("host") or DEFAULT_HOST
    try:
        if unix_socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(unix_socket)
            except BaseException:
                sock.close()
                raise
        else:
            port = int(params.get("port") or DEFAULT_PORT)
            bind = params.get("bind_address")
            source = (bind, 0) if bind else None
            sock = socket.create_connection((host, port), timeout, source_address=source)
            # What PyMySQL does for the sockets it makes itself.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except OSError as error:
        # The error PyMySQL raises for a socket it could not open itself.
        raise pymysql.err.OperationalError(
            CR_CONN_HOST_ERROR, f"Can't connect to MySQL server on {host!r} ({error})"
        ) from error
    fd = sock.fileno()  # TLS wraps the same descriptor later
    try:
        connection.connect(sock)
    except BaseException:
        sock.close()
        raise
    return connection, fd
