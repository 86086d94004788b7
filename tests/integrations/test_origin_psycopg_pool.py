"""psycopg_pool sessions named by ``origin_kwargs``: what ``pg_stat_activity`` shows."""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

import pytest

from sessionward.core import Origin, parse_origin
from sessionward.psycopg import origin_kwargs, origin_pool_args
from tests.fix_servers import Server

psycopg_pool = pytest.importorskip("psycopg_pool")

HOST = socket.gethostname()


def _names(server: Server, conninfo: str, kwargs: dict[str, Any]) -> list[str]:
    """The application names the server shows for two sessions of a pool."""
    with psycopg_pool.ConnectionPool(conninfo, kwargs=kwargs, min_size=2, open=True) as pool:
        pool.wait(10)
        with pool.connection() as first, pool.connection() as second:
            pids = [first.info.backend_pid, second.info.backend_pid]
            rows = server.execute(
                "SELECT application_name FROM pg_stat_activity WHERE pid = ANY(%s) ORDER BY pid",
                (pids,),
            )
    return [row[0] for row in rows]


def test_a_pools_sessions_carry_service_pid_and_host(pg_server: Server) -> None:
    names = _names(
        pg_server, pg_server.url, origin_kwargs(origin="billing", conninfo=pg_server.url)
    )
    assert names == [f"billing[{os.getpid()}]@{HOST}"[:63]] * 2
    origin = parse_origin(names[0], None)
    assert origin is not None
    assert (origin.service, origin.pid, origin.host) == ("billing", os.getpid(), HOST)


def test_the_default_service_is_the_program(pg_server: Server) -> None:
    (name, _) = _names(pg_server, pg_server.url, origin_kwargs())
    program = os.path.basename(sys.argv[0])
    if program == "__main__.py":
        program = os.path.basename(os.path.dirname(sys.argv[0]))
    assert name.startswith(f"{program}[{os.getpid()}]@")


@pytest.mark.parametrize("where", ["kwargs", "options", "conninfo", "environment"])
def test_a_users_name_wins(pg_server: Server, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    conninfo, kwargs = pg_server.url, dict[str, Any]()
    if where == "kwargs":
        kwargs = {"application_name": "mine"}
    elif where == "options":
        kwargs = {"options": "-c application_name=mine"}
    elif where == "conninfo":
        conninfo += ("&" if "?" in conninfo else "?") + "application_name=mine"
    else:
        monkeypatch.setenv("PGAPPNAME", "mine")
    names = _names(pg_server, conninfo, origin_kwargs(kwargs, conninfo=conninfo))
    assert names == ["mine", "mine"]


def test_origin_false_adds_nothing(pg_server: Server) -> None:
    kwargs = {"connect_timeout": 5}
    assert origin_kwargs(kwargs, origin=False) == kwargs
    assert _names(pg_server, pg_server.url, origin_kwargs(kwargs, origin=False)) == ["", ""]


# --------------------------------------------------------------------------- statements

SCRIPT = "tests/integrations/test_origin_psycopg_pool.py"


def _line_above() -> int:
    return sys._getframe(1).f_lineno - 1


def _pool(server: Server, **args: Any) -> Any:
    return psycopg_pool.ConnectionPool(
        server.url, **origin_pool_args(conninfo=server.url, **args), min_size=1, open=True
    )


def _query(server: Server, pid: int) -> tuple[str, str, str]:
    ((name, state, query),) = server.execute(
        "SELECT application_name, state, query FROM pg_stat_activity WHERE pid = %s", (pid,)
    )
    return name, state, query


def test_an_idle_transaction_names_the_thread_and_the_line_that_took_it(
    pg_server: Server,
) -> None:
    with _pool(pg_server, origin="billing") as pool, pool.connection() as conn:
        line = _line_above()
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        name, state, query = _query(pg_server, pid)
    assert state == "idle in transaction"
    assert parse_origin(name, query) == Origin(
        service="billing", host=HOST, pid=os.getpid(), holder="MainThread", code=f"{SCRIPT}:{line}"
    )


def test_pooled_prepared_statements_still_happen(pg_server: Server) -> None:
    lines = set()
    with _pool(pg_server) as pool:
        for _ in range(6):  # psycopg prepares a statement at its 5th run
            with pool.connection() as conn:
                lines.add(_line_above())
                assert conn.execute("SELECT %s::int + 1", [1]).fetchone() == (2,)
        with pool.connection() as conn:
            rows = conn.execute(
                "SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'SELECT $1%%'"
            ).fetchall()
    ((statement,),) = rows
    origin = parse_origin(None, statement)
    assert origin is not None
    assert {origin.code} == {f"{SCRIPT}:{line}" for line in lines}


def test_the_users_configure_check_and_cursor_class_still_work(pg_server: Server) -> None:
    import psycopg

    calls: list[str] = []

    def configure(conn: Any) -> None:
        calls.append("configure")
        conn.cursor_factory = psycopg.ClientCursor

    def check(conn: Any) -> None:
        calls.append("check")
        psycopg_pool.ConnectionPool.check_connection(conn)

    with _pool(pg_server, configure=configure, check=check) as pool, pool.connection() as conn:
        cursor = conn.execute("SELECT %s || '%%', pg_backend_pid()", ["a"])
        assert isinstance(cursor, psycopg.ClientCursor)
        value, pid = cursor.fetchone()
        _, _, query = _query(pg_server, pid)
        conn.execute("SELECT 1 /* mine */")
        _, _, own = _query(pg_server, pid)
    assert value == "a%"
    assert calls == ["configure", "check"]
    origin = parse_origin(None, query)
    assert origin is not None
    assert origin.holder == "MainThread"
    assert own == "SELECT 1 /* mine */"


def test_a_raw_cursor_reads_no_percent(pg_server: Server) -> None:
    import psycopg

    def configure(conn: Any) -> None:
        conn.cursor_factory = psycopg.RawCursor

    with _pool(pg_server, configure=configure) as pool, pool.connection() as conn:
        value, pid = conn.execute("SELECT $1 || '%', pg_backend_pid()", ["a"]).fetchone()
        _, _, query = _query(pg_server, pid)
    assert value == "a%"
    origin = parse_origin(None, query)
    assert origin is not None
    assert origin.code is not None


def test_origin_false_gives_the_arguments_back(pg_server: Server) -> None:
    def check(conn: Any) -> None:
        pass

    args = origin_pool_args(conninfo=pg_server.url, check=check, origin=False)
    assert args == {"kwargs": {}, "configure": None, "check": check}
    with _pool(pg_server, origin=False) as pool, pool.connection() as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        name, _, query = _query(pg_server, pid)
    assert (name, query) == ("", "SELECT pg_backend_pid()")
