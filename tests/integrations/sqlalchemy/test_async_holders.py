"""``holders()`` under an ``AsyncEngine``: each report names the asyncio task and the
application's own line that took the connection, not SQLAlchemy's greenlet."""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from collections.abc import Iterator

import pytest

pytest.importorskip("greenlet")

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from sessionward.sqlalchemy import LeakWarning, harden, holders
from tests.fix_servers import PG_ENV, _mysql_server, _pg_server, missing_server
from tests.integrations.sqlalchemy.conftest import Lab, _Databases
from tests.integrations.sqlalchemy.test_async_harden import DRIVERS, MYSQL_MODULES, AsyncLab


@pytest.fixture(params=list(DRIVERS))
def async_lab(request: pytest.FixtureRequest, sqla_databases: _Databases) -> Iterator[AsyncLab]:
    _, module, admin_driver = DRIVERS[request.param]
    pytest.importorskip(module)
    if module in MYSQL_MODULES:
        server = _mysql_server()
    else:
        if not os.environ.get(PG_ENV):
            missing_server(f"no PostgreSQL: set {PG_ENV}")
        server = _pg_server(request, "env")
    admin = Lab(server, sqla_databases.on(server), admin_driver)
    yield AsyncLab(admin, request.param)
    admin.close()


def _line_before() -> int:
    """The line just above the caller's call of this function."""
    return sys._getframe(1).f_lineno - 1


def test_a_holder_names_the_task_and_the_line_that_took_the_connection(
    async_lab: AsyncLab,
) -> None:
    async def run() -> None:
        engine = harden(async_lab.engine())
        seen: list[tuple[int, list[str]]] = []

        async def worker() -> None:
            async with engine.connect() as connection:
                line = _line_before()
                await connection.execute(text("SELECT 1"))
                seen.append((line, [str(holder) for holder in holders(engine)]))
                (holder,) = holders(engine)
                assert holder.taken_at == f"{__file__}:{line} in worker"
                assert holder.task == "billing-worker"

        await asyncio.create_task(worker(), name="billing-worker")
        (line, described) = seen[0]
        assert described[0].startswith(f"{__file__}:{line} in worker (task billing-worker, ")
        assert holders(engine) == []

    async_lab.run(run)


def test_an_async_session_holder_names_the_line_of_its_first_statement(
    async_lab: AsyncLab,
) -> None:
    async def run() -> None:
        engine = harden(async_lab.engine(), capture_stacks=True)
        async with AsyncSession(engine) as session:
            await session.execute(text("SELECT 1"))  # the connection is taken here
            line = _line_before()
            (holder,) = holders(engine)
        assert holder.taken_at == f"{__file__}:{line} in run"
        # An unnamed task is told by its coroutine.
        assert holder.task is not None
        assert holder.task.startswith("Task-")
        assert holder.task.endswith(" (run_and_dispose)")
        # The captured stack reaches the application's coroutine, past the greenlet.
        assert holder.stack is not None
        assert f'File "{__file__}", line {line}, in run' in holder.stack

    async_lab.run(run)


def test_a_connection_held_too_long_is_reported_with_its_line(async_lab: AsyncLab) -> None:
    async def run() -> None:
        made = create_async_engine(async_lab.url, pool_size=2, max_overflow=0)
        async_lab.engines.append(made)
        engine = harden(made, hold_warning_seconds=0.05)
        async with engine.connect() as held:
            line = _line_before()
            await held.execute(text("SELECT 1"))
            await asyncio.sleep(0.1)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                async with engine.connect() as other:  # the checkout that scans
                    await other.execute(text("SELECT 1"))
        messages = [str(w.message) for w in caught if issubclass(w.category, LeakWarning)]
        taken = f"{__file__}:{line} in run (task Task-"
        assert any(taken in message for message in messages), messages

    async_lab.run(run)
