"""The example service (``examples/fastapi_service``) under fire: its backends are terminated
every 150 ms and its server is restarted once while clients post transfers.

The app runs in-process behind httpx's ASGI transport, with its lifespan, on an embedded
PostgreSQL of the test's own (restarted, so never a shared one).  Afterwards:

- no request got a 5xx unless it was in flight while the server was down;
- every transfer answered 200 is in the database once, and replaying an id moves
  no money twice;
- the total balance is what it was, and the service answers after the chaos.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("greenlet")
pytest.importorskip("asyncpg")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx

from tests.fix_servers import missing_server
from tests.integrations.errors._own_servers import OwnPostgres

APP_PATH = Path(__file__).parents[2] / "examples" / "fastapi_service" / "app.py"
CLIENTS = 8
RUN_SECONDS = 4.0
KILL_INTERVAL_SECONDS = 0.15
RESTART_AFTER_SECONDS = 1.5

pytestmark = pytest.mark.slow


def _load_app_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sw_example_fastapi_service", APP_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server() -> Iterator[OwnPostgres]:
    """An embedded PostgreSQL the test may restart: never the shared ones."""
    made = OwnPostgres()
    try:
        made.start()
    except Exception as error:
        missing_server(f"no embedded PostgreSQL of our own to restart: {error}")
    yield made
    made.stop()


@dataclass
class Chaos:
    server: OwnPostgres
    application: str
    kills: int = 0
    #: When the server was down: from just before the restart until it answered again.
    outage: tuple[float, float] | None = None
    errors: list[BaseException] = field(default_factory=list)
    _admin: Any = None

    def sql(self, statement: str, params: Any = None) -> list[Any]:
        import psycopg

        for attempt in (1, 2, 3):
            try:
                if self._admin is None:
                    self._admin = psycopg.connect(
                        self.server.url, autocommit=True, application_name="sw-example-admin"
                    )
                cursor = self._admin.execute(statement, params)
                return list(cursor.fetchall()) if cursor.description else []
            except psycopg.OperationalError:
                self.close()
                if attempt == 3:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None

    def run(self, stop: threading.Event) -> None:
        try:
            rng = random.Random(7)
            started = time.monotonic()
            while not stop.wait(KILL_INTERVAL_SECONDS):
                if self.outage is None and time.monotonic() - started > RESTART_AFTER_SECONDS:
                    down = time.monotonic()
                    self.server.restart()
                    self.outage = (down, time.monotonic())
                    self.close()
                    continue
                pids = self.sql(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                    (self.application,),
                )
                if pids:
                    self.sql("SELECT pg_terminate_backend(%s)", (rng.choice(pids)[0],))
                    self.kills += 1
        except BaseException as error:
            self.errors.append(error)


@dataclass
class Seen:
    start: float
    end: float
    status: int
    what: str


def test_no_5xx_outside_the_outage(server: OwnPostgres) -> None:
    module = _load_app_module()
    app = module.create_app(f"postgresql+asyncpg://{server.url.split('://', 1)[1]}")
    chaos = Chaos(server, module.APPLICATION)
    seen: list[Seen] = []
    succeeded: dict[int, int] = {}  # transfer id -> amount
    ids = itertools.count(1)

    async def client(seed: int, http: Any, stop: asyncio.Event) -> None:
        rng = random.Random(seed)
        mine: list[tuple[int, int, int, int]] = []
        while not stop.is_set():
            if mine and rng.random() < 0.1:  # a client replays a transfer it sent
                transfer_id, source, target, amount = rng.choice(mine)
            elif rng.random() < 0.2:
                await _call(http, "GET", f"/accounts/{rng.randint(1, module.ACCOUNTS)}")
                continue
            else:
                source, target = rng.sample(range(1, module.ACCOUNTS + 1), 2)
                transfer_id, amount = next(ids), rng.randint(1, 20)
                mine.append((transfer_id, source, target, amount))
            body = {"id": transfer_id, "source": source, "target": target, "amount": amount}
            response = await _call(http, "POST", "/transfers", json=body)
            if response is not None and response.status_code == 200:
                succeeded[transfer_id] = amount

    async def _call(http: Any, method: str, path: str, **kwargs: Any) -> Any:
        start = time.monotonic()
        response = await http.request(method, path, **kwargs)
        seen.append(Seen(start, time.monotonic(), response.status_code, f"{method} {path}"))
        return response

    async def run() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://service") as http,
        ):
            stop = asyncio.Event()
            chaos_stop = threading.Event()
            monkey = threading.Thread(target=chaos.run, args=(chaos_stop,), name="sw-chaos")
            clients = [asyncio.ensure_future(client(n, http, stop)) for n in range(CLIENTS)]
            monkey.start()
            try:
                await asyncio.sleep(RUN_SECONDS)
            finally:
                stop.set()
                chaos_stop.set()
                await asyncio.wait(clients, timeout=60)
                await asyncio.get_running_loop().run_in_executor(None, monkey.join, 60)
            for task in clients:
                task.result()
            # After the chaos the service answers, and its own view of the money adds up.
            response = await http.get("/total")
            assert response.status_code == 200
            assert response.json()["total"] == module.ACCOUNTS * module.OPENING_BALANCE

    try:
        chaos.sql("DROP TABLE IF EXISTS transfers, accounts")
        asyncio.run(run())
        assert chaos.errors == []
        assert chaos.outage is not None, "the server was never restarted"
        assert chaos.kills >= 5
        down, up = chaos.outage
        print(
            f"{len(seen)} requests, {len(succeeded)} transfers done, {chaos.kills} backends "
            f"terminated, server down {up - down:.2f}s; statuses: "
            f"{sorted({s.status for s in seen})}"
        )
        assert len(succeeded) > 50, "too few transfers to mean anything"
        failed = [s for s in seen if s.status >= 500 and not (s.start <= up and s.end >= down)]
        assert failed == [], f"5xx outside the outage: {failed[:5]}"
        assert {s.status for s in seen} <= {200, 409, 503}
        ((total,),) = chaos.sql("SELECT sum(balance) FROM accounts")
        assert int(total) == module.ACCOUNTS * module.OPENING_BALANCE
        applied = dict(chaos.sql("SELECT id, amount FROM transfers"))
        missing = {i: a for i, a in succeeded.items() if applied.get(i) != a}
        assert not missing, f"transfers answered 200 but not applied: {list(missing)[:10]}"
    finally:
        chaos.close()
