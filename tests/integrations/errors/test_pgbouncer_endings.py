"""Endings made by PgBouncer itself, provoked for real, classified raw and wrapped.

Each PgBouncer here is a private one (``tests/fix_pgbouncer.py``) with the
setting that provokes its ending; the PostgreSQL behind it is the shared test
server, reached directly or through a TCP proxy that can cut the link.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionward.errors import (
    PoolerIdleTimeout,
    PoolerKilled,
    PoolerRefused,
    PoolerServerLost,
    PoolerWaitTimeout,
    SessionEnded,
    SessionTerminated,
    classify,
    translate,
)
from sessionward.sqlalchemy import classify_errors
from tests.fix_pgbouncer import Bouncer, start, stop
from tests.fix_proxy import Proxy
from tests.fix_servers import wait_until

pytest.importorskip("psycopg")

DRIVERS = ("psycopg", "psycopg2", "sqlalchemy+psycopg", "sqlalchemy+psycopg2")


class Client:
    """One connection through a driver, raw or under SQLAlchemy, in autocommit."""

    def __init__(self, driver: str, url: str, **connect_args: Any) -> None:
        self.driver = driver
        self._engine: Any = None
        if driver.startswith("sqlalchemy+"):
            import sqlalchemy
            from sqlalchemy.pool import NullPool

            dbapi = driver.partition("+")[2]
            self._engine = sqlalchemy.create_engine(
                url.replace("postgresql://", f"postgresql+{dbapi}://", 1),
                isolation_level="AUTOCOMMIT",
                poolclass=NullPool,
                connect_args=connect_args,
            )
            # Keeps the server's (or the pooler's) reason psycopg2 would lose.
            classify_errors(self._engine)
            try:
                self.conn = self._engine.connect()
            except BaseException:
                self._engine.dispose()
                raise
        elif driver == "psycopg2":
            import psycopg2

            self.conn = psycopg2.connect(url, **connect_args)
            self.conn.autocommit = True
        else:
            import psycopg

            self.conn = psycopg.connect(url, autocommit=True, **connect_args)

    def run(self, sql: str) -> Any:
        if self._engine is not None:
            import sqlalchemy

            return self.conn.execute(sqlalchemy.text(sql)).fetchall()
        cursor = self.conn.cursor()
        cursor.execute(sql)
        return cursor.fetchall()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        if self._engine is not None:
            self._engine.dispose()


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(driver: str, url: str, **connect_args: Any) -> Client:
        client = Client(driver, url, **connect_args)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def ended_by(action: Callable[[], Any]) -> BaseException:
    """The error ``action`` raised; fail when it raised none."""
    try:
        action()
    except Exception as error:
        return error
    raise AssertionError("the statement was not ended")


def assert_class(error: BaseException, expected: type[SessionEnded]) -> None:
    assert classify(error) is expected, f"{type(error).__name__}: {error}"
    with pytest.raises(expected) as translated, translate():
        raise error
    assert translated.value.__cause__ is error


@contextlib.contextmanager
def bouncer(settings: dict[str, object] | None = None, **kwargs: Any) -> Iterator[Bouncer]:
    started = start(settings, **kwargs)
    try:
        yield started
    finally:
        stop(started)


@pytest.fixture(scope="module")
def short_waits() -> Iterator[Bouncer]:
    with bouncer({"query_wait_timeout": 1, "client_idle_timeout": 1}) as started:
        yield started


@pytest.mark.parametrize("driver", DRIVERS)
def test_query_wait_timeout(driver: str, short_waits: Bouncer, clients: Any) -> None:
    url = short_waits.url_for("sw_tiny_transaction")  # one server connection, shared
    waiter = clients(driver, url)
    waiter.run("SELECT 1")  # connected (SQLAlchemy has read the server version), then idle
    holder = clients("psycopg", url)
    holder.conn.execute("BEGIN")  # takes the only server connection until COMMIT
    holder.conn.execute("SELECT 1")
    began = time.monotonic()
    error = ended_by(lambda: waiter.run("SELECT 1"))
    assert time.monotonic() - began < 10
    assert_class(error, PoolerWaitTimeout)


@pytest.mark.parametrize("driver", DRIVERS)
def test_client_idle_timeout(driver: str, short_waits: Bouncer, clients: Any) -> None:
    # Transaction pooling: between statements the client holds no server connection,
    # which is when PgBouncer's client_idle_timeout applies.
    idle = clients(driver, short_waits.transaction_url, application_name=f"sw-idle-{driver}")
    idle.run("SELECT 1")

    def gone() -> bool:
        rows = short_waits.admin("SHOW CLIENTS")
        return not any(f"sw-idle-{driver}" in map(str, row) for row in rows)

    wait_until(gone, timeout=15, what="PgBouncer to drop the idle client")
    assert_class(ended_by(lambda: idle.run("SELECT 1")), PoolerIdleTimeout)


@pytest.fixture(scope="module")
def plain() -> Iterator[Bouncer]:
    with bouncer() as started:
        yield started


@pytest.mark.parametrize("driver", DRIVERS)
def test_kill_from_the_admin_console(driver: str, plain: Bouncer, clients: Any) -> None:
    victim = clients(driver, plain.url_for("sw_session"))
    bystander = clients("psycopg", plain.transaction_url)
    victim.run("SELECT 1")
    bystander.run("SELECT 1")
    plain.admin("KILL sw_session")
    try:
        error = ended_by(lambda: victim.run("SELECT 1"))
    finally:
        plain.admin("RESUME sw_session")
    assert_class(error, PoolerKilled)
    assert bystander.run("SELECT 1") == [(1,)]


@pytest.mark.parametrize("driver", DRIVERS)
def test_startup_options_are_refused(driver: str, plain: Bouncer, clients: Any) -> None:
    error = ended_by(
        lambda: clients(driver, plain.transaction_url, options="-c statement_timeout=1000")
    )
    assert_class(error, PoolerRefused)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_server_ending_through_the_pooler_is_the_servers(
    driver: str, plain: Bouncer, clients: Any
) -> None:
    import psycopg

    victim = clients(driver, plain.session_url)
    ((pid,),) = victim.run("SELECT pg_backend_pid()")
    with psycopg.connect(plain.server_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    error = ended_by(lambda: victim.run("SELECT 1"))
    assert_class(error, SessionTerminated)


@pytest.mark.parametrize("driver", DRIVERS)
def test_server_conn_crashed(driver: str, clients: Any) -> None:
    proxy = Proxy("127.0.0.1", 5432)
    try:
        with bouncer(pg_port=proxy.port) as through_proxy:
            victim = clients(driver, through_proxy.session_url)
            victim.run("SELECT 1")
            outcome: list[BaseException] = []
            thread = threading.Thread(
                target=lambda: outcome.append(ended_by(lambda: victim.run("SELECT pg_sleep(5)"))),
                daemon=True,
            )
            thread.start()

            def sleeping() -> bool:
                rows = through_proxy.admin("SHOW SERVERS")
                return any("active" in map(str, row) for row in rows)

            wait_until(sleeping, what="the statement to reach the server")
            time.sleep(0.2)
            proxy.cut()
            thread.join(10)
            (error,) = outcome
            assert_class(error, PoolerServerLost)
    finally:
        proxy.close()
