"""The pure PgBouncer join and the pooler error classes, without a server."""

from __future__ import annotations

import datetime as dt
import pickle

import pytest

import sessionward.pgbouncer
from sessionward.core import ConfigurationError, ServerInfo, Session, Snapshot, classify
from sessionward.core._pooler import (
    PoolerClient,
    PoolerServer,
    PoolerSnapshot,
    client_from_row,
    find_pooler_client,
    join_pooler,
    parse_pooler_version,
    server_from_row,
)
from sessionward.errors import (
    ConnectionLost,
    PoolerEnded,
    PoolerIdleTimeout,
    PoolerKilled,
    PoolerRefused,
    PoolerServerLost,
    PoolerWaitTimeout,
    SessionEnded,
    SessionTerminated,
)


def snapshot(*sessions: Session) -> Snapshot:
    return Snapshot(
        server=ServerInfo("postgresql", "15.20", 150020, own_pid=1),
        taken_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        sessions=sessions,
    )


def test_join_pairs_sessions_with_the_client_holding_them_by_socket() -> None:
    held = Session(101, client_addr="10.0.0.5", client_port=40001, state="active")
    idle_in_pool = Session(102, client_addr="10.0.0.5", client_port=40002, state="idle")
    direct = Session(103, client_addr="10.0.0.9", client_port=5000, state="idle")
    pooler = PoolerSnapshot(
        (1, 18, 0),
        clients=(
            PoolerClient("0xc1", addr="192.168.1.7", port=51000, application="web", link="0xs1"),
            PoolerClient("0xc2", addr="192.168.1.8", port=51001, state="waiting", wait_seconds=2),
            PoolerClient("0xc3", addr="192.168.1.9", port=51002, state="active"),
            PoolerClient("0xc4", database="pgbouncer", addr="127.0.0.1", port=1),
        ),
        servers=(
            # A wrong remote_pid: the socket wins.
            PoolerServer("0xs1", local_addr="10.0.0.5", local_port=40001, remote_pid=102,
                         link="0xc1"),
            PoolerServer("0xs2", local_addr="10.0.0.5", local_port=40002, remote_pid=102),
        ),
    )  # fmt: skip
    rows = join_pooler(snapshot(held, idle_in_pool, direct), pooler)
    by_pid = {row.session.pid: row for row in rows if row.session is not None}
    assert by_pid[101].client is not None
    assert by_pid[101].client.client == "192.168.1.7:51000"
    assert by_pid[101].server is not None
    assert by_pid[101].server.ptr == "0xs1"
    assert by_pid[102].client is None
    assert by_pid[102].server is not None
    assert by_pid[103].client is None
    assert by_pid[103].server is None
    loose = [row.client.ptr for row in rows if row.session is None and row.client is not None]
    assert loose == ["0xc2", "0xc3"]  # waiting first; the console's own client left out
    assert [row.waiting for row in rows if row.session is None] == [True, False]


def test_join_falls_back_to_the_backend_pid_when_sockets_differ() -> None:
    behind_nat = Session(201, client_addr="172.17.0.1", client_port=6000)
    pooler = PoolerSnapshot(
        (1, 18, 0),
        clients=(PoolerClient("0xc", addr="10.1.1.1", port=7000, link="0xs"),),
        servers=(PoolerServer("0xs", local_addr="10.9.9.9", local_port=1, remote_pid=201,
                              link="0xc"),),
    )  # fmt: skip
    (row,) = join_pooler(snapshot(behind_nat), pooler)
    assert row.session is behind_nat
    assert row.client is not None
    assert row.client.ptr == "0xc"


def test_console_rows_become_values_whatever_the_version_adds() -> None:
    client = client_from_row(
        {"ptr": "0x1", "user": "app", "database": "shop", "state": "waiting", "addr": "::1",
         "port": 5, "wait": 1, "wait_us": 250000, "link": "", "application_name": "",
         "id": 17, "some_future_column": "x"}
    )  # fmt: skip
    assert client.client == "[::1]:5"
    assert client.wait_seconds == 1.25
    assert client.id == 17
    assert client.link is None
    assert client.application is None
    assert client.waiting
    server = server_from_row({"ptr": "0x2", "local_addr": "127.0.0.1", "local_port": 9,
                              "remote_pid": 0, "link": "0x1"})  # fmt: skip
    assert server.remote_pid is None
    assert server.local_port == 9
    assert server.link == "0x1"


def test_versions_and_kill_client_support() -> None:
    assert parse_pooler_version("PgBouncer 1.24.1") == (1, 24, 1)
    assert PoolerSnapshot((1, 24, 0)).has_kill_client
    assert not PoolerSnapshot((1, 18, 0)).has_kill_client
    with pytest.raises(ConfigurationError, match="not a PgBouncer version"):
        parse_pooler_version("")


def test_clients_are_found_by_socket_pointer_or_id() -> None:
    pooler = PoolerSnapshot(
        (1, 24, 0), clients=(PoolerClient("0xab", addr="127.0.0.1", port=4242, id=9),)
    )
    assert find_pooler_client(pooler, "0xab").port == 4242
    assert find_pooler_client(pooler, "9").ptr == "0xab"
    with pytest.raises(ConfigurationError, match=r"no client 127\.0\.0\.1:1 on the pooler"):
        find_pooler_client(pooler, "127.0.0.1:1")


def test_kill_client_refusal_says_what_to_do_instead() -> None:
    message = sessionward.pgbouncer.kill_client_refusal("1.18.0")
    assert "1.18.0 has no KILL_CLIENT" in message
    assert "1.24" in message
    assert "nothing was ended" in message
    assert "without --kill-client" in message


class _Driver(Exception):
    """What psycopg 3 raises, as far as ``classify`` looks."""

    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("query_wait_timeout", PoolerWaitTimeout),
        ("client_idle_timeout", PoolerIdleTimeout),
        ("idle transaction timeout", PoolerIdleTimeout),
        ("server conn crashed?", PoolerServerLost),
        ("database removed", PoolerKilled),
        ("admin forced disconnect", PoolerKilled),
        ("server login has been failing, try again later (server_login_retry)", PoolerRefused),
        ("query_timeout", PoolerEnded),
        ("invalid message format", ConnectionLost),  # a real server's protocol violation
    ],
)
def test_pooler_reasons_pick_the_class(message: str, expected: type[SessionEnded]) -> None:
    assert classify(_Driver(message, "08P01")) is expected


def test_the_server_ending_through_the_pooler_stays_the_servers() -> None:
    ended = _Driver("terminating connection due to administrator command", "57P01")
    assert classify(ended) is SessionTerminated
    assert not issubclass(SessionTerminated, PoolerEnded)


def test_pooler_classes_carry_their_facts_and_pickle() -> None:
    assert PoolerWaitTimeout.transaction_retry_safe
    assert PoolerRefused.transaction_retry_safe
    assert not PoolerServerLost.transaction_retry_safe
    assert not PoolerEnded.transaction_retry_safe
    assert all(not cls.connection_usable for cls in (PoolerEnded, PoolerKilled, PoolerIdleTimeout))
    error = pickle.loads(pickle.dumps(PoolerWaitTimeout("query_wait_timeout", code="08P01")))
    assert type(error) is PoolerWaitTimeout
    assert error.code == "08P01"


def test_public_names_are_pinned() -> None:
    assert sorted(sessionward.pgbouncer.__all__) == [
        "PooledSession",
        "PooledView",
        "PoolerClient",
        "PoolerControl",
        "PoolerServer",
        "PoolerSnapshot",
        "connect_pooler",
        "join_pooler",
        "kill_client_refusal",
    ]


def test_every_console_command_file_loads_without_its_comment() -> None:
    from importlib import resources

    from sessionward.servers.pgbouncer._admin import command

    shipped = resources.files("sessionward.servers.pgbouncer") / "commands"
    names = sorted(
        p.name.removesuffix(".sql") for p in shipped.iterdir() if p.name.endswith(".sql")
    )
    assert names == ["kill_client", "show_clients", "show_servers", "show_version"]
    for name in names:
        text = command(name)
        assert text
        assert "--" not in text
        assert "\n" not in text
    assert command("kill_client").format(client_id=7) == "KILL_CLIENT 7"
