"""Server restarts, a crash, a shutdown in progress and a dropped network, for real.

Restarts and crashes happen on servers of our own (an embedded PostgreSQL 18
and a throwaway ``mariadbd``), never on the shared ones.  Each ending is
provoked once per module for every layer and driver at the same time, then
each combination is checked by its own test.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sessionward.errors import ConnectionLost, ServerShuttingDown, SessionTerminated
from tests.fix_proxy import Proxy
from tests.fix_servers import Server, missing_server
from tests.integrations.errors._layers import (
    LAYERS,
    MYSQLCLIENT,
    PG_DRIVERS,
    ConnectError,
    DbSession,
)
from tests.integrations.errors._outcomes import Failure, assert_ended
from tests.integrations.errors._own_servers import OwnMariaDB, OwnPostgres
from tests.integrations.errors.conftest import Lab, make_lab

PG_COMBOS = [(layer, driver) for layer in LAYERS for driver in PG_DRIVERS]
#: mysqlclient builds against a C library: its combinations run where it is installed.
HAS_MYSQLCLIENT = importlib.util.find_spec("MySQLdb") is not None
MYSQL_COMBOS = [
    (layer, driver)
    for layer in LAYERS
    for driver in ("pymysql", *((MYSQLCLIENT,) if HAS_MYSQLCLIENT else ()))
]
MYSQL_PARAMS = MYSQL_COMBOS + [
    pytest.param(
        layer,
        MYSQLCLIENT,
        marks=pytest.mark.skip(
            reason="mysqlclient not installed (needs libmariadb-dev and pkg-config to build)"
        ),
    )
    for layer in LAYERS
    if not HAS_MYSQLCLIENT
]
STATES = ("idle", "busy")
PG_SLEEP = "SELECT pg_sleep(10)"
MYSQL_SLEEP = "SELECT SLEEP(10)"

Outcomes = dict[tuple[str, str, str], "Ended"]


@dataclass(frozen=True)
class Ended:
    """How a session learned of the ending, and whether its connection still worked after."""

    failure: Failure | None
    then: Failure | None


def _open_pairs(lab: Lab, combos: list[tuple[str, str]], sleep: str) -> dict[Any, DbSession]:
    """For each combination an idle session and one running ``sleep``."""
    sessions: dict[Any, DbSession] = {}
    for layer, driver in combos:
        sessions[layer, driver, "idle"] = lab.session(layer, driver)
        busy = lab.session(layer, driver)
        busy.start(sleep)
        sessions[layer, driver, "busy"] = busy
    for (_, _, state), session in sessions.items():
        if state == "busy":
            lab.wait_running(session, sleep)
    return sessions


def _collect(sessions: dict[Any, DbSession]) -> Outcomes:
    """How each session learned of the ending: the running statement, or the next one."""
    outcomes: Outcomes = {}
    for key, session in sessions.items():
        if key[2] == "busy":
            failure = session.result().failure
        else:
            failure = session.execute("SELECT 1").failure
        outcomes[key] = Ended(failure, session.execute("SELECT 1").failure)
    return outcomes


def assert_gone(ended: Ended, expected: type, *, layer: str, driver: str) -> None:
    assert_ended(ended.failure, expected, layer=layer, driver=driver)
    assert ended.then is not None, "the connection still worked after the ending"


# --------------------------------------------------------------------------- own servers


@pytest.fixture(scope="module")
def own_pg(django_hosts: Callable[[str], Any]) -> Iterator[tuple[OwnPostgres, Lab]]:
    server = OwnPostgres()
    try:
        server.start()
    except Exception as error:
        missing_server(f"no embedded PostgreSQL of our own to restart: {error}")
    lab = make_lab(Server("own-pg", "postgresql", server.url), django_hosts)
    yield server, lab
    lab.close()
    server.stop()


@pytest.fixture(scope="module")
def own_mariadb(django_hosts: Callable[[str], Any]) -> Iterator[tuple[OwnMariaDB, Lab]]:
    reason = OwnMariaDB.available()
    if reason is not None:
        missing_server(f"no throwaway MariaDB to restart: {reason}")
    server = OwnMariaDB()
    try:
        server.start()
    except Exception as error:
        server.stop()
        missing_server(f"the throwaway MariaDB did not start: {error}")
    lab = make_lab(Server("own-mariadb", "mysql", server.url), django_hosts)
    yield server, lab
    lab.close()
    server.stop()


@pytest.fixture(scope="module")
def pg_restart(own_pg: tuple[OwnPostgres, Lab]) -> tuple[Outcomes, bool]:
    """The outcomes, and whether a transaction open across the restart left its row."""
    server, lab = own_pg
    sessions = _open_pairs(lab, PG_COMBOS, PG_SLEEP)
    key = lab.key()
    writer = lab.session("driver", "psycopg")
    writer.rows("BEGIN")
    writer.rows(f"INSERT INTO sw_rows (id) VALUES ({key})")
    server.restart()
    outcomes = _collect(sessions)
    return outcomes, bool(lab.sql("SELECT 1 FROM sw_rows WHERE id = %s", (key,)))


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize(("layer", "driver"), PG_COMBOS)
def test_postgresql_fast_restart(
    pg_restart: tuple[Outcomes, bool], layer: str, driver: str, state: str
) -> None:
    """A fast restart terminates every session with 57P01, like pg_terminate_backend."""
    outcomes, _ = pg_restart
    assert_gone(outcomes[layer, driver, state], SessionTerminated, layer=layer, driver=driver)


def test_postgresql_restart_rolls_back_open_transactions(pg_restart: tuple[Outcomes, bool]) -> None:
    _, row_left = pg_restart
    assert not row_left


@pytest.fixture(scope="module")
def pg_shutting_down(own_pg: tuple[OwnPostgres, Lab]) -> dict[tuple[str, str], Failure]:
    server, lab = own_pg
    import psycopg

    lab.disconnect_admin()
    holder = psycopg.connect(server.url)  # a smart shutdown waits for it
    failures: dict[tuple[str, str], Failure] = {}
    try:
        server.stop_smart()
        lab.wait_until("logins are refused", lambda: not _can_connect(server.url))
        for layer, driver in PG_COMBOS:
            with pytest.raises(ConnectError) as refused:
                lab.session(layer, driver)
            failures[layer, driver] = refused.value.failure
    finally:
        holder.close()
        server.wait_stopped()
        server.start_again()
    return failures


@pytest.mark.parametrize(("layer", "driver"), PG_COMBOS)
def test_postgresql_login_while_shutting_down(
    pg_shutting_down: dict[tuple[str, str], Failure], layer: str, driver: str
) -> None:
    """libpq keeps the SQLSTATE (57P03) of a refused login: the server's text decides."""
    failure = pg_shutting_down[layer, driver]
    assert_ended(failure, ServerShuttingDown, layer=layer, driver=driver)
    assert "the database system is shutting down" in failure.message


@pytest.fixture(scope="module")
def pg_crash(own_pg: tuple[OwnPostgres, Lab]) -> Outcomes:
    server, lab = own_pg
    sessions = _open_pairs(lab, PG_COMBOS, PG_SLEEP)
    victim = lab.connect()
    server.crash_backend(victim.info.backend_pid)
    # The postmaster then kills every other backend: wait until it has.
    for session in sessions.values():
        lab.wait_until(f"backend {session.pid} exits", lambda pid=session.pid: _gone(pid))
    outcomes = _collect(sessions)
    lab.wait_until("the server recovered", lambda: _can_connect(server.url), timeout=30)
    return outcomes


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize(("layer", "driver"), PG_COMBOS)
def test_postgresql_crash_of_another_backend(
    pg_crash: Outcomes, layer: str, driver: str, state: str
) -> None:
    """The server's 57P02 comes as a WARNING (PostgreSQL 14+), never as the error: no reason."""
    assert_gone(pg_crash[layer, driver, state], ConnectionLost, layer=layer, driver=driver)


@pytest.fixture(scope="module")
def mariadb_restart(own_mariadb: tuple[OwnMariaDB, Lab]) -> Outcomes:
    server, lab = own_mariadb
    sessions = _open_pairs(lab, MYSQL_COMBOS, MYSQL_SLEEP)
    server.restart()
    return _collect(sessions)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize(("layer", "driver"), MYSQL_PARAMS)
def test_mariadb_restart(mariadb_restart: Outcomes, layer: str, driver: str, state: str) -> None:
    """MariaDB says nothing when it shuts down: 2013 for every session."""
    ended = mariadb_restart[layer, driver, state]
    assert_gone(ended, ConnectionLost, layer=layer, driver=driver)
    assert ended.failure is not None
    assert ended.failure.code in ("2006", "2013")


# --------------------------------------------------------------------------- network loss


def _through_proxy(lab: Lab, proxy: Proxy) -> Lab:
    via = Server(f"{lab.server.name}-proxied", lab.engine, _with_port(lab.server.url, proxy.port))
    return Lab(via, lab.database, lab.version, lab.django_host)


def _with_port(url: str, port: int) -> str:
    from sessionward.core import parse_target

    target = parse_target(url)
    scheme, rest = url.split("://", 1)
    authority, _, path = rest.partition("/")
    userinfo = authority.rpartition("@")[0]
    host = target.host or "127.0.0.1"
    return f"{scheme}://{userinfo + '@' if userinfo else ''}{host}:{port}/{path}"


@contextlib.contextmanager
def _cut_network(lab: Lab, combos: list[tuple[str, str]], sleep: str) -> Iterator[Outcomes]:
    target = lab.server.url.split("@")[-1].split("/")[0]
    host, _, port = target.rpartition(":")
    proxy = Proxy(host or "127.0.0.1", int(port))
    proxied = _through_proxy(lab, proxy)
    try:
        sessions = _open_pairs(proxied, combos, sleep)
        proxy.cut()
        yield _collect(sessions)
    finally:
        proxied.close()
        proxy.close()


@pytest.fixture(scope="module")
def pg_network_cut(own_pg: tuple[OwnPostgres, Lab]) -> Iterator[Outcomes]:
    _, lab = own_pg
    with _cut_network(lab, PG_COMBOS, PG_SLEEP) as outcomes:
        yield outcomes


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize(("layer", "driver"), PG_COMBOS)
def test_postgresql_network_cut(
    pg_network_cut: Outcomes, layer: str, driver: str, state: str
) -> None:
    assert_gone(pg_network_cut[layer, driver, state], ConnectionLost, layer=layer, driver=driver)


@pytest.fixture(scope="module")
def mariadb_network_cut(own_mariadb: tuple[OwnMariaDB, Lab]) -> Iterator[Outcomes]:
    _, lab = own_mariadb
    with _cut_network(lab, MYSQL_COMBOS, MYSQL_SLEEP) as outcomes:
        yield outcomes


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize(("layer", "driver"), MYSQL_PARAMS)
def test_mariadb_network_cut(
    mariadb_network_cut: Outcomes, layer: str, driver: str, state: str
) -> None:
    assert_gone(
        mariadb_network_cut[layer, driver, state], ConnectionLost, layer=layer, driver=driver
    )


@pytest.mark.parametrize("driver", PG_DRIVERS)
def test_a_lost_autocommit_statement_may_still_commit(
    own_pg: tuple[OwnPostgres, Lab], driver: str
) -> None:
    """Why ``ConnectionLost.transaction_retry_safe`` is False: the server finishes the work."""
    _, lab = own_pg
    target = lab.server.url.split("@")[-1].split("/")[0]
    proxy = Proxy("127.0.0.1", int(target.rpartition(":")[2]))
    proxied = _through_proxy(lab, proxy)
    key = lab.key()
    statement = f"INSERT INTO sw_rows (id) SELECT {key} FROM pg_sleep(0.3)"
    try:
        session = proxied.session("driver", driver)
        session.start(statement)
        lab.wait_running(session, statement)
        proxy.cut()
        failure = session.result().failure
        assert_ended(failure, ConnectionLost, layer="driver", driver=driver)
        assert not ConnectionLost.transaction_retry_safe
        lab.wait_until(
            "the server committed the lost statement",
            lambda: bool(lab.sql("SELECT 1 FROM sw_rows WHERE id = %s", (key,))),
            timeout=5,
        )
    finally:
        proxied.close()
        proxy.close()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _can_connect(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


def test_own_servers_come_back(own_pg: tuple[OwnPostgres, Lab]) -> None:
    """After every restart and crash above, the server serves new sessions again."""
    _, lab = own_pg
    deadline = time.monotonic() + 10
    while not _can_connect(lab.server.url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lab.session("driver", "psycopg").rows("SELECT 1") == [(1,)]
