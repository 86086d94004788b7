"""A server session terminated behind PgBouncer while psycopg 3 waits for BEGIN or COMMIT.

The client gets two FATAL errors, the server's ``57P01`` passed on by the
pooler and PgBouncer's own "server conn crashed?", then the end of the
connection.  psycopg sends ``BEGIN`` and ``COMMIT`` with the simple query
protocol and expects one result: it raises its own ``InternalError("received 2
results from command 'COMMIT'")``, with no SQLSTATE.  That is a lost
connection, raw, under Django, and where ``transaction()`` judges a COMMIT.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from sessionward.errors import ConnectionLost, SessionEnded, classify, translate
from tests.fix_pgbouncer import Bouncer
from tests.fix_servers import unique

psycopg = pytest.importorskip("psycopg")


def _ended_behind_the_pooler(bouncer: Bouncer, conn: Any) -> None:
    """Terminate the server session under ``conn``'s open transaction; wait until the
    pooler has passed both errors on and closed the client."""
    ((pid,),) = conn.execute("SELECT pg_backend_pid()").fetchall()
    with psycopg.connect(bouncer.server_url, autocommit=True) as admin:
        # With a timeout, pg_terminate_backend waits until the session is gone.
        ended = admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
    assert ended == (True,)
    time.sleep(0.2)  # PgBouncer's own FATAL follows the server's


@pytest.mark.parametrize("command", ["COMMIT", "ROLLBACK"])
def test_two_fatal_errors_through_the_pooler_are_a_lost_connection(
    pgbouncer: Bouncer, command: str
) -> None:
    conn = psycopg.connect(
        pgbouncer.transaction_url, prepare_threshold=None, application_name=unique("sw-two")
    )
    try:
        _ended_behind_the_pooler(pgbouncer, conn)
        with pytest.raises(psycopg.InternalError) as raised:
            conn.commit() if command == "COMMIT" else conn.rollback()
        assert raised.value.sqlstate is None
        assert str(raised.value) == f"received 2 results from command '{command}'"
        assert conn.closed
    finally:
        conn.close()
    assert classify(raised.value) is ConnectionLost
    with pytest.raises(ConnectionLost) as translated, translate():
        raise raised.value
    assert translated.value.__cause__ is raised.value
    assert isinstance(translated.value, SessionEnded)  # so transaction() judges it ended


def test_other_psycopg_internal_errors_stay_unclassified() -> None:
    assert classify(psycopg.InternalError("something else went wrong")) is None
