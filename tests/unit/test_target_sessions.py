"""A multi-host connect that found no writable host: one ``ConnectionFailed`` naming each host."""

from __future__ import annotations

from sessionward.core import ConnectionFailed
from sessionward.core._target_sessions import no_host_as_wanted

#: psycopg 3 tries each host itself: the last failure first, then all of them in order.
PSYCOPG_MESSAGE = """\
connection failed: connection to server at "127.0.0.1", port 5433 failed: session is read-only
Multiple connection attempts failed. All failures were:
- host: '127.0.0.1', port: '5432', hostaddr: '127.0.0.1': connection failed: \
connection to server at "127.0.0.1", port 5432 failed: Connection refused
\tIs the server running on that host and accepting TCP/IP connections?
- host: '127.0.0.1', port: '5433', hostaddr: '127.0.0.1': connection failed: \
connection to server at "127.0.0.1", port 5433 failed: session is read-only"""


def test_psycopg_names_each_host_once_in_order() -> None:
    failed = no_host_as_wanted(PSYCOPG_MESSAGE)
    assert isinstance(failed, ConnectionFailed)
    assert str(failed) == (
        "no host was writable (target_session_attrs=read-write): "
        "127.0.0.1:5432 (Connection refused); 127.0.0.1:5433 (session is read-only)"
    )


def test_primary_and_a_resolved_name_and_a_socket() -> None:
    message = (
        'connection to server on socket "/run/pg/.s.PGSQL.5432" failed: '
        "server is in hot standby mode\n"
        'connection to server at "db2" (10.0.0.2), port 5432 failed: '
        "server is in hot standby mode\n"
    )
    assert str(no_host_as_wanted(message)) == (
        "no host was writable (target_session_attrs=primary): "
        "/run/pg/.s.PGSQL.5432 (server is in hot standby mode); "
        "db2:5432 (server is in hot standby mode)"
    )


def test_other_connect_failures_are_not_this() -> None:
    assert (
        no_host_as_wanted('connection to server at "db", port 5432 failed: timeout expired') is None
    )
    assert no_host_as_wanted("") is None
