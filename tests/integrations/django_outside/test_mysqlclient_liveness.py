"""The socket look on a real mysqlclient connection: public ``fileno()`` and ``open``."""

from __future__ import annotations

import time

import pytest

from sessionward.integrations.django._liveness import Liveness, liveness
from tests.fix_servers import Server
from tests.integrations.django_outside.conftest import MYSQLCLIENT_MISSING
from tests.integrations.errors._layers import mysqlclient_connect

pytest.importorskip("MySQLdb", reason=MYSQLCLIENT_MISSING)
pytestmark = pytest.mark.mysql


def test_quiet_then_readable_when_killed_then_closed(mysql: Server) -> None:
    conn = mysqlclient_connect(mysql.url)
    try:
        assert liveness(conn) is Liveness.QUIET
        mysql.execute(f"KILL CONNECTION {int(conn.thread_id())}")
        # The server closes its end: the socket turns readable, no statement sent.
        deadline = time.monotonic() + 5
        while liveness(conn) is Liveness.QUIET and time.monotonic() < deadline:
            time.sleep(0.01)
        assert liveness(conn) is Liveness.READABLE
    finally:
        conn.close()
    # mysqlclient's ``open`` is an int: 0 once closed.
    assert conn.open == 0
    assert liveness(conn) is Liveness.CLOSED
