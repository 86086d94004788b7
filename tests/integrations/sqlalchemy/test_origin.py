"""``harden(origin=...)``: what the server sees of each session's origin, on real servers.

PostgreSQL shows ``application_name`` and the last statement of an idle session
(``pg_stat_activity.query``); MariaDB shows the statement only while it runs
(``PROCESSLIST.INFO``), and its connection attributes only with
``performance_schema`` on (off by default, and on the test server).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from sessionward.core import ConfigurationError, Origin, parse_origin
from sessionward.sqlalchemy import FallbackWarning, harden, holders
from tests.fix_servers import PG_ENV, _mysql_server, _pg_params, _pg_server, missing_server
from tests.integrations.sqlalchemy.conftest import Lab, _Databases, need_mysqlclient, wait_until

#: The code line as the comment names it: this file's path from the repository root.
HERE = "tests/integrations/sqlalchemy/test_origin.py"
HOST = socket.gethostname()
COMMENT = re.compile(r" /\*sw_[^*]*\*/$")


def _line_above() -> int:
    """The line above the caller's: the checkout line in ``with engine.connect() as c:``."""
    return sys._getframe(1).f_lineno - 1


@pytest.fixture(
    params=[
        pytest.param((pg.values[0], driver), id=f"pg-{pg.values[0]}-{driver}")
        for pg in _pg_params()
        for driver in ("psycopg", "psycopg2")
    ]
)
def pg_lab(request: pytest.FixtureRequest, sqla_databases: _Databases) -> Iterator[Lab]:
    which, driver = request.param
    server = _pg_server(request, which)
    made = Lab(server, sqla_databases.on(server), driver)
    yield made
    made.close()


@pytest.fixture(params=["pymysql", "mysqldb"])
def mysql_lab(request: pytest.FixtureRequest, sqla_databases: _Databases) -> Iterator[Lab]:
    if request.param == "mysqldb":
        need_mysqlclient()
    server = _mysql_server()
    made = Lab(server, sqla_databases.on(server), request.param)
    yield made
    made.close()


def _activity(lab: Lab, pid: int) -> tuple[str, str, str]:
    """``application_name``, ``state`` and ``query`` of a PostgreSQL session."""
    ((name, state, query),) = lab.sql(
        "SELECT application_name, state, query FROM pg_stat_activity WHERE pid = %s", (pid,)
    )
    return name, state, query


# --------------------------------------------------------------------------- PostgreSQL


def test_an_idle_transaction_names_its_service_holder_and_checkout_line(pg_lab: Lab) -> None:
    engine = harden(pg_lab.engine(), origin="billing")
    with engine.connect() as connection:
        line = _line_above()
        pid = pg_lab.pid_of(connection)  # SQLAlchemy began a transaction: now idle in it
        name, state, query = _activity(pg_lab, pid)

    assert name == f"billing[{os.getpid()}]@{HOST}"[:63]
    assert state == "idle in transaction"
    assert query.startswith("SELECT pg_backend_pid() /*sw_")
    origin = parse_origin(name, query)
    assert origin == Origin(
        service="billing",
        host=HOST,
        pid=os.getpid(),
        holder="MainThread",
        code=f"{HERE}:{line}",
    )


def test_the_default_service_is_the_program_name(pg_lab: Lab) -> None:
    engine = harden(pg_lab.engine())
    with engine.connect() as connection:
        name, _, query = _activity(pg_lab, pg_lab.pid_of(connection))
    program = os.path.basename(sys.argv[0])
    if program == "__main__.py":
        program = os.path.basename(os.path.dirname(sys.argv[0]))
    assert name == f"{program}[{os.getpid()}]@{HOST}"[:63]
    origin = parse_origin(name, query)
    assert origin is not None
    assert origin.service == program


@pytest.mark.parametrize("where", ["connect_args", "url", "options"])
def test_a_users_application_name_is_left_alone(pg_lab: Lab, where: str) -> None:
    kwargs: dict[str, Any] = {}
    url = pg_lab.url
    if where == "connect_args":
        kwargs["connect_args"] = {"application_name": "mine"}
    elif where == "url":
        url += "?application_name=mine"
    else:
        kwargs["connect_args"] = {"options": "-c application_name=mine"}
    engine = harden(sqlalchemy.create_engine(url, **kwargs))
    try:
        with engine.connect() as connection:
            name, _, query = _activity(pg_lab, pg_lab.pid_of(connection))
    finally:
        engine.dispose()
    assert name == "mine"
    assert COMMENT.search(query), "the statements are still tagged"


def test_pgappname_wins_over_ours(pg_lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGAPPNAME", "from-env")
    engine = harden(pg_lab.engine(), origin="billing")
    with engine.connect() as connection:
        name, _, _ = _activity(pg_lab, pg_lab.pid_of(connection))
    assert name == "from-env"


def test_origin_false_sends_nothing(pg_lab: Lab) -> None:
    engine = harden(pg_lab.engine(), origin=False)
    with engine.connect() as connection:
        name, _, query = _activity(pg_lab, pg_lab.pid_of(connection))
    assert name == ""
    assert query == "SELECT pg_backend_pid()"


def test_a_statement_with_a_comment_of_its_own_is_untouched(pg_lab: Lab) -> None:
    engine = harden(pg_lab.engine())
    with engine.connect() as connection:
        pid = pg_lab.pid_of(connection)
        connection.exec_driver_sql("SELECT 1 /* mine */").scalar()
        _, _, query = _activity(pg_lab, pid)
        connection.exec_driver_sql("SELECT 2 -- mine").scalar()
        _, _, second = _activity(pg_lab, pid)
    assert query == "SELECT 1 /* mine */"
    assert second == "SELECT 2 -- mine"


def test_percent_signs_reach_the_server_once_whatever_the_parameters(pg_lab: Lab) -> None:
    engine = harden(pg_lab.engine(), origin="a b%c")  # a service that needs URL-encoding
    with engine.connect() as connection:
        line = _line_above()
        pid = pg_lab.pid_of(connection)
        seen = []
        for run in (
            lambda: connection.exec_driver_sql("SELECT 1"),  # (): the driver reads %
            lambda: connection.execute(text("SELECT :x"), {"x": 1}),
            lambda: connection.execute(text("SELECT 'a%' LIKE :x"), {"x": "a%"}),
            lambda: connection.execution_options(no_parameters=True).exec_driver_sql("SELECT 1"),
        ):
            assert run().scalar() in (1, True)
            name, _, query = _activity(pg_lab, pid)
            seen.append(parse_origin(name, query))
    assert all(origin is not None and origin.service == "a b%c" for origin in seen), seen
    assert {origin.code for origin in seen if origin is not None} == {f"{HERE}:{line}"}


def test_the_size_cap_leaves_out_the_code_line_then_everything(pg_lab: Lab) -> None:
    small = harden(pg_lab.engine(), origin="billing", origin_max_bytes=100)
    with small.connect() as connection:
        name, _, query = _activity(pg_lab, pg_lab.pid_of(connection))
    comment = COMMENT.search(query)
    assert comment is not None
    assert len(comment.group().strip()) <= 100
    origin = parse_origin(None, query)
    assert origin is not None
    assert origin.service == "billing"
    assert origin.code is None

    none = harden(pg_lab.engine(), origin="billing", origin_max_bytes=0)
    with none.connect() as connection:
        name, _, query = _activity(pg_lab, pg_lab.pid_of(connection))
    assert query == "SELECT pg_backend_pid()"
    assert name.startswith("billing[")  # the connect-time name is no statement comment


def test_a_thread_is_named_without_its_counter_and_hostile_names_stay_inside(
    pg_lab: Lab,
) -> None:
    engine = harden(pg_lab.engine())
    found: list[Any] = []
    rows_before = pg_lab.sql("SELECT count(*) FROM sw_items")  # other tests share the table

    def work() -> None:
        with engine.connect() as connection:
            found.append(_activity(pg_lab, pg_lab.pid_of(connection)))

    for name in (None, "x*/; DROP TABLE sw_items; --'"):
        thread = threading.Thread(target=work, name=name)
        thread.start()
        thread.join()
    (_, _, plain), (_, _, hostile) = found
    plain_origin = parse_origin(None, plain)
    hostile_origin = parse_origin(None, hostile)
    assert plain_origin is not None
    assert plain_origin.holder == "Thread (work)"
    assert hostile_origin is not None
    assert hostile_origin.holder == "x*/; DROP TABLE sw_items; --'"
    assert pg_lab.sql("SELECT count(*) FROM sw_items") == rows_before  # still there, as it was


def test_each_checkout_of_one_connection_names_its_own_thread_and_line(pg_lab: Lab) -> None:
    """The comment is looked up per checkout (cached per site and thread name): the same
    connection, taken from the same line, shows the thread that took it last, a renamed
    thread by its new name; taken from another line, that line."""
    engine = harden(pg_lab.engine(pool_size=1, max_overflow=0), origin="billing")
    seen: list[tuple[int, Origin | None]] = []

    def look(connection: Any) -> None:
        pid = pg_lab.pid_of(connection)
        name, _, query = _activity(pg_lab, pid)
        seen.append((pid, parse_origin(name, query)))

    def take() -> int:
        with engine.connect() as connection:
            line = _line_above()
            look(connection)
        return line

    def work() -> None:
        take()
        take()  # from the cache
        threading.current_thread().name = "renamed"
        take()

    line = take()
    take()
    thread = threading.Thread(target=work, name="first")
    thread.start()
    thread.join()
    take()
    with engine.connect() as connection:
        other = _line_above()
        look(connection)

    assert len({pid for pid, _ in seen}) == 1  # one connection throughout
    got = [(origin.holder, origin.code) if origin is not None else None for _, origin in seen]
    assert got == [
        ("MainThread", f"{HERE}:{line}"),
        ("MainThread", f"{HERE}:{line}"),
        ("first", f"{HERE}:{line}"),
        ("first", f"{HERE}:{line}"),
        ("renamed", f"{HERE}:{line}"),
        ("MainThread", f"{HERE}:{line}"),
        ("MainThread", f"{HERE}:{other}"),
    ]


def test_two_connections_held_at_once_name_their_own_holders(pg_lab: Lab) -> None:
    engine = harden(pg_lab.engine(pool_size=2, max_overflow=0))
    held, done = threading.Event(), threading.Event()
    theirs: list[tuple[int, int]] = []

    def hold() -> None:
        with engine.connect() as connection:
            theirs.append((pg_lab.pid_of(connection), _line_above()))
            held.set()
            done.wait(30)

    thread = threading.Thread(target=hold, name="holder")
    thread.start()
    try:
        assert held.wait(30)
        with engine.connect() as connection:
            ours = (pg_lab.pid_of(connection), _line_above())
            found = {pid: parse_origin(*_activity(pg_lab, pid)[::2]) for pid, _ in (ours, *theirs)}
    finally:
        done.set()
        thread.join()
    ((their_pid, their_line),) = theirs
    assert ours[0] != their_pid
    mine, other = found[ours[0]], found[their_pid]
    assert mine is not None
    assert other is not None
    assert (mine.holder, mine.code) == ("MainThread", f"{HERE}:{ours[1]}")
    assert (other.holder, other.code) == ("holder", f"{HERE}:{their_line}")


@pytest.fixture(params=[pytest.param(pg.values[0], id=f"pg-{pg.values[0]}") for pg in _pg_params()])
def psycopg_lab(request: pytest.FixtureRequest, sqla_databases: _Databases) -> Iterator[Lab]:
    server = _pg_server(request, request.param)
    made = Lab(server, sqla_databases.on(server), "psycopg")
    yield made
    made.close()


def test_psycopg_server_side_prepared_statements_still_happen(psycopg_lab: Lab) -> None:
    """psycopg prepares a statement at its 5th run on a connection (``prepare_threshold``):
    it does so across checkouts from one line, so each checkout sends the same text.
    (Committed transactions: psycopg forgets what it prepared at a rollback.)"""
    engine = harden(psycopg_lab.engine(pool_size=1, max_overflow=0))
    lines = set()
    for _ in range(6):
        with engine.begin() as connection:
            lines.add(_line_above())
            assert connection.execute(text("SELECT :x + 1"), {"x": 1}).scalar() == 2
    with engine.begin() as connection:
        prepared = connection.exec_driver_sql(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'SELECT $1%%'"
        ).all()
    (statement,) = [row[0] for row in prepared]
    origin = parse_origin(None, statement)
    assert origin is not None
    assert {origin.code} == {f"{HERE}:{line}" for line in lines}


def test_executemany_is_tagged_and_inserts(pg_lab: Lab) -> None:
    engine = harden(pg_lab.engine())
    table = sqlalchemy.table("sw_transfers", sqlalchemy.column("id"))
    seen: list[str] = []

    @event.listens_for(engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    base = 10_000 + os.getpid() % 1000 * 100
    with engine.begin() as connection:
        pid = pg_lab.pid_of(connection)
        connection.execute(table.insert(), [{"id": base + i} for i in range(5)])  # one INSERT
        _, _, inserted = _activity(pg_lab, pid)
        connection.execute(  # cursor.executemany()
            text("UPDATE sw_transfers SET id = id WHERE id = :id"),
            [{"id": base + i} for i in range(5)],
        )
        _, _, updated = _activity(pg_lab, pid)
        count = connection.execute(
            text("SELECT count(*) FROM sw_transfers WHERE id >= :a AND id < :b"),
            {"a": base, "b": base + 5},
        ).scalar()
        connection.execute(text("DELETE FROM sw_transfers WHERE id >= :a"), {"a": base})
    assert count == 5
    assert inserted.startswith("INSERT INTO sw_transfers")
    assert updated.startswith("UPDATE sw_transfers")
    assert COMMENT.search(inserted)
    assert COMMENT.search(updated)
    # The comment is added in the driver: SQLAlchemy's events see the statements as before.
    assert seen
    assert not any(COMMENT.search(statement) for statement in seen), seen


# --------------------------------------------------------------------------- MariaDB


def test_a_running_statement_shows_its_origin_in_the_processlist(mysql_lab: Lab) -> None:
    engine = harden(mysql_lab.engine(), origin="billing")
    started = threading.Event()
    lines: list[int] = []

    def sleeper() -> None:
        with engine.connect() as connection:
            lines.append(_line_above())
            started.set()
            connection.exec_driver_sql("SELECT SLEEP(2)").scalar()

    thread = threading.Thread(target=sleeper, name="sw-sleeper")
    thread.start()
    try:
        started.wait(5)
        rows = wait_until_rows(
            mysql_lab,
            "SELECT INFO FROM information_schema.PROCESSLIST "
            "WHERE DB = %s AND INFO LIKE 'SELECT SLEEP(2)%%'",
            (mysql_lab.database,),
        )
    finally:
        thread.join()
    (info,) = [row[0] for row in rows]
    assert parse_origin(None, info) == Origin(
        service="billing",
        host=HOST,
        pid=os.getpid(),
        holder="sw-sleeper",
        code=f"{HERE}:{lines[0]}",
    )


def wait_until_rows(lab: Lab, query: str, params: Any) -> list[Any]:
    rows: list[Any] = []

    def found() -> bool:
        rows[:] = lab.sql(query, params)
        return bool(rows)

    wait_until("the statement shows in the process list", found)
    return rows


def test_mysql_origin_false_and_an_own_comment_send_nothing(mysql_lab: Lab) -> None:
    engine = harden(mysql_lab.engine(), origin=False)
    own = harden(mysql_lab.engine())
    infos: list[str] = []
    for which, statement in ((engine, "SELECT SLEEP(1)"), (own, "SELECT SLEEP(1) /* mine */")):
        thread = threading.Thread(target=_run_on, args=(which, statement))
        thread.start()
        try:
            rows = wait_until_rows(
                mysql_lab,
                "SELECT INFO FROM information_schema.PROCESSLIST "
                "WHERE DB = %s AND INFO LIKE 'SELECT SLEEP(1)%%'",
                (mysql_lab.database,),
            )
        finally:
            thread.join()
        infos.append(rows[0][0])
    assert infos == ["SELECT SLEEP(1)", "SELECT SLEEP(1) /* mine */"]


def _run_on(engine: Engine, statement: str) -> None:
    with engine.connect() as connection:
        connection.exec_driver_sql(statement).scalar()


def test_pymysql_gets_a_program_name_unless_the_user_gave_one(mysql_lab: Lab) -> None:
    """What PyMySQL is handed (the server shows connection attributes only with
    ``performance_schema`` on); mysqlclient takes no connection attributes."""
    given: list[dict[str, Any]] = []

    def record(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        given.append(dict(cparams))

    ours = harden(mysql_lab.engine(), origin="billing")
    event.listen(ours, "do_connect", record)  # after harden's: sees what the driver gets
    engines = [ours]
    if mysql_lab.driver == "pymysql":  # mysqlclient refuses the argument
        theirs = harden(mysql_lab.engine(connect_args={"program_name": "mine"}))
        event.listen(theirs, "do_connect", record)
        engines.append(theirs)
    for engine in engines:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    expected: list[str | None] = [f"billing[{os.getpid()}]@{HOST}", "mine"]
    if mysql_lab.driver == "mysqldb":
        expected = [None]
    assert [d.get("program_name") for d in given] == expected


def test_mysql_executemany_still_batches(mysql_lab: Lab) -> None:
    """PyMySQL and mysqlclient send an ``executemany`` INSERT as one statement only
    when nothing follows its ``VALUES``: still one (the server's ``Com_insert``)."""
    engine = harden(mysql_lab.engine())
    base = 20_000 + os.getpid() % 1000 * 100
    status = "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
    status += "WHERE VARIABLE_NAME = 'COM_INSERT'"
    with engine.begin() as connection:
        before = int(connection.exec_driver_sql(status).scalar())
        connection.execute(
            text("INSERT INTO sw_transfers (id) VALUES (:id)"),
            [{"id": base + i} for i in range(5)],
        )
        inserts = int(connection.exec_driver_sql(status).scalar()) - before
        count = connection.execute(
            text("SELECT count(*) FROM sw_transfers WHERE id >= :a AND id < :b"),
            {"a": base, "b": base + 5},
        ).scalar()
        connection.execute(text("DELETE FROM sw_transfers WHERE id >= :a"), {"a": base})
    assert count == 5
    assert inserts == 1


# --------------------------------------------------------------------------- asyncpg


def test_asyncpg_statement_cache_stays_bounded_across_tasks(
    request: pytest.FixtureRequest, sqla_databases: _Databases
) -> None:
    pytest.importorskip("asyncpg")
    from sqlalchemy.ext.asyncio import create_async_engine

    if not os.environ.get(PG_ENV):
        missing_server(f"no PostgreSQL: set {PG_ENV}")
    server = _pg_server(request, "env")
    url = server.url_for(sqla_databases.on(server)).split("://", 1)[1]
    engine = harden(
        create_async_engine(f"postgresql+asyncpg://{url}", pool_size=1, max_overflow=0),
        origin="billing",
    )
    lines: list[int] = []

    async def one(x: int) -> int:
        async with engine.connect() as connection:
            lines.append(_line_above())
            return int((await connection.execute(text("SELECT :x + 1"), {"x": x})).scalar_one())

    async def run() -> list[Any]:
        try:
            # Twenty tasks (Task-N, each its own name) take the one connection in turn.
            assert await asyncio.gather(*(one(x) for x in range(20))) == list(range(1, 21))
            async with engine.connect() as connection:
                rows = await connection.exec_driver_sql(
                    "SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'SELECT $1%'"
                )
                found = [row[0] for row in rows]
                assert len(holders(engine)) == 1
            return found
        finally:
            await engine.dispose()

    (statement,) = asyncio.run(run())  # one prepared statement for twenty tasks
    origin = parse_origin(None, statement)
    assert origin is not None
    assert origin.holder == "Task (one)"
    assert origin.code == f"{HERE}:{lines[0]}"


@pytest.mark.parametrize("driver", ["psycopg_async", "aiomysql"])
def test_an_async_engine_names_the_task_and_its_line(
    request: pytest.FixtureRequest, sqla_databases: _Databases, driver: str
) -> None:
    if driver == "aiomysql":
        pytest.importorskip("aiomysql")
        server, scheme, sleep = _mysql_server(), "mysql+aiomysql", "SELECT SLEEP(1)"
        running = "SELECT INFO FROM information_schema.PROCESSLIST WHERE INFO LIKE %s AND DB = %s"
    else:
        if not os.environ.get(PG_ENV):
            missing_server(f"no PostgreSQL: set {PG_ENV}")
        server, scheme, sleep = (
            _pg_server(request, "env"),
            "postgresql+psycopg",
            "SELECT pg_sleep(1)",
        )
        running = (
            "SELECT query FROM pg_stat_activity "
            "WHERE query LIKE %s AND state = 'active' AND datname = %s"
        )
    from sqlalchemy.ext.asyncio import create_async_engine

    admin = Lab(server, sqla_databases.on(server), "pymysql" if driver == "aiomysql" else "psycopg")
    url = server.url_for(admin.database).split("://", 1)[1]
    engine = harden(create_async_engine(f"{scheme}://{url}"), origin="billing")
    lines: list[int] = []

    async def sleeper() -> None:
        async with engine.connect() as connection:
            lines.append(_line_above())
            await connection.exec_driver_sql(sleep)

    def seen() -> list[Any]:
        rows: list[Any] = []

        def found() -> bool:
            # This test's database only: the server is shared with other runs.
            rows[:] = admin.sql(running, (sleep + " /*%", admin.database))
            return bool(rows)

        wait_until("the statement shows on the server", found)
        return rows

    async def run() -> list[Any]:
        try:
            task = asyncio.create_task(sleeper(), name="sw-task")
            rows = await asyncio.to_thread(seen)
            await task
            return rows
        finally:
            await engine.dispose()

    try:
        ((statement,),) = asyncio.run(run())
    finally:
        admin.close()
    assert parse_origin(None, statement) == Origin(
        service="billing", host=HOST, pid=os.getpid(), holder="sw-task", code=f"{HERE}:{lines[0]}"
    )


def test_an_async_engines_own_do_execute_listeners_still_run(
    request: pytest.FixtureRequest, sqla_databases: _Databases
) -> None:
    """Async engines are tagged in the dialect's ``do_execute``, which runs the statement:
    an application's ``do_execute`` listeners added after ``harden()`` still run, in
    order, with the tagged statement, and one that runs the statement itself wins."""
    pytest.importorskip("asyncpg")
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine

    if not os.environ.get(PG_ENV):
        missing_server(f"no PostgreSQL: set {PG_ENV}")
    server = _pg_server(request, "env")
    url = server.url_for(sqla_databases.on(server)).split("://", 1)[1]
    engine = harden(create_async_engine(f"postgresql+asyncpg://{url}"), origin="billing")
    watched: list[str] = []
    ran_itself: list[str] = []

    @event.listens_for(engine.sync_engine, "do_execute")
    def watch(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        watched.append(statement)
        return False

    @event.listens_for(engine.sync_engine, "do_execute")
    def run_itself(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        if not statement.startswith("SELECT 41 "):
            return False
        ran_itself.append(statement)
        cursor.execute("SELECT 42 " + statement.removeprefix("SELECT 41 "), parameters)
        return True

    async def run() -> tuple[int, int]:
        try:
            async with engine.connect() as connection:
                plain = (await connection.execute(text("SELECT :x + 1"), {"x": 1})).scalar_one()
                swapped = (await connection.execute(text("SELECT 41"))).scalar_one()
                return int(plain), int(swapped)
        finally:
            await engine.dispose()

    assert asyncio.run(run()) == (2, 42)
    assert len(watched) >= 2
    assert len(ran_itself) == 1
    for statement in (*watched[-2:], *ran_itself):
        origin = parse_origin(None, statement)
        assert origin is not None
        assert origin.service == "billing"


def test_without_leak_tracking_the_line_is_still_named(pg_lab: Lab) -> None:
    engine = harden(pg_lab.engine(), track_leaks=False)
    with engine.connect() as connection:
        line = _line_above()
        _, _, query = _activity(pg_lab, pg_lab.pid_of(connection))
    origin = parse_origin(None, query)
    assert origin is not None
    assert origin.code == f"{HERE}:{line}"


def test_a_failure_of_ours_is_warned_once_and_the_statement_runs_untagged() -> None:
    from sessionward.integrations.sqlalchemy._origin import EngineOrigin

    origin = EngineOrigin(
        name="postgresql+psycopg://db/app",
        driver="psycopg",
        service="billing",
        max_bytes=512,
        is_async=False,
        paramstyle="pyformat",
        warning=FallbackWarning,
    )

    class Unreadable:
        @property
        def info(self) -> Any:
            raise RuntimeError("no info today")

    with pytest.warns(FallbackWarning, match="no info today"):
        assert origin.on_statement(Unreadable(), None, "SELECT 1", {}, None, False) == (
            "SELECT 1",
            {},
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: no second warning
        assert origin.on_statement(Unreadable(), None, "SELECT 2", {}, None, False) == (
            "SELECT 2",
            {},
        )


def test_bad_origin_arguments_are_refused(pg_lab: Lab) -> None:
    for bad in (
        {"origin": ""},
        {"origin": 3},
        {"origin_max_bytes": -1},
        {"origin_max_bytes": True},
    ):
        with pytest.raises(ConfigurationError, match="origin"):
            harden(pg_lab.engine(), **bad)


@pytest.mark.parametrize(("option", "expected"), [("billing", "billing["), ("false", "")])
def test_the_plugin_takes_the_origin_options(pg_lab: Lab, option: str, expected: str) -> None:
    engine = pg_lab.engine(plugins=["sessionward"], sessionward_origin=option)
    with engine.connect() as connection:
        name, _, query = _activity(pg_lab, pg_lab.pid_of(connection))
    assert name.startswith(expected)
    assert bool(expected) == bool(COMMENT.search(query))
    with pytest.raises(ConfigurationError, match="sessionward_origin_max_bytes"):
        sqlalchemy.create_engine(
            pg_lab.url, plugins=["sessionward"], sessionward_origin_max_bytes="x"
        )
