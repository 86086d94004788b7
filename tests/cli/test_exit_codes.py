"""The documented exit status table is what the command does: each row is run for real.

The table is read from docs/reference/exit-status.md, so the two cannot drift: a row
without a case here, or a case whose status has no row, fails; so does a row's example
that exits otherwise.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import CliResult, run_script
from tests.fix_servers import Server

TABLE_PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "exit-status.md"
BIN = Path(sys.executable).parent
ROW = re.compile(r"^\| `(\d+)` \| (.+?) \| (?:`(.+)`)? ?\|$")


def exit_status_table() -> dict[int, str | None]:
    """Status → the example command of its row (None when the row has none)."""
    text = TABLE_PAGE.read_text(encoding="utf-8")
    section = text.split("\n## Exit status\n", 1)[1].split("\n#", 1)[0]
    rows: dict[int, str | None] = {}
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            example = match.group(3)
            rows[int(match.group(1))] = example.replace("\\|", "|") if example else None
    assert rows, f"no exit status table under '## Exit status' in {TABLE_PAGE}"
    return rows


def _env(pg: Server | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if pg is not None:
        env["DATABASE_URL"] = pg.url
    return env


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A PostgreSQL URL whose server accepts the connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    yield f"postgresql://u@127.0.0.1:{port}/x?connect_timeout=60"
    listener.close()


def _signalled(url: str, signum: int) -> CliResult:
    child = subprocess.Popen(
        [sys.executable, "-m", "sessionward", "terminate", "--wait", "30s", "--dsn", url, "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    time.sleep(1.5)  # well inside the connect
    sent = time.monotonic()
    child.send_signal(signum)
    out, err = child.communicate(timeout=30)
    assert time.monotonic() - sent < 1.0, "the signal took more than a second to stop it"
    return CliResult(child.returncode, out, err)


def _internal_error() -> CliResult:
    # A bug cannot be asked for from the command line (that is the point), so a command
    # that fails as a bug would is added through click's public add_command.
    program = (
        "from sessionward.interfaces.cli import cli, main\n"
        "@cli.command('boom')\n"
        "def boom():\n"
        "    raise RuntimeError('a bug')\n"
        "main(['boom'])\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, env=_env()
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def _broken_pipe(pg: Server) -> CliResult:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "sessionward", "ls", "--dsn", pg.url],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    return CliResult(completed.returncode, "", completed.stderr)


def _full_disk(pg: Server) -> CliResult:
    with open("/dev/full", "w") as full:
        completed = subprocess.run(
            [sys.executable, "-m", "sessionward", "ls", "--dsn", pg.url],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    return CliResult(completed.returncode, "", completed.stderr)


Case = Callable[[Server, str], CliResult]

#: Each status of the table, with cases of its own beyond the row's example.
CASES: dict[int, list[tuple[str, Case]]] = {
    0: [
        ("ls", lambda pg, _: run_script("ls", "--dsn", pg.url)),
        ("no arguments prints the help", lambda pg, _: run_script()),
        ("a filter that matches nothing", lambda pg, _: run_script(
            "terminate", "--dsn", pg.url, "--database", "sw_no_such_db_anywhere")),
    ],
    1: [
        ("an absent pid", lambda pg, _: run_script("terminate", "--dsn", pg.url, "99999999")),
    ],
    2: [
        ("a bad duration", lambda pg, _: run_script("ls", "--idle-over", "soon")),
        ("pids with --all-matching", lambda pg, _: run_script(
            "terminate", "--dsn", pg.url, "--all-matching", "5")),
        ("no server", lambda pg, _: run_script("ls", "--dsn", "postgresql://u@127.0.0.1:1/x")),
        ("stdout on a full device", lambda pg, _: _full_disk(pg)),
    ],
    3: [("a bug", lambda pg, _: _internal_error())],
    130: [("SIGINT while connecting", lambda pg, url: _signalled(url, signal.SIGINT))],
    141: [("stdout's reader gone", lambda pg, _: _broken_pipe(pg))],
    143: [("SIGTERM while connecting", lambda pg, url: _signalled(url, signal.SIGTERM))],
}  # fmt: skip

#: What stderr says for each status: one line, or nothing.
STDERR = {
    0: None,
    1: "sessionward: ",
    2: "sessionward: error: ",
    3: "sessionward: internal error: RuntimeError: a bug",
    130: "sessionward: interrupted",
    141: None,
    143: "sessionward: terminated",
}


def test_every_status_in_the_table_has_cases_and_no_case_lacks_a_row() -> None:
    assert set(exit_status_table()) == set(CASES) == set(STDERR)


@pytest.mark.parametrize("status", sorted(exit_status_table()))
def test_each_row_exits_as_the_table_says(status: int, pg: Server, silent_server: str) -> None:
    for name, case in CASES[status]:
        result = case(pg, silent_server)
        assert result.code == status, (name, result)
        assert "Traceback" not in result.err, (name, result.err)
        lines = result.err.strip().splitlines()
        if STDERR[status] is None:
            assert lines == [], (name, result.err)
        else:
            assert len(lines) == 1, (name, result.err)
            assert lines[0].startswith(STDERR[status]), (name, result.err)


@pytest.mark.parametrize(
    ("status", "example"),
    [(status, example) for status, example in exit_status_table().items() if example],
)
def test_each_rows_example_exits_with_its_status(status: int, example: str, pg: Server) -> None:
    completed = subprocess.run(
        ["bash", "-o", "pipefail", "-c", example],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(pg),
    )
    assert completed.returncode == status, completed
    assert "Traceback" not in completed.stderr
