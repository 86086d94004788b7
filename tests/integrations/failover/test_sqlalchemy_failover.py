"""Primary failover under load, through ``harden()`` and ``@transaction``.

Worker threads move money between accounts, each transfer under a unique id,
through an engine on a multi-host URL with ``target_session_attrs=read-write``
(primary first, then its synchronous replica).  The primary is killed
(immediate shutdown), and after a pause, as a failover manager would take to
notice, the replica is promoted.  Afterwards, on the new primary:

- the total balance is what it was;
- each transfer id is applied at most once;
- every transfer the application was told succeeded is applied, once;
- each transfer that surfaced as ``CommitOutcomeUnknown`` is applied zero or
  one times (reported, not required either way);
- nothing but ``CommitOutcomeUnknown`` reached the application;
- the application committed on the new primary within 2 s of the promotion;
- after a switchover, no hardened session is left on the old, fenced primary.

A plain SQLAlchemy worker on the same URL runs beside them as the control, and
must have seen errors.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from sessionward.errors import CommitOutcomeUnknown, ConnectionFailed
from sessionward.sqlalchemy import Backoff, harden, holders, transaction
from tests.integrations.failover.conftest import (
    ACCOUNTS,
    OPENING_BALANCE,
    Cluster,
    prepare_accounts,
    server_sql,
)

THREADS = 4
#: Load before the primary dies, the pause before the promotion, load after it.
BEFORE_SECONDS = 1.0
UNNOTICED_SECONDS = 0.5
AFTER_SECONDS = 2.5
#: The app's own retry budget: attempts spaced at most 0.25 s apart for about 5 s.
RETRIES = 25
BACKOFF = Backoff(initial_seconds=0.02, max_seconds=0.25)
RESUME_WITHIN_SECONDS = 2.0
APPLICATION = "sw-failover-app"
CONTROL = "sw-failover-control"

pytestmark = pytest.mark.slow


@dataclass
class Outcomes:
    #: transfer id -> when the application was told it committed (monotonic).
    succeeded: dict[int, float] = field(default_factory=dict)
    unknown: set[int] = field(default_factory=set)
    unexpected: list[BaseException] = field(default_factory=list)
    control_ok: int = 0
    control_errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _transfer(session: Session, transfer_id: int, source: int, target: int, amount: int) -> None:
    for account, delta in sorted(((source, -amount), (target, amount))):
        session.execute(
            text("UPDATE sw_accounts SET balance = balance + :delta WHERE id = :id"),
            {"delta": delta, "id": account},
        )
    session.execute(
        text("INSERT INTO sw_transfers (id, amount) VALUES (:id, :amount)"),
        {"id": transfer_id, "amount": amount},
    )


def multi_host_url(driver: str, ports: tuple[int, ...], application: str = APPLICATION) -> str:
    """Both spellings SQLAlchemy accepts: ``host=h:p&host=h:p`` and ``host=h,h&port=p,p``."""
    if driver == "psycopg":
        hosts = "&".join(f"host=127.0.0.1:{port}" for port in ports)
    else:
        hosts = "host=" + ",".join("127.0.0.1" for _ in ports)
        hosts += "&port=" + ",".join(str(port) for port in ports)
    return (
        f"postgresql+{driver}://postgres@/postgres?{hosts}"
        f"&target_session_attrs=read-write&application_name={application}&connect_timeout=2"
    )


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_transfers_survive_a_failover(cluster: Cluster, driver: str) -> None:
    """The primary dies (immediate shutdown); the replica is promoted a moment later."""

    def fail_over() -> tuple[float, float]:
        killed_at = time.monotonic()
        cluster.kill_primary()
        time.sleep(UNNOTICED_SECONDS)
        return killed_at, cluster.promote()

    _run(cluster, driver, fail_over, old_primary_up=False)


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_transfers_survive_a_switchover(cluster: Cluster, driver: str) -> None:
    """The primary is fenced (``default_transaction_read_only``) and stays up: its pooled
    connections stay alive, and only the server's report tells they are on the wrong one."""

    def switch_over() -> tuple[float, float]:
        fenced_at = time.monotonic()
        cluster.fence_primary()
        time.sleep(UNNOTICED_SECONDS)
        cluster.wait_caught_up()
        return fenced_at, cluster.promote()

    _run(cluster, driver, switch_over, old_primary_up=True)


def _run(
    cluster: Cluster,
    driver: str,
    disrupt: Callable[[], tuple[float, float]],
    *,
    old_primary_up: bool,
) -> None:
    old_port, new_port = cluster.ports
    old_primary_url = cluster.primary.url
    prepare_accounts(cluster.primary.url)
    engine = harden(
        sqlalchemy.create_engine(multi_host_url(driver, cluster.ports), pool_size=THREADS)
    )
    control_engine = sqlalchemy.create_engine(
        multi_host_url(driver, cluster.ports, CONTROL), pool_size=1
    )
    factory = sessionmaker(engine)
    transfer = transaction(factory, retries=RETRIES, backoff=BACKOFF)(_transfer)
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
                done = time.monotonic()
                with outcomes.lock:
                    outcomes.succeeded[transfer_id] = done

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

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    threads.append(threading.Thread(target=control))
    try:
        for thread in threads:
            thread.start()
        time.sleep(BEFORE_SECONDS)
        disrupted_at, promoted_at = disrupt()
        time.sleep(AFTER_SECONDS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not any(thread.is_alive() for thread in threads)

    try:
        before = [t for t in outcomes.succeeded.values() if t < disrupted_at]
        after = sorted(t for t in outcomes.succeeded.values() if t > promoted_at)
        resumed = after[0] - promoted_at if after else None
        applied = {
            int(transfer_id): (int(times), int(port))
            for transfer_id, times, port in server_sql(
                cluster.new_primary_url,
                "SELECT id, count(*), max(port) FROM sw_transfers WHERE id > 0 GROUP BY id",
            )
        }
        unknown_applied = outcomes.unknown & applied.keys()
        print(
            f"{driver}: {len(before)} transfers before, {len(after)} after the promotion, "
            f"resumed {resumed}s after it; {len(outcomes.unknown)} outcome unknown "
            f"({len(unknown_applied)} of them applied); the control: {outcomes.control_ok} "
            f"done, {len(outcomes.control_errors)} errors"
        )
        assert outcomes.unexpected == [], f"the application saw: {outcomes.unexpected[:3]}"
        assert len(before) > 20, "too few transfers before the switch to mean anything"
        assert resumed is not None, "no transfer succeeded after the promotion"
        assert resumed < RESUME_WITHIN_SECONDS
        ((total,),) = server_sql(cluster.new_primary_url, "SELECT sum(balance) FROM sw_accounts")
        assert int(total) == ACCOUNTS * OPENING_BALANCE
        assert max(times for times, _ in applied.values()) == 1, "a transfer was applied twice"
        missing = outcomes.succeeded.keys() - applied.keys()
        assert not missing, f"transfers reported done but lost: {sorted(missing)[:10]}"
        assert set(applied) <= outcomes.succeeded.keys() | outcomes.unknown
        # Both servers committed some of them: the load did span the switch.
        assert {port for _, port in applied.values()} == {old_port, new_port}
        assert holders(engine) == []
        with transaction(factory) as session:
            port = session.execute(text("SELECT inet_server_port()")).scalar()
        assert port == new_port
        if old_primary_up:
            left = server_sql(
                old_primary_url,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (APPLICATION,),
            )
            assert left == [(0,)], "hardened sessions were left on the fenced primary"
        assert outcomes.control_errors, "the plain control was expected to see errors"
    finally:
        engine.dispose()
        control_engine.dispose()


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_no_writable_host_is_one_clear_error(cluster: Cluster, driver: str) -> None:
    """Only the replica is up: every host refuses writes, and the app is told so, once."""
    prepare_accounts(cluster.primary.url)
    ports = cluster.ports
    cluster.kill_primary()
    engine = harden(sqlalchemy.create_engine(multi_host_url(driver, ports)))
    calls: list[int] = []

    @transaction(sessionmaker(engine), retries=3, backoff=Backoff(initial_seconds=0.01))
    def write(session: Session) -> None:
        calls.append(1)
        session.execute(text("UPDATE sw_accounts SET balance = balance WHERE id = 1"))

    try:
        with pytest.raises(ConnectionFailed) as failed:
            write()
    finally:
        engine.dispose()
    assert str(failed.value) == (
        "no host was writable (target_session_attrs=read-write): "
        f"127.0.0.1:{ports[0]} (Connection refused); 127.0.0.1:{ports[1]} (session is read-only)"
    )
    assert len(calls) == 3, "not rerun: a failover may be under way"
    assert isinstance(failed.value.__cause__, sqlalchemy.exc.OperationalError)
