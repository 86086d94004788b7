"""sessionward's Django engine through PgBouncer in transaction mode (``sw_transaction``).

A Django program in a child process (``failover/_django_child``) moves money
through the shared PgBouncer while this test terminates the *server* sessions
behind the pooler every 200 ms.  Django has no rerun of its own, so a block
whose server session was ended under it fails; afterwards:

- the total balance is what it was, and no transfer is applied twice;
- every transfer the program was told committed is applied, and none that failed
  before its ``COMMIT`` is;
- each failure is a session the server ended (``SessionEnded``): the next block
  ran on a new connection, never on the dead one.

Two ways of running psycopg 3 are covered: Django's default client-side
binding (``ClientCursor``, which prepares nothing) and ``server_side_binding``
with ``prepare_threshold=None``, the setting the docs give for transaction
pooling.  ``OPTIONS["sessionward_timeouts"]`` travels as the startup
``options`` parameter, which PgBouncer refuses: the program gets one clear
``PoolerRefused`` at connect, as the docs say.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.fix_pgbouncer import Bouncer
from tests.fix_servers import unique
from tests.integrations.failover.test_django_failover import DjangoChild

pytest.importorskip("django")

ACCOUNTS = 50
OPENING_BALANCE = 1000
RUN_SECONDS = 3.0
CHAOS_INTERVAL_SECONDS = 0.2
#: What each of sessionward's SessionEnded classes is called, as the child reports it.
SESSION_ENDED = {"SessionTerminated", "ConnectionLost", "PoolerServerLost", "PoolerEnded"}

pytestmark = pytest.mark.slow


def direct(bouncer: Bouncer, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(bouncer.server_url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return list(cursor.fetchall()) if cursor.description else []


@pytest.fixture
def prefix(pgbouncer: Bouncer) -> Iterator[str]:
    """``<prefix>sw_accounts`` and ``<prefix>sw_transfers`` of this test's own."""
    made = unique("swdj") + "_"
    direct(pgbouncer, f"CREATE TABLE {made}sw_accounts (id int PRIMARY KEY, balance bigint)")
    direct(pgbouncer, f"CREATE TABLE {made}sw_transfers (id bigint NOT NULL, amount int)")
    values = ", ".join(f"({n}, {OPENING_BALANCE})" for n in range(1, ACCOUNTS + 1))
    direct(pgbouncer, f"INSERT INTO {made}sw_accounts VALUES {values}")
    yield made
    direct(pgbouncer, f"DROP TABLE IF EXISTS {made}sw_accounts, {made}sw_transfers")


def database(bouncer: Bouncer, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "NAME": "sw_transaction",
        "HOST": "127.0.0.1",
        "PORT": str(bouncer.port),
        # Named cursors (QuerySet.iterator()) would outlive the transaction's server session.
        "DISABLE_SERVER_SIDE_CURSORS": True,
        "OPTIONS": options,
    }


@pytest.mark.parametrize(
    ("driver", "options"),
    [
        pytest.param("psycopg", {}, id="psycopg-client-binding"),
        pytest.param(
            "psycopg",
            {"server_side_binding": True, "prepare_threshold": None},
            id="psycopg-server-binding",
        ),
        pytest.param("psycopg2", {}, id="psycopg2"),
    ],
)
def test_transfers_through_the_pooler_while_server_sessions_are_terminated(
    pgbouncer: Bouncer, prefix: str, driver: str, options: dict[str, Any]
) -> None:
    application = unique("sw-dj-pooled")
    child = DjangoChild(
        {
            "database": database(pgbouncer, {**options, "application_name": application}),
            "driver": driver,
            "threads": 4,
            "seconds": RUN_SECONDS,
            "accounts": ACCOUNTS,
            "prefix": prefix,
        }
    )
    stop = threading.Event()
    kills: list[int] = []

    def terminate_server_sessions() -> None:
        rng = random.Random(7)
        with psycopg.connect(pgbouncer.server_url, autocommit=True) as admin:
            while not stop.wait(CHAOS_INTERVAL_SECONDS):
                pids = [
                    pid
                    for (pid,) in admin.execute(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                        (application,),
                    )
                ]
                if pids:
                    admin.execute("SELECT pg_terminate_backend(%s)", (rng.choice(pids),))
                    kills.append(1)

    killer = threading.Thread(target=terminate_server_sessions)
    try:
        child.started()
        killer.start()
        done = child.done()
    finally:
        stop.set()
        if killer.is_alive():
            killer.join(30)
        child.close()

    units = done["units"]
    succeeded = {u[0] for u in units if u[3] == "ok"}
    failed = [u for u in units if u[3] == "error"]
    applied = {
        int(transfer_id): int(times)
        for transfer_id, times in direct(
            pgbouncer, f"SELECT id, count(*) FROM {prefix}sw_transfers GROUP BY id"
        )
    }
    print(
        f"{driver} {options}: {len(succeeded)} done, {len(failed)} failed, {len(kills)} "
        f"server sessions terminated; failures: {sorted({(u[4], u[6]) for u in failed})[:5]}"
    )
    assert len(kills) >= 5
    assert len(succeeded) > 50, "too few transfers to mean anything"
    ((total,),) = direct(pgbouncer, f"SELECT sum(balance) FROM {prefix}sw_accounts")
    assert int(total) == ACCOUNTS * OPENING_BALANCE
    assert max(applied.values()) == 1, "a transfer was applied twice"
    assert not succeeded - applied.keys(), "transfers reported done but not applied"
    assert not {u[0] for u in failed if not u[5]} & applied.keys()
    unexpected = [u for u in failed if u[4] not in SESSION_ENDED]
    assert unexpected == [], f"failures other than an ended session: {unexpected[:3]}"
    assert failed, "no block was hit: the terminations did not reach the program"


def test_timeouts_in_options_are_refused_by_the_pooler_in_one_clear_error(
    pgbouncer: Bouncer,
) -> None:
    child = DjangoChild(
        {
            "scenario": "connect",
            "database": database(pgbouncer, {}),
            "timeouts": {"statement_seconds": 5},
            "driver": "psycopg",
        }
    )
    try:
        refused = child.last()
    finally:
        child.close()
    assert refused["event"] == "refused"
    assert refused["kind"] == "PoolerRefused"
    assert "unsupported startup parameter: options" in refused["message"]


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_transaction_timeouts_hold_in_each_atomic_block_and_leak_to_no_other_client(
    pgbouncer: Bouncer, driver: str
) -> None:
    # sw_tiny_transaction has one server connection: every client gets the same one,
    # so a limit left behind on it would show up for the next.
    pooled = database(pgbouncer, {})
    pooled["NAME"] = "sw_tiny_transaction"
    child = DjangoChild(
        {
            "scenario": "limits",
            "database": pooled,
            "transaction_timeouts": {"statement_seconds": 0.5},
            "driver": driver,
        }
    )
    try:
        seen = child.last()
    finally:
        child.close()
    assert seen["event"] == "limits"
    assert seen["inside"] == ["500ms"] * 3
    # Autocommit statements have no transaction to carry a limit: none.
    assert seen["outside"] == "0"
    assert seen["sleep"] == "StatementTimeout"
    assert seen["after"] == "0"
    with psycopg.connect(pgbouncer.url_for("sw_tiny_transaction"), autocommit=True) as other:
        assert other.execute("SHOW statement_timeout", prepare=False).fetchone() == ("0",)


def test_transaction_timeouts_are_refused_for_mysql_and_with_session_timeouts() -> None:
    from sessionward import Timeouts
    from sessionward.errors import ConfigurationError
    from sessionward.integrations.django._engine import SessionwardWrapperMixin

    class Wrapper(SessionwardWrapperMixin):
        vendor = "mysql"

    with pytest.raises(ConfigurationError, match="sessionward_timeouts"):
        Wrapper()._sessionward_per_transaction(Timeouts(statement_seconds=1), None)
    Wrapper.vendor = "postgresql"
    with pytest.raises(ConfigurationError, match="exclude each other"):
        Wrapper()._sessionward_per_transaction(Timeouts(), Timeouts())
    with pytest.raises(ConfigurationError, match=r"must be a sessionward\.Timeouts"):
        Wrapper()._sessionward_per_transaction({"statement_seconds": 1}, None)
