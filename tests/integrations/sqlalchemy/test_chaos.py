"""Chaos: money transfers under terminated sessions and a server restart.

8 threads move money between 100 accounts, each transfer under a unique id,
through ``harden()`` and ``@transaction``.  A chaos thread terminates a random
application session every 200 ms and restarts the server once.  A plain
SQLAlchemy worker runs beside them as the control.  Afterwards:

- the total balance is what it was;
- each transfer id is applied at most once;
- every transfer the application was told succeeded is applied;
- the only error the application saw is ``CommitOutcomeUnknown``, and each of
  those transfers is applied zero or one times;
- no connection is held, and the pool works;
- the control saw errors.

Runs on servers of our own (an embedded PostgreSQL, a throwaway ``mariadbd``),
which it restarts.  On PostgreSQL it runs twice: straight to the server, and
through a PgBouncer in transaction mode in front of it (``via="pgbouncer"``).
There the chaos thread terminates the *server* sessions behind the pooler (found
by the ``application_name`` PgBouncer sets on them), which a client inside a
transaction sees as the server's ``57P01`` followed by PgBouncer's ``server conn
crashed?`` (``PoolerServerLost``), and the restart is the server's, behind the
pooler: PgBouncer stays up and reconnects.  psycopg 3 runs there with
``prepare_threshold=None``: PgBouncer 1.18 keeps no prepared statement across
transactions, so psycopg's own (made after five runs of a query) would be gone or
on another server session.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from sessionward.errors import CommitOutcomeUnknown
from sessionward.sqlalchemy import Backoff, harden, holders, transaction
from tests.fix_pgbouncer import Bouncer
from tests.fix_servers import mysql_connect
from tests.integrations.errors._own_servers import OwnMariaDB, OwnPostgres
from tests.integrations.sqlalchemy.conftest import need_mysqlclient, sqlalchemy_url, wait_until

THREADS = 8
ACCOUNTS = 100
OPENING_BALANCE = 1000
RUN_SECONDS = 4.0
CHAOS_INTERVAL_SECONDS = 0.2
RESTART_AFTER_SECONDS = 1.5
APPLICATION = "sw-chaos-app"
#: Enough attempts, with backoff, to outlast a restart.
RETRIES = 12
#: PgBouncer's pause after a failed server login is 15 s by default: far longer than
#: the restart, so the pooler would keep its clients waiting after the server is back.
#: Its counters (SHOW STATS) are refreshed every stats_period: each second here.
PGBOUNCER_SETTINGS = {"server_login_retry": 0.2, "stats_period": 1}

pytestmark = pytest.mark.slow


@dataclass
class Outcomes:
    succeeded: set[int] = field(default_factory=set)
    unknown: set[int] = field(default_factory=set)
    unexpected: list[BaseException] = field(default_factory=list)
    control_errors: list[BaseException] = field(default_factory=list)
    control_ok: int = 0
    kills: int = 0
    restarts: int = 0
    chaos_errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Chaos:
    """One server of our own, with what the test needs to do to it."""

    def __init__(self, kind: str, url: str, restart: Callable[[], None]) -> None:
        self.kind = kind
        self.url = url
        self.restart = restart
        self._admin: Any = None

    def sql(self, statement: str, params: Any = None) -> list[Any]:
        for attempt in (1, 2, 3):
            try:
                if self._admin is None:
                    self._admin = self._connect()
                cursor = self._admin.cursor()
                cursor.execute(statement, params)
                rows = list(cursor.fetchall()) if cursor.description else []
                cursor.close()
                return rows
            except Exception:
                with contextlib.suppress(Exception):
                    self._admin.close()
                self._admin = None
                if attempt == 3:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def _connect(self) -> Any:
        if self.kind == "postgresql":
            import psycopg

            return psycopg.connect(self.url, autocommit=True, application_name="sw-chaos-admin")
        return mysql_connect(self.url.rsplit("/", 1)[0] + "/mysql")

    def app_pids(self) -> list[int]:
        if self.kind == "postgresql":
            rows = self.sql(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APPLICATION,)
            )
        else:
            rows = self.sql(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = 'sw_chaos' "
                "AND ID <> CONNECTION_ID()"
            )
        return [int(row[0]) for row in rows]

    def terminate(self, pid: int) -> None:
        if self.kind == "postgresql":
            self.sql("SELECT pg_terminate_backend(%s)", (pid,))
        else:
            with contextlib.suppress(Exception):  # it may have left already
                self.sql(f"KILL CONNECTION {int(pid)}")

    def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()


def _prepare(chaos: Chaos) -> None:
    if chaos.kind == "mysql":
        chaos.sql("CREATE DATABASE IF NOT EXISTS sw_chaos")
        prefix = "sw_chaos."
    else:
        prefix = ""
    chaos.sql(f"DROP TABLE IF EXISTS {prefix}sw_accounts")
    chaos.sql(f"DROP TABLE IF EXISTS {prefix}sw_transfers")
    chaos.sql(f"CREATE TABLE {prefix}sw_accounts (id int PRIMARY KEY, balance bigint NOT NULL)")
    # No unique key on purpose: a transfer applied twice must show up, not fail.
    chaos.sql(f"CREATE TABLE {prefix}sw_transfers (id bigint NOT NULL, amount int NOT NULL)")
    values = ", ".join(f"({n}, {OPENING_BALANCE})" for n in range(1, ACCOUNTS + 1))
    chaos.sql(f"INSERT INTO {prefix}sw_accounts VALUES {values}")


def _transfer(session: Session, transfer_id: int, source: int, target: int, amount: int) -> None:
    # Lock in id order, so the workers rarely deadlock (a deadlock is rerun anyway).
    for account, delta in sorted(((source, -amount), (target, amount))):
        session.execute(
            text("UPDATE sw_accounts SET balance = balance + :delta WHERE id = :id"),
            {"delta": delta, "id": account},
        )
    session.execute(
        text("INSERT INTO sw_transfers (id, amount) VALUES (:id, :amount)"),
        {"id": transfer_id, "amount": amount},
    )


def _run(
    chaos: Chaos, app_url: str, connect_args: dict[str, Any], pooler: Bouncer | None = None
) -> None:
    _prepare(chaos)
    engine = harden(sqlalchemy.create_engine(app_url, pool_size=THREADS, connect_args=connect_args))
    control_engine = sqlalchemy.create_engine(app_url, pool_size=1, connect_args=connect_args)
    factory = sessionmaker(engine)
    fast = Backoff(initial_seconds=0.02, max_seconds=1.0)
    transfer = transaction(factory, retries=RETRIES, backoff=fast)(_transfer)
    outcomes = Outcomes()
    ids = itertools.count(1)
    stop = threading.Event()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            transfer_id = next(ids)
            source, target = rng.sample(range(1, ACCOUNTS + 1), 2)
            try:
                transfer(transfer_id, source, target, rng.randint(1, 50))
            except CommitOutcomeUnknown:
                with outcomes.lock:
                    outcomes.unknown.add(transfer_id)
            except Exception as error:
                with outcomes.lock:
                    outcomes.unexpected.append(error)
            else:
                with outcomes.lock:
                    outcomes.succeeded.add(transfer_id)

    def control() -> None:
        rng = random.Random(0)
        session = Session(control_engine)
        while not stop.is_set():
            source, target = rng.sample(range(1, ACCOUNTS + 1), 2)
            try:
                _transfer(session, -next(ids), source, target, 1)
                session.commit()
                outcomes.control_ok += 1
            except Exception as error:
                outcomes.control_errors.append(error)
                session.rollback()  # what a careful application does
                time.sleep(0.05)
        session.close()

    def chaos_monkey() -> None:
        try:
            make_chaos()
        except BaseException as error:
            outcomes.chaos_errors.append(error)

    def make_chaos() -> None:
        rng = random.Random(42)
        started = time.monotonic()
        restarted = False
        while not stop.wait(CHAOS_INTERVAL_SECONDS):
            if not restarted and time.monotonic() - started > RESTART_AFTER_SECONDS:
                chaos.restart()
                chaos.close()
                restarted = True
                outcomes.restarts += 1
                continue
            pids = chaos.app_pids()
            if pids:
                chaos.terminate(rng.choice(pids))
                outcomes.kills += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    threads += [threading.Thread(target=control), threading.Thread(target=chaos_monkey)]
    for thread in threads:
        thread.start()
    time.sleep(RUN_SECONDS)
    stop.set()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)

    print(
        f"{chaos.kind}: {len(outcomes.succeeded)} transfers done, {len(outcomes.unknown)} "
        f"outcome unknown, {outcomes.kills} sessions terminated, {outcomes.restarts} restart; "
        f"the control: "
        f"{outcomes.control_ok} done, {len(outcomes.control_errors)} errors"
    )
    try:
        assert outcomes.chaos_errors == []
        assert outcomes.restarts == 1
        assert outcomes.unexpected == [], f"the application saw: {outcomes.unexpected[:3]}"
        assert outcomes.kills >= 5
        assert len(outcomes.succeeded) > 50, "too few transfers to mean anything"
        ((total,),) = chaos.sql(f"SELECT sum(balance) FROM {_prefix(chaos)}sw_accounts")
        assert int(total) == ACCOUNTS * OPENING_BALANCE
        applied = {
            int(transfer_id): int(times)
            for transfer_id, times in chaos.sql(
                f"SELECT id, count(*) FROM {_prefix(chaos)}sw_transfers WHERE id > 0 GROUP BY id"
            )
        }
        assert max(applied.values()) == 1, "a transfer was applied twice"
        missing = outcomes.succeeded - applied.keys()
        assert not missing, f"transfers reported done but not applied: {sorted(missing)[:10]}"
        assert set(applied) <= outcomes.succeeded | outcomes.unknown
        assert holders(engine) == []
        with transaction(factory) as session:
            assert session.execute(text("SELECT count(*) FROM sw_accounts")).scalar() == ACCOUNTS
        assert outcomes.control_errors, "the plain control was expected to see errors"
        if pooler is not None:
            went_through(pooler, len(outcomes.succeeded))
    finally:
        engine.dispose()
        control_engine.dispose()
        chaos.close()


def _prefix(chaos: Chaos) -> str:
    return "sw_chaos." if chaos.kind == "mysql" else ""


def went_through(pooler: Bouncer, transfers: int) -> None:
    """The transfers did pass the pooler: it counted at least as many transactions."""

    def counted() -> int:
        rows = pooler.admin("SHOW STATS")
        return sum(int(str(row[1])) for row in rows if row[0] == "sw_transaction")

    wait_until(f"PgBouncer counts {transfers} transactions", lambda: counted() >= transfers, 5)


def postgresql_route(
    via: str, own_pg: OwnPostgres, start_pgbouncer: Callable[..., Bouncer], driver: str
) -> tuple[str, dict[str, Any], Bouncer | None]:
    """The URL (without the driver), the driver's ``connect_args`` and the pooler, if any.

    ``via="pgbouncer"`` starts a PgBouncer of the test's own in front of ``own_pg``
    and routes the application through its transaction-mode database.

    Behind a transaction-mode PgBouncer, psycopg 3 prepares nothing
    (``prepare_threshold=None``); asyncpg keeps no statement cache and names
    each statement uniquely, as SQLAlchemy's asyncpg documentation says.
    """
    pooler = None
    url = own_pg.url
    if via == "pgbouncer":
        pooler = start_pgbouncer(PGBOUNCER_SETTINGS, pg_port=own_pg.embedded.port)
        url = pooler.transaction_url
    if driver == "asyncpg":
        args: dict[str, Any] = {"server_settings": {"application_name": APPLICATION}}
        if via == "pgbouncer":
            url += "?prepared_statement_cache_size=0"
            args["statement_cache_size"] = 0
            args["prepared_statement_name_func"] = _unique_statement_name
        return url, args, pooler
    args = {"application_name": APPLICATION}
    if via == "pgbouncer" and driver == "psycopg":
        args["prepare_threshold"] = None
    return url, args, pooler


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


@pytest.mark.parametrize("via", ["direct", "pgbouncer"])
@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_chaos_on_postgresql(
    own_pg: OwnPostgres, start_pgbouncer: Callable[..., Bouncer], driver: str, via: str
) -> None:
    chaos = Chaos("postgresql", own_pg.url, own_pg.restart)
    url, connect_args, pooler = postgresql_route(via, own_pg, start_pgbouncer, driver)
    _run(chaos, sqlalchemy_url(url, driver), connect_args, pooler)


@pytest.mark.parametrize("driver", ["pymysql", "mysqldb"])
def test_chaos_on_mariadb(own_mariadb: OwnMariaDB, driver: str) -> None:
    if driver == "mysqldb":
        need_mysqlclient()
    chaos = Chaos("mysql", own_mariadb.url, own_mariadb.restart)
    url = own_mariadb.url.rsplit("/", 1)[0] + "/sw_chaos"
    wait_until("MariaDB answers", lambda: bool(chaos.sql("SELECT 1")))
    _run(chaos, sqlalchemy_url(url, driver), {})
