"""``sessionward.pgbouncer`` against a real PgBouncer in front of the real PostgreSQL."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sessionward.core import ConfigurationError, ConnectionFailed, Outcome, Safety, classify
from sessionward.errors import SessionTerminated
from sessionward.pgbouncer import PoolerControl, connect_pooler
from tests.fix_pgbouncer import Bouncer
from tests.fix_servers import unique, wait_until

psycopg = pytest.importorskip("psycopg")


def local_socket(conn: Any) -> str:
    """The client's own ``addr:port`` toward the pooler, as PgBouncer lists it."""
    with socket.fromfd(conn.pgconn.socket, socket.AF_INET, socket.SOCK_STREAM) as sock:
        addr, port = sock.getsockname()[:2]
    return f"{addr}:{port}"


@pytest.fixture
def pooler(pgbouncer: Bouncer) -> Iterator[PoolerControl]:
    with connect_pooler(server_url=pgbouncer.server_url, pgbouncer_url=pgbouncer.admin_url) as p:
        yield p


@pytest.fixture
def clients() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for conn in made:
        with contextlib.suppress(Exception):
            conn.close()


def test_twenty_transaction_mode_clients_map_to_the_sessions_they_report(
    pgbouncer: Bouncer, pooler: PoolerControl, clients: list[Any]
) -> None:
    reported: dict[str, int] = {}
    for index in range(20):
        conn = psycopg.connect(pgbouncer.transaction_url, application_name=f"sw-tx-{index}")
        clients.append(conn)
        # Inside a transaction: the client holds its server connection until it ends.
        (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
        reported[local_socket(conn)] = pid
    view = pooler.view()
    seen = {
        row.client.client: row.session.pid
        for row in view.rows
        if row.client is not None and row.session is not None
    }
    assert {client: seen.get(client) for client in reported} == reported
    apps = {row.client.application for row in view.rows if row.client and row.session}
    assert {f"sw-tx-{index}" for index in range(20)} <= apps
    # Between transactions a transaction-mode client holds no server session.
    first = clients[0]
    first.commit()
    again = pooler.view()
    row = next(r for r in again.rows if r.client and r.client.client == local_socket(first))
    assert row.session is None
    assert not row.waiting


def test_a_client_waiting_for_a_server_connection_is_listed_as_waiting(
    pgbouncer: Bouncer, pooler: PoolerControl, clients: list[Any]
) -> None:
    holder = psycopg.connect(pgbouncer.tiny_url, autocommit=True)
    clients.append(holder)
    holder.execute("SELECT 1")  # sw_tiny has one server connection: now taken
    waiter = psycopg.connect(pgbouncer.tiny_url, autocommit=True, application_name="sw-waiter")
    clients.append(waiter)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (waiter.execute("SELECT 1"), done.set()), daemon=True)
    thread.start()

    def waiting_row() -> Any:
        rows = pooler.view().rows
        return next((r for r in rows if r.waiting and r.client.application == "sw-waiter"), None)

    row = wait_until(waiting_row, what="the waiter to be listed as waiting")
    assert row.session is None
    assert row.client.database == "sw_tiny"
    assert row.client.client == local_socket(waiter)
    holder.close()
    assert done.wait(10), "the waiter never got the server connection"
    thread.join(5)


def test_terminate_client_ends_the_server_session_it_holds(
    pgbouncer: Bouncer, pooler: PoolerControl, clients: list[Any]
) -> None:
    victim = psycopg.connect(pgbouncer.session_url, autocommit=True, application_name=unique())
    bystander = psycopg.connect(pgbouncer.session_url, autocommit=True)
    clients += [victim, bystander]
    (pid,) = victim.execute("SELECT pg_backend_pid()").fetchone()
    bystander.execute("SELECT 1")
    # The pool logs in as a superuser: protected unless asked for.
    refused = pooler.terminate_client(local_socket(victim))
    assert refused is not None
    assert refused.pid == pid
    assert refused.outcome is Outcome.PROTECTED
    assert victim.execute("SELECT 1").fetchone() == (1,)
    result = pooler.terminate_client(local_socket(victim), safety=Safety(include_superusers=True))
    assert result is not None
    assert result.pid == pid
    assert result.outcome is Outcome.ENDED
    assert pid not in pooler.control.snapshot()
    with pytest.raises(psycopg.Error) as raised:
        victim.execute("SELECT 1")
    # The server ended it and the pooler passed the server's word on.
    assert classify(raised.value) is SessionTerminated
    assert bystander.execute("SELECT 1").fetchone() == (1,)


def test_terminate_client_without_a_server_session_ends_nothing(
    pgbouncer: Bouncer, pooler: PoolerControl, clients: list[Any]
) -> None:
    idle = psycopg.connect(pgbouncer.transaction_url, autocommit=True)
    clients.append(idle)
    idle.execute("SELECT 1")  # autocommit in transaction mode: the server went back at once
    everyone = Safety(include_superusers=True)
    assert pooler.terminate_client(local_socket(idle), safety=everyone) is None
    assert idle.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(ConfigurationError, match=r"no client 127\.0\.0\.1:1 on the pooler"):
        pooler.terminate_client("127.0.0.1:1")


def test_kill_client_on_an_old_pgbouncer_says_what_to_do_and_ends_nothing(
    pgbouncer: Bouncer, pooler: PoolerControl, clients: list[Any]
) -> None:
    if pooler.admin.version >= (1, 24, 0):
        client = psycopg.connect(pgbouncer.session_url, autocommit=True)
        clients.append(client)
        client.execute("SELECT 1")
        pooler.kill_client(local_socket(client))
        with pytest.raises(psycopg.Error):
            client.execute("SELECT 1")
        return
    client = psycopg.connect(pgbouncer.session_url, autocommit=True)
    clients.append(client)
    client.execute("SELECT 1")
    with pytest.raises(ConfigurationError, match=r"has no KILL_CLIENT \(it came in 1\.24\)"):
        pooler.kill_client(local_socket(client))
    assert client.execute("SELECT 1").fetchone() == (1,)


def test_an_admin_url_that_is_not_a_console_is_refused(pgbouncer: Bouncer) -> None:
    with pytest.raises(ConfigurationError, match="is a PostgreSQL server, not a PgBouncer"):
        connect_pooler(server_url=pgbouncer.server_url, pgbouncer_url=pgbouncer.server_url)
    with pytest.raises(ConfigurationError, match="is a PostgreSQL server, not a PgBouncer"):
        # A pooled database answers like the server behind it.
        connect_pooler(server_url=pgbouncer.server_url, pgbouncer_url=pgbouncer.session_url)
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        connect_pooler(
            server_url=pgbouncer.server_url,
            pgbouncer_url="postgresql://postgres@127.0.0.1:1/pgbouncer",
        )
