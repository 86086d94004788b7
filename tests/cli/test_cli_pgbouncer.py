"""``sessionward ls --pgbouncer`` and ``sessionward pgbouncer-end`` against a real PgBouncer."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fix_pgbouncer import Bouncer
from tests.fix_servers import unique, wait_until

psycopg = pytest.importorskip("psycopg")


def local_socket(conn: Any) -> str:
    with socket.fromfd(conn.pgconn.socket, socket.AF_INET, socket.SOCK_STREAM) as sock:
        addr, port = sock.getsockname()[:2]
    return f"{addr}:{port}"


@pytest.fixture
def clients() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for conn in made:
        with contextlib.suppress(Exception):
            conn.close()


def test_ls_pgbouncer_shows_the_client_holding_each_session_and_the_waiting_ones(
    run_cli: Any, pgbouncer: Bouncer, clients: list[Any]
) -> None:
    app = unique("app")
    holder = psycopg.connect(pgbouncer.tiny_url, autocommit=True, application_name=app)
    waiter = psycopg.connect(pgbouncer.tiny_url, autocommit=True, application_name=app + "-w")
    clients += [holder, waiter]
    (pid,) = holder.execute("SELECT pg_backend_pid()").fetchone()
    thread = threading.Thread(target=lambda: waiter.execute("SELECT 1"), daemon=True)
    thread.start()
    args = ("ls", "--dsn", pgbouncer.server_url, "--pgbouncer", pgbouncer.admin_url)

    def waiting() -> Any:
        result = run_cli(*args, "--json")
        assert result.code == 0, result.err
        doc = json.loads(result.out)
        return doc if any(c["application"] == app + "-w" for c in doc["waiting_clients"]) else None

    doc = wait_until(waiting, what="the waiting client in ls --pgbouncer --json")
    (row,) = [s for s in doc["sessions"] if s["pid"] == pid]
    assert row["pooler_client"]["client"] == local_socket(holder)
    assert row["pooler_client"]["application"] == app
    assert row["pooler_client"]["database"] == "sw_tiny"
    (queued,) = [c for c in doc["waiting_clients"] if c["application"] == app + "-w"]
    assert queued["client"] == local_socket(waiter)
    assert queued["state"] == "waiting"
    assert doc["pooler"]["version"].count(".") == 2

    table = run_cli(*args)
    assert table.code == 0, table.err
    line = next(line for line in table.out.splitlines() if line.lstrip().startswith(str(pid)))
    assert local_socket(holder) in line
    assert "postgres@sw_tiny" in line
    assert app in line
    waiting_line = next(line for line in table.out.splitlines() if local_socket(waiter) in line)
    assert "waiting for a server connection" in waiting_line
    assert "pooler clients waiting for a server connection" in table.out
    holder.close()
    thread.join(10)


def test_pgbouncer_end_terminates_the_server_session_of_a_client(
    run_cli: Any, pgbouncer: Bouncer, clients: list[Any]
) -> None:
    victim = psycopg.connect(pgbouncer.session_url, autocommit=True)
    clients.append(victim)
    (pid,) = victim.execute("SELECT pg_backend_pid()").fetchone()
    base = ("pgbouncer-end", "--dsn", pgbouncer.server_url, "--pgbouncer", pgbouncer.admin_url)
    protected = run_cli(*base, local_socket(victim), "--json")
    assert protected.code == 1
    assert json.loads(protected.out)[0]["outcome"] == "protected"
    dry = run_cli(*base, local_socket(victim), "--include-superusers", "--dry-run", "--json")
    assert dry.code == 0
    assert json.loads(dry.out)[0]["outcome"] == "would end"
    assert victim.execute("SELECT 1").fetchone() == (1,)
    ended = run_cli(*base, local_socket(victim), "--include-superusers", "--json")
    assert ended.code == 0, ended.err
    (outcome,) = json.loads(ended.out)
    assert outcome["pid"] == pid
    assert outcome["outcome"] == "ended"
    with pytest.raises(psycopg.errors.AdminShutdown):
        victim.execute("SELECT 1")


def test_pgbouncer_end_of_a_client_between_transactions_ends_nothing(
    run_cli: Any, pgbouncer: Bouncer, clients: list[Any]
) -> None:
    idle = psycopg.connect(pgbouncer.transaction_url, autocommit=True)
    clients.append(idle)
    idle.execute("SELECT 1")
    result = run_cli(
        "pgbouncer-end", "--dsn", pgbouncer.server_url, "--pgbouncer", pgbouncer.admin_url,
        local_socket(idle), "--include-superusers",
    )  # fmt: skip
    assert result.code == 1
    assert "holds no server session now" in result.err
    assert "nothing was ended" in result.err
    assert idle.execute("SELECT 1").fetchone() == (1,)


def test_kill_client_on_pgbouncer_before_1_24_is_refused_in_one_line(
    run_cli: Any, pgbouncer: Bouncer, clients: list[Any]
) -> None:
    client = psycopg.connect(pgbouncer.session_url, autocommit=True)
    clients.append(client)
    client.execute("SELECT 1")
    result = run_cli(
        "pgbouncer-end", "--dsn", pgbouncer.server_url, "--pgbouncer", pgbouncer.admin_url,
        "--kill-client", local_socket(client),
    )  # fmt: skip
    version = pgbouncer.admin("SHOW VERSION")[0][0]
    if str(version) >= "PgBouncer 1.24":  # pragma: no cover - Debian 12 ships 1.18
        assert result.code == 0
        assert "disconnected (KILL_CLIENT)" in result.out
        return
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "Traceback" not in result.err
    assert "has no KILL_CLIENT (it came in 1.24); nothing was ended" in result.err
    assert client.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("server", "is a PostgreSQL server, not a PgBouncer admin console"),
        ("mysql", "is not a postgresql:// URL of a PgBouncer admin console"),
        ("empty", "--pgbouncer: empty"),
        ("dead", "cannot connect to postgresql://postgres@127.0.0.1:1/pgbouncer"),
        ("password", "cannot connect"),
    ],
)
def test_bad_admin_urls_fail_in_one_line(
    run_cli: Any, pgbouncer: Bouncer, which: str, expected: str
) -> None:
    url = {
        "server": pgbouncer.server_url,
        "mysql": "mysql://root@127.0.0.1:3306/test",
        "empty": " ",
        "dead": "postgresql://postgres@127.0.0.1:1/pgbouncer",
        "password": f"postgresql://nobody:s3cret-pw@127.0.0.1:{pgbouncer.port}/pgbouncer",
    }[which]
    result = run_cli("ls", "--dsn", pgbouncer.server_url, "--pgbouncer", url)
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "Traceback" not in result.err
    assert expected in result.err
    assert "s3cret-pw" not in result.err
    assert result.out == ""


def test_ls_pgbouncer_refuses_csv_and_by_before_connecting(run_cli: Any) -> None:
    dead = "postgresql://postgres@127.0.0.1:1/pgbouncer"
    for extra, words in ((("--csv",), "not --csv"), (("--by", "origin"), "not with --by")):
        result = run_cli("ls", "--dsn", dead, "--pgbouncer", dead, *extra)
        assert result.code == 2
        assert words in result.err
        assert result.err.count("\n") == 1
