"""``failover_check``: a psycopg_pool ``check`` that also lets go of a fenced primary.

See ``sessionward.integrations._failover``: a connection made with
``target_session_attrs=read-write`` (or ``primary``) to a server that has
since stopped taking writes stays alive, and psycopg_pool's own
``check_connection`` passes it.  After that check's round trip the server's
report is current, so the connection is closed (the pool replaces a closed
one; one that merely fails its check would go back into the pool) and the
pool's new connection walks libpq's host list to the writable server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._failover import reports_read_only, wants_writable

if TYPE_CHECKING:
    import psycopg


def failover_check(connection: psycopg.Connection[Any]) -> None:
    """``ConnectionPool(url, check=failover_check)``: psycopg_pool's ``check_connection``,
    then raise for a connection that asked for a writable server and is told the server
    no longer takes writes (closing it, so the pool makes a new one)."""
    # Imported here: this package is importable without psycopg_pool (or psycopg).
    from psycopg import OperationalError
    from psycopg_pool import ConnectionPool

    ConnectionPool.check_connection(connection)
    if wants_writable("psycopg", connection) and reports_read_only("psycopg", connection):
        connection.close()
        raise OperationalError(
            "sessionward: the server no longer takes writes; "
            "a new connection goes through target_session_attrs again"
        )
