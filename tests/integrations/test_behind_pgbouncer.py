"""A hardened SQLAlchemy engine and a psycopg pool through PgBouncer in transaction mode.

Through the shared PgBouncer's ``sw_transaction`` (and ``sw_tiny_transaction``,
whose single server connection every client shares in turn):

- psycopg 3 prepares a statement after five runs of it, and asyncpg under
  SQLAlchemy prepares every statement and caches it; behind transaction
  pooling (PgBouncer before 1.21, or without ``max_prepared_statements``) the
  next client on that server session collides with it or misses it.  The
  documented settings, ``prepare_threshold=None`` and asyncpg's statement cache
  off with unique statement names, are what make it work; the failures without
  them are shown here too, so the docs' claims stay true.
- ``harden()`` with ``transaction()``: a server session terminated behind the
  pooler in the middle of a unit of work is replaced and the unit rerun, once;
- ``apply_transaction_timeouts`` on a hardened engine: the limits hold inside
  each transaction and no other client of the same server session sees them;
- ``psycopg_pool`` with ``failover_check``: a connection whose server session
  was terminated mid-transaction is thrown away and the pool serves a working one.

The Django engine behind the pooler is in ``test_behind_pgbouncer_django.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionward.core import Timeouts
from sessionward.errors import ConnectionLost, SessionTerminated, StatementTimeout, classify
from sessionward.psycopg import failover_check
from sessionward.sqlalchemy import apply_transaction_timeouts, harden, holders, transaction
from tests.fix_pgbouncer import Bouncer
from tests.fix_servers import unique

sqlalchemy = pytest.importorskip("sqlalchemy")
psycopg = pytest.importorskip("psycopg")
psycopg_pool = pytest.importorskip("psycopg_pool")

DRIVERS = ("psycopg", "psycopg2")


def direct(bouncer: Bouncer, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    """A statement on the server behind the pooler, straight (superuser, autocommit)."""
    with psycopg.connect(bouncer.server_url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return list(cursor.fetchall()) if cursor.description else []


def terminate(bouncer: Bouncer, pid: int) -> None:
    ((ended,),) = direct(bouncer, "SELECT pg_terminate_backend(%s, 5000)", (pid,))
    assert ended is True


def driver_args(driver: str, application: str) -> dict[str, Any]:
    """What the docs tell users to pass behind a transaction pooler."""
    args: dict[str, Any] = {"application_name": application}
    if driver == "psycopg":
        args["prepare_threshold"] = None
    return args


def sqlalchemy_url(bouncer: Bouncer, database: str, driver: str) -> str:
    return bouncer.url_for(database).replace("postgresql://", f"postgresql+{driver}://")


@pytest.fixture
def table(pgbouncer: Bouncer) -> Iterator[str]:
    """A table of its own in the database the pooler's databases point at."""
    name = unique("sw_pooled")
    direct(pgbouncer, f'CREATE TABLE "{name}" (id int NOT NULL, pid int NOT NULL)')
    yield name
    direct(pgbouncer, f'DROP TABLE IF EXISTS "{name}"')


# --------------------------------------------------------------------------- prepared statements


def _repeat_across_clients(bouncer: Bouncer, **kwargs: Any) -> None:
    """Two clients take turns on the single server session, each running one query 8 times."""
    url = bouncer.url_for("sw_tiny_transaction")
    with psycopg.connect(url, **kwargs) as first, psycopg.connect(url, **kwargs) as second:
        for n in range(8):
            for conn in (first, second):
                with conn.transaction():
                    assert conn.execute("SELECT %s::int + 1", (n,)).fetchone() == (n + 1,)


def test_psycopg_prepared_statements_break_behind_transaction_pooling(pgbouncer: Bouncer) -> None:
    """psycopg's default (prepare after 5 runs): the other client's statement is in the way."""
    with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
        _repeat_across_clients(pgbouncer)


def test_prepare_threshold_none_works_behind_transaction_pooling(pgbouncer: Bouncer) -> None:
    _repeat_across_clients(pgbouncer, prepare_threshold=None)


async def _asyncpg_on_two_server_connections(bouncer: Bouncer, **kwargs: Any) -> None:
    """One engine's statement, run again while another client holds the server
    connection it was prepared on: the pooler gives it another one."""
    from sqlalchemy.ext.asyncio import create_async_engine

    url = bouncer.transaction_url.replace("postgresql://", "postgresql+asyncpg://")
    query = url.partition("?")[0] + kwargs.pop("query", "")
    ours = create_async_engine(query, pool_size=1, **kwargs)
    other = create_async_engine(query, pool_size=1, **kwargs)
    try:
        for n in range(3):
            async with ours.begin() as conn:
                await conn.execute(sqlalchemy.text("SELECT :n + 1"), {"n": n})
            async with other.begin() as holder:
                # PgBouncer hands out the server connection used last: ours just left it.
                await holder.execute(sqlalchemy.text("SELECT 1"))
                async with ours.begin() as conn:
                    await conn.execute(sqlalchemy.text("SELECT :n + 1"), {"n": n})
    finally:
        await ours.dispose()
        await other.dispose()


def test_asyncpg_statement_cache_breaks_behind_transaction_pooling(
    start_pgbouncer: Callable[..., Bouncer],
) -> None:
    """On a PgBouncer of its own: the statements it leaves on server connections go with it."""
    pytest.importorskip("asyncpg")
    pgbouncer = start_pgbouncer()
    # Missing on the other server connection, or left there by an earlier client
    # (another process counts its statement names from 1 too).
    missing_or_taken = r"prepared statement \S+ (does not exist|already exists)"
    with pytest.raises(sqlalchemy.exc.DBAPIError, match=missing_or_taken):
        asyncio.run(_asyncpg_on_two_server_connections(pgbouncer))


def test_asyncpg_without_statement_cache_works_behind_transaction_pooling(
    pgbouncer: Bouncer,
) -> None:
    """The settings SQLAlchemy's asyncpg docs give, and the chaos test uses."""
    pytest.importorskip("asyncpg")
    asyncio.run(
        _asyncpg_on_two_server_connections(
            pgbouncer,
            query="?prepared_statement_cache_size=0",
            connect_args={
                "statement_cache_size": 0,
                "prepared_statement_name_func": lambda: f"__asyncpg_{uuid.uuid4().hex}__",
            },
        )
    )


# ------------------------------------------------------------------------ harden(), transaction()


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_server_session_terminated_mid_unit_is_replaced_and_the_unit_rerun(
    pgbouncer: Bouncer, table: str, driver: str
) -> None:
    application = unique("sw-pooled-app")
    engine = harden(
        sqlalchemy.create_engine(
            sqlalchemy_url(pgbouncer, "sw_transaction", driver),
            pool_size=2,
            connect_args=driver_args(driver, application),
        )
    )
    apply_transaction_timeouts(engine, Timeouts(statement_seconds=5))
    pids: list[int] = []

    @transaction(engine, retries=3)
    def unit(conn: Any) -> None:
        pid = int(conn.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar())
        pids.append(pid)
        assert conn.execute(sqlalchemy.text("SHOW statement_timeout")).scalar() == "5s"
        if len(pids) == 1:
            terminate(pgbouncer, pid)  # the server session under this transaction
        conn.execute(
            sqlalchemy.text(f'INSERT INTO "{table}" (id, pid) VALUES (1, :pid)'), {"pid": pid}
        )

    try:
        unit()
        assert len(pids) == 2, "the unit was not rerun after its server session ended"
        assert pids[0] != pids[1]
        assert direct(pgbouncer, f'SELECT id, pid FROM "{table}"') == [(1, pids[1])]
        assert holders(engine) == []
        # The pool goes on working, through the pooler, on a live server session.
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_driver_error_behind_the_pooler_is_the_servers_ending(
    pgbouncer: Bouncer, driver: str
) -> None:
    """What the unit above was rerun for: the server's 57P01, passed on by PgBouncer.

    psycopg2 reports only "server closed the connection unexpectedly" here, without
    the server's code, as it does with no pooler between: a ``ConnectionLost``.
    """
    engine = sqlalchemy.create_engine(
        sqlalchemy_url(pgbouncer, "sw_transaction", driver),
        poolclass=sqlalchemy.pool.NullPool,
        connect_args=driver_args(driver, unique("sw-pooled-raw")),
    )
    try:
        with engine.connect() as conn:
            pid = int(conn.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar())
            terminate(pgbouncer, pid)
            with pytest.raises(sqlalchemy.exc.OperationalError) as ended:
                conn.execute(sqlalchemy.text("SELECT 1"))
        assert ended.value.connection_invalidated
        assert classify(ended.value) is (
            SessionTerminated if driver == "psycopg" else ConnectionLost
        )
    finally:
        engine.dispose()


@pytest.mark.parametrize("driver", DRIVERS)
def test_hardened_per_transaction_limits_leak_to_no_other_client(
    pgbouncer: Bouncer, driver: str
) -> None:
    """``sw_tiny_transaction``: one server session, used by our engine and then another client."""
    engine = harden(
        sqlalchemy.create_engine(
            sqlalchemy_url(pgbouncer, "sw_tiny_transaction", driver),
            pool_size=1,
            connect_args=driver_args(driver, unique("sw-pooled-limits")),
        )
    )
    apply_transaction_timeouts(engine, Timeouts(statement_seconds=0.2, lock_seconds=0.1))
    try:
        with transaction(engine) as conn:
            assert conn.execute(sqlalchemy.text("SHOW statement_timeout")).scalar() == "200ms"
            assert conn.execute(sqlalchemy.text("SHOW lock_timeout")).scalar() == "100ms"
        with (
            pytest.raises(sqlalchemy.exc.OperationalError) as stopped,
            transaction(engine) as conn,
        ):
            conn.execute(sqlalchemy.text("SELECT pg_sleep(2)"))
        assert classify(stopped.value) is StatementTimeout
        # The same server session, now another client's: none of our limits.
        with psycopg.connect(
            pgbouncer.url_for("sw_tiny_transaction"), autocommit=True, prepare_threshold=None
        ) as other:
            assert other.execute("SHOW statement_timeout").fetchone() == ("0",)
            assert other.execute("SHOW lock_timeout").fetchone() == ("0",)
        with transaction(engine) as conn:  # and ours again, in the next transaction
            assert conn.execute(sqlalchemy.text("SHOW statement_timeout")).scalar() == "200ms"
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- psycopg_pool


def test_psycopg_pool_replaces_a_connection_whose_server_session_ended(
    pgbouncer: Bouncer, table: str
) -> None:
    application = unique("sw-pooled-pool")
    with psycopg_pool.ConnectionPool(
        pgbouncer.transaction_url,
        min_size=1,
        max_size=1,
        kwargs=driver_args("psycopg", application),
        check=failover_check,
        open=True,
    ) as pool:
        with pool.connection() as conn, conn.transaction():
            ((pid,),) = conn.execute("SELECT pg_backend_pid()").fetchall()
            terminate(pgbouncer, pid)
            with pytest.raises(psycopg.OperationalError) as ended:
                conn.execute("SELECT 1")
        assert classify(ended.value) is SessionTerminated
        assert conn.closed
        # The one connection of the pool is replaced; prepared statements stay off,
        # so running the same statement often across transactions is fine.
        for n in range(8):
            with pool.connection() as conn, conn.transaction():
                conn.execute(f'INSERT INTO "{table}" (id, pid) VALUES (%s, pg_backend_pid())', (n,))
        rows = direct(pgbouncer, f'SELECT id, pid FROM "{table}" ORDER BY id')
        assert [row[0] for row in rows] == list(range(8))
        assert pid not in {row[1] for row in rows}


@pytest.mark.parametrize("driver", DRIVERS)
def test_set_transaction_timeouts_holds_for_the_transaction_and_leaks_to_no_other_client(
    pgbouncer: Bouncer, driver: str
) -> None:
    from sessionward.errors import ConfigurationError
    from sessionward.psycopg import set_transaction_timeouts

    url = pgbouncer.url_for("sw_tiny_transaction")  # one server connection, shared by all
    module = pytest.importorskip(driver)
    conn = module.connect(url)
    try:
        cursor = conn.cursor()
        set_transaction_timeouts(conn, Timeouts(statement_seconds=0.5))
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("500ms",)
        with pytest.raises(module.Error) as raised:
            cursor.execute("SELECT pg_sleep(5)")
        assert classify(raised.value) is StatementTimeout
        conn.rollback()
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("0",)
        conn.rollback()
        conn.autocommit = True
        with pytest.raises(ConfigurationError, match="needs a transaction"):
            set_transaction_timeouts(conn, Timeouts(statement_seconds=0.5))
    finally:
        conn.close()
    with psycopg.connect(url, autocommit=True) as other:
        assert other.execute("SHOW statement_timeout", prepare=False).fetchone() == ("0",)
