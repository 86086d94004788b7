"""The reaper looks again at just the sessions due to cross a limit: it must still see every
change they made since the last whole look; and it never acts on what it could not record."""

import io
import json
import os
import threading
import time

import pytest

import sessionward
from sessionward.core import parse_policy
from sessionward.interfaces.reaper._audit import AuditLog
from sessionward.interfaces.reaper._events import EventLog
from sessionward.interfaces.reaper._loop import Reaper, ReaperOptions

from ._helpers import ThreadedReaper, alive, idle_in_transaction, until


def idle_tx_policy(database, limit):
    return f"""
[[rule]]
name = "idle-tx"
action = "terminate"
match = {{ database = "{database}", idle_in_transaction_over = "{limit}" }}
"""


@pytest.mark.parametrize("then", ["COMMIT", "ROLLBACK"])
def test_a_transaction_ended_before_its_limit_is_left_alone(scene, victims, tmp_path, then):
    server, db, user = scene
    policy = idle_tx_policy(db, "1.5s")
    finishing = victims(server, database=db, user=user)
    staying = victims(server, database=db, user=user)
    with ThreadedReaper(server, policy, tmp_path, max_interval_seconds=0.5) as reaper:
        idle_in_transaction(finishing)
        idle_in_transaction(staying)
        # Seen idle in a transaction by whole looks, so its crossing is scheduled ...
        time.sleep(1.2)
        # ... then it ends the transaction and stays idle past the limit.
        finishing.run(then)
        until(lambda: staying.pid in reaper.outcomes(), timeout=10, what="the ending")
        time.sleep(1.0)
    assert reaper.outcomes() == {staying.pid: [("idle-tx", "terminate", "ended")]}
    assert alive(server, finishing.pid)


def test_a_statement_before_the_limit_restarts_the_clock(scene, victims, tmp_path):
    server, db, user = scene
    policy = idle_tx_policy(db, "1.5s")
    victim = victims(server, database=db, user=user)
    with ThreadedReaper(server, policy, tmp_path, max_interval_seconds=0.5) as reaper:
        idle_in_transaction(victim)
        time.sleep(1.2)
        victim.run("SELECT 1")  # still in the transaction, idle again from now
        restarted = time.monotonic()
        until(lambda: victim.pid in reaper.outcomes(), timeout=10, what="the ending")
        waited = time.monotonic() - restarted
    assert reaper.outcomes()[victim.pid] == [("idle-tx", "terminate", "ended")]
    assert waited > 1.5


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_an_audit_file_that_cannot_be_written_ends_nothing(scene, victims, tmp_path):
    server, db, user = scene
    policy = parse_policy(idle_tx_policy(db, "0.2s"))
    victim = victims(server, database=db, user=user)
    idle_in_transaction(victim)
    log = io.StringIO()
    audit = AuditLog(str(tmp_path / "audit.jsonl"))
    os.close(audit._fd)
    audit._fd = os.open("/dev/full", os.O_WRONLY)  # every write: no space left on device
    reaper = Reaper(
        connect=lambda: sessionward.connect(server.url),
        policy=policy,
        options=ReaperOptions(max_interval_seconds=0.2),
        log=EventLog(json_lines=True, stream=log),
        audit=audit,
    )
    thread = threading.Thread(target=reaper.run, daemon=True)
    thread.start()
    try:
        until(lambda: reaper.stats.errors >= 2, timeout=10, what="failed audit writes")
    finally:
        reaper.stop()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert alive(server, victim.pid)
    assert reaper.stats.results == []
    errors = [json.loads(line) for line in log.getvalue().splitlines()]
    assert any("not written, so no session was signalled" in e.get("message", "") for e in errors)
