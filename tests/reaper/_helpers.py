"""Running the reaper against the test servers: in a thread, or as a child process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import sessionward
from sessionward.core import parse_policy
from sessionward.interfaces.reaper._audit import AuditLog, read_records
from sessionward.interfaces.reaper._events import EventLog
from sessionward.interfaces.reaper._loop import Reaper, ReaperOptions


def until(condition, timeout=10.0, interval=0.05, what="condition"):
    """Poll until ``condition()`` is truthy; return its value, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def alive(server, pid):
    with sessionward.connect(server.url) as control:
        return pid in control.snapshot()


def prepare_table(server, database):
    """A table each victim can insert into, so its transaction touches InnoDB."""
    if server.engine == "mysql":
        server.execute(
            f"CREATE TABLE `{database}`.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB"
        )
        server.execute(f"INSERT INTO `{database}`.t (v) VALUES (0)")


def idle_in_transaction(victim):
    victim.run("BEGIN")
    if victim.server.engine == "mysql":
        victim.run("INSERT INTO t (v) VALUES (1)")
    else:
        victim.run("SELECT 1")


class ThreadedReaper:
    """A reaper running in a background thread, with its audit file and log."""

    def __init__(self, server, policy_text, tmp_path: Path, **options):
        self.audit_path = str(tmp_path / f"audit-{time.monotonic_ns()}.jsonl")
        self.audit = AuditLog(self.audit_path)
        self.log = io.StringIO()
        options.setdefault("max_interval_seconds", 1.0)
        self.reaper = Reaper(
            connect=lambda: sessionward.connect(server.url),
            policy=parse_policy(policy_text),
            options=ReaperOptions(**options),
            log=EventLog(json_lines=True, stream=self.log),
            audit=self.audit,
        )
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.reaper.run()
        except BaseException as error:  # pragma: no cover - reported by stop()
            self.error = error

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.reaper.stop()
        self.thread.join(timeout=20)
        self.audit.close()
        assert not self.thread.is_alive()
        if self.error is not None and exc[0] is None:
            raise self.error

    def records(self):
        return read_records(self.audit_path)

    def outcomes(self):
        """pid → outcome of every decision with a recorded outcome."""
        return audit_outcomes(self.records())


def audit_outcomes(records):
    decisions = {r["id"]: r for r in records if r["type"] == "decision"}
    found = {}
    for record in records:
        if record["type"] == "outcome" and record["id"] in decisions:
            decision = decisions[record["id"]]
            found.setdefault(decision["session"]["pid"], []).append(
                (decision["rule"], decision["action"], record["outcome"])
            )
    return found


def reap_process(server, policy_path, log_path, *args, env_extra=None):
    """``sessionward reap`` as a child process; its stderr (JSON lines) goes to ``log_path``."""
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.update(env_extra or {})
    with open(log_path, "a") as log:
        return subprocess.Popen(
        [sys.executable, "-m", "sessionward", "reap", "--policy", str(policy_path),
         "--dsn", server.url, "--log-format", "json", *args],
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
        env=env,
    )  # fmt: skip


def events(log_path):
    try:
        text = Path(log_path).read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
