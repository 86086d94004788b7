"""Primary failover under load through a psycopg_pool with ``check=failover_check``.

The pool is on a multi-host conninfo with ``target_session_attrs=read-write``.
A pool does not rerun work, so work in flight when the primary goes may fail;
what must hold is that work *started* after the primary was killed or fenced
never fails: each stale connection is let go at ``getconn``, and ``getconn``
waits until the pool has a connection to the promoted replica.  Also: nothing
reported done is lost or applied twice, the total is conserved, the pool
commits on the new primary within 2 s of the promotion, and after a switchover
none of its sessions is left on the fenced primary.  A pool with psycopg_pool's
own ``check_connection`` is the control: on a fenced primary it keeps handing
out connections whose writes fail.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import dataclass, field

import pytest
from psycopg_pool import ConnectionPool

from sessionward.psycopg import failover_check
from tests.integrations.failover.conftest import (
    ACCOUNTS,
    OPENING_BALANCE,
    Cluster,
    applied_transfers,
    prepare_accounts,
    server_sql,
)

THREADS = 4
BEFORE_SECONDS = 1.0
UNNOTICED_SECONDS = 0.5
AFTER_SECONDS = 2.5
RESUME_WITHIN_SECONDS = 2.0
#: A reload reaches each backend a moment after ``pg_reload_conf()`` returns.
SIGNAL_GRACE_SECONDS = 0.1
POOL_APPLICATION = "sw-failover-pool"
CONTROL_APPLICATION = "sw-failover-pool-control"

pytestmark = pytest.mark.slow


@dataclass
class Outcomes:
    #: transfer id -> when the application was told it committed.
    succeeded: dict[int, float] = field(default_factory=dict)
    #: transfer id -> (when its getconn started, the error).
    failed: dict[int, tuple[float, BaseException]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _conninfo(ports: tuple[int, int], application: str) -> str:
    return (
        f"host=127.0.0.1,127.0.0.1 port={ports[0]},{ports[1]} user=postgres dbname=postgres "
        f"target_session_attrs=read-write connect_timeout=2 application_name={application}"
    )


def _transfer(pool: ConnectionPool, transfer_id: int, rng: random.Random) -> None:
    source, target = rng.sample(range(1, ACCOUNTS + 1), 2)
    amount = rng.randint(1, 50)
    with pool.connection() as conn, conn.transaction():
        for account, delta in sorted(((source, -amount), (target, amount))):
            conn.execute(
                "UPDATE sw_accounts SET balance = balance + %s WHERE id = %s", (delta, account)
            )
        conn.execute("INSERT INTO sw_transfers (id, amount) VALUES (%s, %s)", (transfer_id, amount))


@pytest.mark.parametrize("how", ["kill", "fence"])
def test_a_pool_moves_to_the_new_primary(cluster: Cluster, how: str) -> None:
    ports = cluster.ports
    old_primary_url = cluster.primary.url
    prepare_accounts(old_primary_url)
    pool = ConnectionPool(
        _conninfo(ports, POOL_APPLICATION),
        min_size=THREADS,
        max_size=THREADS,
        check=failover_check,
        timeout=10,
        open=False,
    )
    control = ConnectionPool(
        _conninfo(ports, CONTROL_APPLICATION),
        min_size=1,
        max_size=1,
        check=ConnectionPool.check_connection,
        timeout=10,
        open=False,
    )
    outcomes = Outcomes()
    control_outcomes = Outcomes()
    ids = itertools.count(1)
    stop = threading.Event()

    def worker(which: ConnectionPool, seed: int, sign: int, into: Outcomes) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            transfer_id = sign * next(ids)
            started = time.monotonic()
            try:
                _transfer(which, transfer_id, rng)
            except Exception as error:
                with into.lock:
                    into.failed[transfer_id] = (started, error)
                time.sleep(0.02)
            else:
                done = time.monotonic()
                with into.lock:
                    into.succeeded[transfer_id] = done

    threads = [threading.Thread(target=worker, args=(pool, n, 1, outcomes)) for n in range(THREADS)]
    threads.append(threading.Thread(target=worker, args=(control, 99, -1, control_outcomes)))
    try:
        pool.open(wait=True, timeout=10)
        control.open(wait=True, timeout=10)
        for thread in threads:
            thread.start()
        time.sleep(BEFORE_SECONDS)
        disrupted_at = time.monotonic()
        if how == "kill":
            cluster.kill_primary()
        else:
            cluster.fence_primary()
        noticed_at = time.monotonic() + SIGNAL_GRACE_SECONDS
        time.sleep(UNNOTICED_SECONDS)
        if how == "fence":
            cluster.wait_caught_up()
        promoted_at = cluster.promote()
        time.sleep(AFTER_SECONDS)
        stop.set()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads)

        before = [t for t in outcomes.succeeded.values() if t < disrupted_at]
        after = sorted(t for t in outcomes.succeeded.values() if t > promoted_at)
        resumed = after[0] - promoted_at if after else None
        late_failures = [
            error for started, error in outcomes.failed.values() if started > noticed_at
        ]
        applied = applied_transfers(cluster.new_primary_url)
        print(
            f"{how}: {len(before)} transfers before, {len(after)} after the promotion, resumed "
            f"{resumed}s after it; {len(outcomes.failed)} failed in flight; the control: "
            f"{len(control_outcomes.succeeded)} done, {len(control_outcomes.failed)} failed"
        )
        assert late_failures == [], f"work started after the {how} failed: {late_failures[:3]}"
        assert len(before) > 20, "too few transfers before the switch to mean anything"
        assert resumed is not None, "no transfer succeeded after the promotion"
        assert resumed < RESUME_WITHIN_SECONDS
        ((total,),) = server_sql(cluster.new_primary_url, "SELECT sum(balance) FROM sw_accounts")
        assert int(total) == ACCOUNTS * OPENING_BALANCE
        assert max(times for times, _ in applied.values()) == 1, "a transfer was applied twice"
        missing = outcomes.succeeded.keys() - applied.keys()
        assert not missing, f"transfers reported done but lost: {sorted(missing)[:10]}"
        assert set(applied) <= outcomes.succeeded.keys() | outcomes.failed.keys()
        assert {port for _, port in applied.values()} == set(ports)
        if how == "fence":
            left = server_sql(
                old_primary_url,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (POOL_APPLICATION,),
            )
            assert left == [(0,)], "pooled sessions were left on the fenced primary"
            control_late = [s for s, _ in control_outcomes.failed.values() if s > promoted_at]
            assert control_late, "the control pool was expected to keep failing"
    finally:
        stop.set()
        for thread in threads:
            if thread.ident is not None:
                thread.join(60)
        pool.close()
        control.close()
