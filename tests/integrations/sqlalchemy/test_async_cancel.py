"""Cancellation under a hardened ``AsyncEngine`` (asyncpg, psycopg async, aiomysql), real servers.

A task cancelled mid-query (``asyncio.timeout``, ``wait_for``, a ``TaskGroup`` sibling
failing) must never hand the next user a connection with a statement running or a
transaction open, nor leave its server session running: the next checkout works at once,
the row locks it held are free, and the server lists no active or idle-in-transaction
session of the pool.  The statements cancelled run for 30 s, so a session left behind
would still be listed long after the 2 s the checks allow the server to let go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("greenlet")

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from sessionward.sqlalchemy import harden
from tests.fix_servers import PG_ENV, _mysql_server, _pg_server, missing_server
from tests.integrations.sqlalchemy.conftest import Lab, _Databases, wait_until
from tests.integrations.sqlalchemy.test_async_harden import DRIVERS, MYSQL_MODULES, AsyncLab

#: How long a cancelled statement would run on: far past every check below.
LONG_SECONDS = 30
#: How long the server may take to let go of a discarded session (its backend exiting).
LET_GO_SECONDS = 2.0
#: How often the server is asked meanwhile: slower than InnoDB's ``INNODB_TRX`` cache.
POLL_SECONDS = 0.15
#: How many cancellations the fuzz makes per driver, and its seed.
FUZZ_CANCELS = 1000
FUZZ_SEED = 16
#: Tasks cancelled together in each round of the fuzz.
FUZZ_WORKERS = 4


class CancelLab:
    """One hardened engine whose sessions the server can tell apart, and a row of its own."""

    def __init__(self, lab: AsyncLab) -> None:
        self.lab = lab
        self.admin = lab.admin
        self.postgresql = self.admin.engine_kind == "postgresql"
        self.app = f"sw_cancel_{uuid.uuid4().hex[:8]}"
        self.row = random.SystemRandom().randrange(1, 2**31)
        self.admin.sql("INSERT INTO sw_accounts (id, balance) VALUES (%s, 0)", (self.row,))
        self.engine = self._engine()

    def _engine(self) -> AsyncEngine:
        connect_args: dict[str, Any] = {}
        if self.lab.driver == "asyncpg":
            connect_args = {"server_settings": {"application_name": self.app}}
        elif self.lab.driver == "psycopg_async":
            connect_args = {"application_name": self.app}
        engine = create_async_engine(
            self.lab.url, pool_size=FUZZ_WORKERS, max_overflow=0, connect_args=connect_args
        )
        self.lab.engines.append(engine)
        return harden(engine)

    def close(self) -> None:
        self.admin.sql("DELETE FROM sw_accounts WHERE id = %s", (self.row,))

    # ------------------------------------------------------------------ statements

    def sleep(self, seconds: float) -> Any:
        return text(
            f"SELECT pg_sleep({seconds})" if self.postgresql else f"SELECT SLEEP({seconds})"
        )

    def add_one(self, row: int | None = None) -> Any:
        row = self.row if row is None else row
        return text(f"UPDATE sw_accounts SET balance = balance + 1 WHERE id = {row}")

    async def hold_then_sleep(self, ready: asyncio.Event | None = None) -> None:
        """Lock the row in a transaction, then run a long statement."""
        async with self.engine.connect() as connection:
            await connection.execute(self.add_one())
            if ready is not None:
                ready.set()
            await connection.execute(self.sleep(LONG_SECONDS))

    # ------------------------------------------------------------------ server's view

    def leftovers(self) -> list[Any]:
        """The pool's sessions that run a statement or hold a transaction open.

        (InnoDB refreshes its ``INNODB_TRX`` cache only when it was not read for 0.1 s:
        read more often, it keeps listing a transaction rolled back since.  Hence
        ``assert_let_go`` polls more slowly than that.)"""
        if self.postgresql:
            return self.admin.sql(
                "SELECT pid, state, query FROM pg_stat_activity "
                "WHERE application_name = %s AND state <> 'idle'",
                (self.app,),
            )
        return self.admin.sql(
            "SELECT p.ID, p.COMMAND, p.INFO, t.trx_id "
            "FROM information_schema.PROCESSLIST p "
            "LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID "
            "WHERE p.DB = %s AND p.ID <> CONNECTION_ID() "
            "AND (p.COMMAND <> 'Sleep' OR t.trx_id IS NOT NULL)",
            (self.admin.database,),
        )

    def sessions(self) -> list[Any]:
        if self.postgresql:
            return self.admin.sql(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (self.app,)
            )
        return self.admin.sql(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
            (self.admin.database,),
        )

    def assert_no_sessions(self) -> None:
        """After ``dispose``: within ``LET_GO_SECONDS`` no session of the pool is left."""
        try:
            wait_until("the sessions ended", lambda: not self.sessions(), LET_GO_SECONDS)
        except AssertionError:
            raise AssertionError(f"sessions left after dispose: {self.sessions()}") from None

    def assert_let_go(self) -> None:
        """Within ``LET_GO_SECONDS`` the server lists nothing of the pool at work."""
        deadline = time.monotonic() + LET_GO_SECONDS
        while left := self.leftovers():
            if time.monotonic() > deadline:
                raise AssertionError(f"left behind on the server: {left}")
            time.sleep(POLL_SECONDS)

    def balance(self) -> int:
        return int(
            self.admin.sql("SELECT balance FROM sw_accounts WHERE id = %s", (self.row,))[0][0]
        )

    async def next_use(self, row: int | None = None) -> int:
        """Check out at once, lock the row (``row``, else the lab's) within a 1 s lock
        timeout, roll back: the server pid used."""
        async with _timeout(5), self.engine.connect() as connection:
            await self._short_lock_wait(connection)
            await connection.execute(self.add_one(row))
            pid = await self.lab.pid_of(connection)
            await connection.rollback()
            return pid

    async def _short_lock_wait(self, connection: AsyncConnection) -> None:
        if self.postgresql:
            await connection.execute(text("SET LOCAL lock_timeout = '1s'"))
        else:
            await connection.execute(text("SET SESSION innodb_lock_wait_timeout = 1"))


@pytest.fixture(params=list(DRIVERS))
def cancel_lab(request: pytest.FixtureRequest, sqla_databases: _Databases) -> Iterator[CancelLab]:
    _, module, admin_driver = DRIVERS[request.param]
    pytest.importorskip(module)
    if module in MYSQL_MODULES:
        server = _mysql_server()
    else:
        if not os.environ.get(PG_ENV):
            missing_server(f"no PostgreSQL: set {PG_ENV}")
        server = _pg_server(request, "env")
    admin = Lab(server, sqla_databases.on(server), admin_driver)
    made = CancelLab(AsyncLab(admin, request.param))
    yield made
    made.close()
    admin.close()


#: What a timed-out wait raises: ``asyncio.TimeoutError`` is ``TimeoutError`` from 3.11 on.
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError)

if sys.version_info >= (3, 11):
    _timeout = asyncio.timeout
else:

    @contextlib.asynccontextmanager
    async def _timeout(seconds: float) -> AsyncIterator[None]:
        """``asyncio.timeout`` for Python 3.10: cancel the task, raise ``TimeoutError``."""
        task = asyncio.current_task()
        assert task is not None
        fired = []

        def fire() -> None:
            fired.append(True)
            task.cancel()

        handle = asyncio.get_running_loop().call_later(seconds, fire)
        try:
            yield
        except asyncio.CancelledError:
            if fired:
                raise TimeoutError from None
            raise
        finally:
            handle.cancel()


async def _cancel_by_timeout(lab: CancelLab) -> None:
    async with _timeout(0.3):
        await lab.hold_then_sleep()


async def _cancel_by_wait_for(lab: CancelLab) -> None:
    await asyncio.wait_for(lab.hold_then_sleep(), 0.3)


async def _cancel_by_sibling(lab: CancelLab) -> None:
    ready = asyncio.Event()

    async def fail_once_holding() -> None:
        await ready.wait()
        await asyncio.sleep(0.1)
        raise ValueError("a sibling failed")

    async with asyncio.TaskGroup() as group:
        group.create_task(lab.hold_then_sleep(ready))
        group.create_task(fail_once_holding())


CANCELLERS: dict[str, Callable[[CancelLab], Awaitable[None]]] = {
    "timeout": _cancel_by_timeout,
    "wait_for": _cancel_by_wait_for,
}
if hasattr(asyncio, "TaskGroup"):  # Python 3.11+
    CANCELLERS["taskgroup"] = _cancel_by_sibling


def _raised(how: str) -> Any:
    """What the application sees: a ``TimeoutError``, or the sibling's error in a group."""
    return pytest.RaisesGroup(ValueError) if how == "taskgroup" else pytest.raises(_TIMEOUTS)


@pytest.mark.parametrize("how", list(CANCELLERS))
def test_a_task_cancelled_mid_statement_leaves_nothing_behind(
    cancel_lab: CancelLab, how: str
) -> None:
    async def run() -> None:
        with _raised(how):
            await CANCELLERS[how](cancel_lab)
        # The next checkout works at once, and the row the cancelled task locked is free.
        await cancel_lab.next_use()
        cancel_lab.assert_let_go()
        assert cancel_lab.balance() == 0, "the cancelled transaction was committed"

    cancel_lab.lab.run(run)
    cancel_lab.assert_no_sessions()


def test_a_task_cancelled_while_idle_in_a_transaction_returns_it_rolled_back(
    cancel_lab: CancelLab,
) -> None:
    async def run() -> None:
        held: list[int] = []

        async def hold_idle() -> None:
            async with cancel_lab.engine.connect() as connection:
                await connection.execute(cancel_lab.add_one())
                held.append(await cancel_lab.lab.pid_of(connection))
                await asyncio.sleep(LONG_SECONDS)

        with pytest.raises(_TIMEOUTS):
            async with _timeout(0.3):
                await hold_idle()
        cancel_lab.assert_let_go()  # no idle-in-transaction session left
        # Nothing was running: the connection was rolled back and kept in the pool.
        assert await cancel_lab.next_use() == held[0]
        assert cancel_lab.balance() == 0

    cancel_lab.lab.run(run)


def test_randomized_cancellations_keep_the_pool_and_the_server_clean(
    cancel_lab: CancelLab,
) -> None:
    """``FUZZ_CANCELS`` cancellations at random moments: during checkout, inside a
    statement, between statements, inside ``commit``, during a long statement.

    ``FUZZ_WORKERS`` tasks are cancelled at once per round, each on a row of its own
    (so they never wait on each other's locks); after each round every worker checks
    out again at once, and the server is asked, while nothing runs, whether anything of
    the pool is still at work.  The steps are short, so the random moments cover all
    of them while a round stays cheap."""
    rng = random.Random(FUZZ_SEED)
    lab = cancel_lab
    rows = [lab.row, *(rng.randrange(1, 2**31) for _ in range(FUZZ_WORKERS - 1))]
    for row in rows[1:]:
        lab.admin.sql("INSERT INTO sw_accounts (id, balance) VALUES (%s, 0)", (row,))
    add = {row: lab.add_one(row) for row in rows}

    async def work(row: int) -> None:
        async with lab.engine.connect() as connection:
            await connection.execute(add[row])
            await connection.execute(lab.sleep(0.005))
            await asyncio.sleep(0.003)
            await connection.commit()
            await connection.execute(add[row])
            await connection.execute(lab.sleep(LONG_SECONDS))

    async def cancel_after(row: int, after: float, how: str) -> None:
        if how == "timeout":
            async with _timeout(after):
                await work(row)
        elif how == "wait_for":
            await asyncio.wait_for(work(row), after)
        else:

            async def sibling_fails() -> None:
                await asyncio.sleep(after)
                raise ValueError("a sibling failed")

            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(work(row))
                tasks.create_task(sibling_fails())

    async def one(row: int, after: float, how: str) -> None:
        with _raised(how):
            await cancel_after(row, after, how)

    async def run() -> None:
        cancelled = 0
        while cancelled < FUZZ_CANCELS:
            await asyncio.gather(
                *(one(row, rng.uniform(0.0, 0.04), rng.choice(list(CANCELLERS))) for row in rows)
            )
            cancelled += len(rows)
            # No "another operation is in progress": every worker checks out at once.
            await asyncio.gather(*(lab.next_use(row) for row in rows))
            lab.assert_let_go()
        assert cancelled >= 1000
        status = lab.engine.pool.status()
        assert "Current Checked out connections: 0" in status, status

    try:
        lab.lab.run(run)
        lab.assert_no_sessions()
    finally:
        for row in rows[1:]:
            lab.admin.sql("DELETE FROM sw_accounts WHERE id = %s", (row,))


@pytest.mark.parametrize("cancel_lab", ["aiomysql", "asyncmy"], indirect=True)
def test_an_engine_made_by_async_creator_says_once_it_cannot_end_the_session(
    cancel_lab: CancelLab, caplog: pytest.LogCaptureFixture
) -> None:
    """With ``async_creator=`` there are no connect arguments to reuse for the ``KILL``:
    the cancellation still reaches the application and the pool stays usable."""
    lab = cancel_lab
    plain = lab.lab.engine()

    async def run() -> None:
        async def connect() -> Any:
            raw = await plain.raw_connection()
            made = raw.driver_connection
            raw.detach()  # the driver's connection, out of the plain engine's pool
            return made

        engine = harden(create_async_engine(lab.lab.url, async_creator=connect))
        lab.lab.engines.append(engine)
        for _ in range(2):
            with pytest.raises(_TIMEOUTS):
                async with _timeout(0.3), engine.connect() as connection:
                    await connection.execute(lab.sleep(1))
            await asyncio.sleep(0)
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1

    with caplog.at_level("WARNING", logger="sessionward.sqlalchemy"):
        lab.lab.run(run)
    said = [r.getMessage() for r in caplog.records if "cannot connect to end" in r.getMessage()]
    assert len(said) == 1, said
    wait_until("the uncancelled statements ended", lambda: not lab.leftovers(), 5)
