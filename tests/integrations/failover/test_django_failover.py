"""Primary failover under load, through sessionward's Django engine.

A Django program in a child process (``_django_child``) moves money between
accounts from worker threads, one transfer per ``transaction.atomic()`` block,
over persistent connections (``CONN_MAX_AGE=None``) to a multi-host database:
``HOST="127.0.0.1,127.0.0.1"``, ``PORT="<primary>,<replica>"`` and
``OPTIONS={"target_session_attrs": "read-write"}``, which Django hands to libpq
as they are.  The primary is killed (or fenced, for a switchover) and, after a
pause, the replica is promoted.  Django has no rerun of its own, so a block that
spanned the switch may fail; afterwards, on the new primary:

- the total balance is what it was, and no transfer is applied twice;
- every transfer the program was told committed is applied;
- every transfer that failed before its ``COMMIT`` is not applied (one whose
  ``COMMIT`` failed may be either; reported);
- no block that started after the promotion failed: each thread's stale
  connection was replaced before use and libpq found the new primary;
- the program committed on the new primary within 2 s of the promotion.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integrations.django_project import clean_environ
from tests.integrations.failover.conftest import (
    ACCOUNTS,
    OPENING_BALANCE,
    Cluster,
    applied_transfers,
    prepare_accounts,
    server_sql,
)

pytest.importorskip("django")

THREADS = 4
BEFORE_SECONDS = 1.0
UNNOTICED_SECONDS = 0.5
AFTER_SECONDS = 2.5
RESUME_WITHIN_SECONDS = 2.0
CHILD = "tests.integrations.failover._django_child"

pytestmark = pytest.mark.slow


ROOT = Path(__file__).resolve().parents[3]


class DjangoChild:
    """``_django_child`` running with ``config``: its JSON lines, in order."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", CHILD],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=clean_environ(SW_DJ_CONFIG=json.dumps(config)), cwd=ROOT,
        )  # fmt: skip

    def started(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            _, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"the Django program ended early: {err[-2000:]}")
        assert json.loads(line)["event"] == "started"

    def last(self) -> dict[str, Any]:
        """The last event, once the program has ended."""
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, f"the Django program failed: {err[-2000:]}"
        event: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return event

    def done(self) -> dict[str, Any]:
        event = self.last()
        assert event["event"] == "done"
        return event

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=30)


def django_database(ports: tuple[int, ...]) -> dict[str, Any]:
    return {
        "NAME": "postgres",
        "HOST": ",".join("127.0.0.1" for _ in ports),
        "PORT": ",".join(str(port) for port in ports),
        "OPTIONS": {"target_session_attrs": "read-write", "connect_timeout": 2},
    }


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_transfers_survive_a_failover(cluster: Cluster, driver: str) -> None:
    def fail_over() -> tuple[float, float]:
        killed_at = time.monotonic()
        cluster.kill_primary()
        time.sleep(UNNOTICED_SECONDS)
        return killed_at, cluster.promote()

    _run(cluster, driver, fail_over)


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_transfers_survive_a_switchover(cluster: Cluster, driver: str) -> None:
    """The primary is fenced and stays up: the connections on it are alive but refuse writes."""

    def switch_over() -> tuple[float, float]:
        fenced_at = time.monotonic()
        cluster.fence_primary()
        time.sleep(UNNOTICED_SECONDS)
        cluster.wait_caught_up()
        return fenced_at, cluster.promote()

    _run(cluster, driver, switch_over)


def _run(cluster: Cluster, driver: str, disrupt: Callable[[], tuple[float, float]]) -> None:
    old_port, new_port = cluster.ports
    prepare_accounts(cluster.primary.url)
    child = DjangoChild(
        {
            "database": django_database(cluster.ports),
            "driver": driver,
            "threads": THREADS,
            "seconds": BEFORE_SECONDS + UNNOTICED_SECONDS + AFTER_SECONDS,
            "accounts": ACCOUNTS,
        }
    )
    try:
        child.started()
        time.sleep(BEFORE_SECONDS)
        disrupted_at, promoted_at = disrupt()
        done = child.done()
    finally:
        child.close()

    units = done["units"]
    succeeded = {u[0]: u[2] for u in units if u[3] == "ok"}
    failed = [u for u in units if u[3] == "error"]
    before_commit = {u[0] for u in failed if not u[5]}
    in_commit = {u[0] for u in failed if u[5]}
    after = sorted(ended for ended in succeeded.values() if ended > promoted_at)
    resumed = after[0] - promoted_at if after else None
    applied = applied_transfers(cluster.new_primary_url)
    print(
        f"{driver}: {len(units)} transfers, {len(failed)} failed "
        f"({len(in_commit)} in COMMIT, {len(in_commit & applied.keys())} of those applied), "
        f"resumed {resumed}s after the promotion; failures: "
        f"{sorted({(u[4], u[6]) for u in failed})[:6]}"
    )
    assert len([t for t in succeeded.values() if t < disrupted_at]) > 20
    ((total,),) = server_sql(cluster.new_primary_url, "SELECT sum(balance) FROM sw_accounts")
    assert int(total) == ACCOUNTS * OPENING_BALANCE
    assert max(times for times, _ in applied.values()) == 1, "a transfer was applied twice"
    missing = succeeded.keys() - applied.keys()
    assert not missing, f"transfers reported done but lost: {sorted(missing)[:10]}"
    assert not before_commit & applied.keys(), "a transfer that failed before COMMIT applied"
    assert set(applied) <= succeeded.keys() | in_commit
    # Only blocks that spanned the switch failed: none that started after the promotion.
    late = [u for u in failed if u[1] > promoted_at]
    assert late == [], f"blocks started after the promotion failed: {late[:3]}"
    early = [u for u in failed if u[2] < disrupted_at]
    assert early == [], f"blocks failed before the switch: {early[:3]}"
    assert resumed is not None, "no transfer committed after the promotion"
    assert resumed < RESUME_WITHIN_SECONDS
    assert {port for _, port in applied.values()} == {old_port, new_port}
