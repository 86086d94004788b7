"""``harden()`` changes nothing but what it promises: connections come from the engine's own
path (``do_connect`` listeners added later, ``module=``, ``creator=``), and anything of ours
that fails on a connection falls back to a ping, saying so once."""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from sessionward.sqlalchemy import FallbackWarning, harden
from tests.fix_servers import unique
from tests.integrations.sqlalchemy.conftest import Lab


def _pids_through(lab: Lab, engine: Engine, count: int) -> list[int]:
    """The server pids of ``count`` connections held at once, then returned."""
    with contextlib.ExitStack() as stack:
        connections = [stack.enter_context(engine.connect()) for _ in range(count)]
        return [lab.pid_of(connection) for connection in connections]


def _next_pid(lab: Lab, engine: Engine) -> int:
    with engine.connect() as connection:
        return lab.pid_of(connection)


# --------------------------------------------------------------------------- do_connect


@pytest.fixture
def token_user(lab: Lab) -> Iterator[tuple[str, str]]:
    """A MariaDB user that logs in with a short-lived "token" only (a password here)."""
    if lab.engine_kind != "mysql":
        yield "", ""
        return
    user, token = unique("sw_iam"), unique("tok")
    lab.sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{token}'")
    lab.sql(f"GRANT ALL ON `{lab.database}`.* TO '{user}'@'%'")
    yield user, token
    lab.sql(f"DROP USER IF EXISTS '{user}'@'%'")


def test_a_do_connect_listener_added_after_harden_is_honoured(
    lab: Lab, token_user: tuple[str, str]
) -> None:
    user, token = token_user
    url = make_url(lab.url)
    if lab.engine_kind == "mysql":
        url = url.set(username=user, password="expired-token")
    engine = harden(sqlalchemy.create_engine(url, pool_size=2, max_overflow=0))
    seen: list[int] = []

    @event.listens_for(engine, "do_connect")
    def inject_token(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        seen.append(1)
        if lab.engine_kind == "mysql":
            # mysqlclient's dialect passes the password as "passwd".
            cparams["passwd" if "passwd" in cparams else "password"] = token
            cparams["init_command"] = "SET @sw_probe = 42"
        else:
            cparams["application_name"] = "sw-token-probe"

    try:
        with engine.connect() as connection:
            if lab.engine_kind == "mysql":
                assert connection.exec_driver_sql("SELECT @sw_probe").scalar() == 42
                assert connection.exec_driver_sql("SELECT CURRENT_USER()").scalar().startswith(user)
            else:
                name = connection.exec_driver_sql("SHOW application_name").scalar()
                assert name == "sw-token-probe"
            first = lab.pid_of(connection)
        lab.terminate(first)
        assert _next_pid(lab, engine) != first  # replaced, with a fresh token
        assert len(seen) == 2
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- module=


class _CountingModule:
    """A DB-API module that counts connects, as instrumentation wrapping ``connect`` does."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.connects = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        self.connects += 1
        return self._real.connect(*args, **kwargs)


def test_a_module_wrapper_sees_every_connect(lab: Lab) -> None:
    real = lab.engine().dialect.loaded_dbapi
    module = _CountingModule(real)
    engine = harden(lab.engine(module=module, pool_size=2, max_overflow=0))
    pids = _pids_through(lab, engine, 2)
    lab.terminate(pids[0])
    after = _pids_through(lab, engine, 2)

    assert set(after) & set(pids) == {pids[1]}
    assert module.connects == len(set(pids) | set(after)) == 3


# --------------------------------------------------------------------------- creator=


def _creator(
    lab: Lab, wrap: Callable[[Any], Any] = lambda connection: connection, **more: Any
) -> Any:
    """A ``creator`` connecting with the lab's own driver and arguments; counts its calls."""
    dialect = lab.engine().dialect
    cargs, cparams = dialect.create_connect_args(make_url(lab.url))
    cparams.update(more)
    calls: list[int] = []

    def create() -> Any:
        calls.append(1)
        return wrap(dialect.loaded_dbapi.connect(*cargs, **cparams))

    create.calls = calls  # type: ignore[attr-defined]
    return create


def test_an_engine_with_a_creator_replaces_a_terminated_connection(lab: Lab) -> None:
    create = _creator(lab)
    scheme = make_url(lab.url).drivername
    engine = harden(sqlalchemy.create_engine(f"{scheme}://", creator=create, pool_size=1))
    try:
        first = _next_pid(lab, engine)
        lab.terminate(first)
        assert _next_pid(lab, engine) != first
        assert len(create.calls) == 2
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- fail open


class _Proxy:
    """Forwards everything to a real DB-API object."""

    def __init__(self, real: Any) -> None:
        object.__setattr__(self, "_real", real)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._real, name, value)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._real.__exit__(*exc_info)

    def __iter__(self) -> Any:
        return iter(self._real)


def _factless_cursor(driver: str, how: str) -> tuple[str, type]:
    """A cursor class of ``driver`` on which sessionward's fact query fails (``raises``) or
    returns junk, and the connect argument that installs it: the connection stays real."""
    base: Any
    error: Any
    if driver == "psycopg":
        import psycopg

        argument, base, error = "cursor_factory", psycopg.Cursor, psycopg.ProgrammingError
    elif driver == "psycopg2":
        import psycopg2.extensions

        argument, base = "cursor_factory", psycopg2.extensions.cursor
        error = psycopg2.ProgrammingError
    elif driver == "pymysql":
        import pymysql.cursors

        argument, base, error = "cursorclass", pymysql.cursors.Cursor, pymysql.ProgrammingError
    else:
        import MySQLdb.cursors

        argument, base, error = "cursorclass", MySQLdb.cursors.Cursor, MySQLdb.ProgrammingError

    class FactlessCursor(base):  # type: ignore[misc,valid-type]
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            if "idle_limit_seconds" not in str(query):
                return super().execute(query, *args, **kwargs)
            if how == "raises":  # as a PG-wire proxy or an older server would
                raise error("function pg_postmaster_start_time() does not exist")
            return super().execute("SELECT 'a proxy', 'says', 'hello'")

    return argument, FactlessCursor


@pytest.mark.parametrize("how", ["raises", "returns junk"])
def test_a_failing_fact_query_leaves_a_working_engine_and_one_warning(lab: Lab, how: str) -> None:
    argument, cursor_class = _factless_cursor(lab.driver, how)
    create = _creator(lab, **{argument: cursor_class})
    scheme = make_url(lab.url).drivername
    engine = harden(sqlalchemy.create_engine(f"{scheme}://", creator=create, pool_size=3))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pids = _pids_through(lab, engine, 3)
            more = threading.Thread(target=_pids_through, args=(lab, engine, 1))
            more.start()
            more.join()
            lab.terminate(pids[0])
            after = _pids_through(lab, engine, 3)  # the dead one is pinged and replaced
        fallbacks = [w for w in caught if issubclass(w.category, FallbackWarning)]
        assert len(fallbacks) == 1, [str(w.message) for w in caught]
        assert "facts of a new connection" in str(fallbacks[0].message)
        assert pids[0] not in after
        assert set(pids[1:]) <= set(after)
        assert len(create.calls) == 4
    finally:
        engine.dispose()


class _StandIn(_Proxy):
    """A connection that hides the driver's class, counting the statements run on it."""

    def __init__(self, real: Any, statements: list[str]) -> None:
        super().__init__(real)
        object.__setattr__(self, "_statements", statements)

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        return _CountingCursor(self._real.cursor(*args, **kwargs), self._statements)


class _CountingCursor(_Proxy):
    def __init__(self, real: Any, statements: list[str]) -> None:
        super().__init__(real)
        object.__setattr__(self, "_statements", statements)

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        self._statements.append(str(statement))
        return self._real.execute(statement, *args, **kwargs)


# SQLAlchemy's psycopg and psycopg2 dialects need the driver's own connection: a stand-in
# can only be tried on the MySQL drivers.
@pytest.mark.parametrize(
    "lab",
    [pytest.param(("mysql", "pymysql"), id="mysql-pymysql"),
     pytest.param(("mysql", "mysqldb"), id="mysql-mysqldb")],
    indirect=True,
)  # fmt: skip
def test_a_stand_in_connection_is_left_alone_and_pinged(lab: Lab) -> None:
    """A mock or a wrapper that is not the driver's connection: nothing of ours is run on it
    (a mocked DB-API counting calls sees none), it is pinged at checkout, and said so once."""
    statements: list[str] = []
    create = _creator(lab, lambda real: _StandIn(real, statements))
    scheme = make_url(lab.url).drivername
    engine = harden(sqlalchemy.create_engine(f"{scheme}://", creator=create, pool_size=1))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = _next_pid(lab, engine)
            lab.terminate(first)
            assert _next_pid(lab, engine) != first
        fallbacks = [w for w in caught if issubclass(w.category, FallbackWarning)]
        assert len(fallbacks) == 1, [str(w.message) for w in caught]
        assert "is not a" in str(fallbacks[0].message)
        assert not [sql for sql in statements if "idle_limit_seconds" in sql]
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the socket


def test_the_socket_is_found_on_a_connection_the_engine_made(lab: Lab) -> None:
    """Zero-round-trip liveness needs the socket: read from the connection, PyMySQL's too."""
    import socket

    engine = harden(lab.engine(pool_size=1, max_overflow=0))
    with engine.connect() as connection:
        fd = connection.connection.info.get("sessionward.fd")
        assert isinstance(fd, int)
        with socket.socket(fileno=os.dup(fd)) as sock:
            peer = sock.getpeername()
        assert peer[1] == make_url(lab.url).port
        pid = lab.pid_of(connection)
        if lab.engine_kind == "mysql":
            (host,) = lab.sql(
                "SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = %s", (pid,)
            )[0]
            with socket.socket(fileno=os.dup(fd)) as sock:
                assert host.endswith(f":{sock.getsockname()[1]}")


def test_a_failure_in_our_checkout_falls_back_to_a_ping(lab: Lab) -> None:
    """Whatever breaks inside sessionward at checkout, the application gets a live connection."""
    engine = harden(lab.engine(pool_size=1, max_overflow=0))
    with engine.connect() as connection:
        first = lab.pid_of(connection)
        connection.connection.info["sessionward.liveness"] = object()  # breaks our listener
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with engine.connect() as connection:  # alive: pinged, and kept
            assert lab.pid_of(connection) == first
        lab.terminate(first)
        with engine.connect() as connection:  # dead: the ping fails, it is replaced
            assert lab.pid_of(connection) != first
    fallbacks = [w for w in caught if issubclass(w.category, FallbackWarning)]
    assert len(fallbacks) == 1, [str(w.message) for w in caught]
    assert "checkout" in str(fallbacks[0].message)
