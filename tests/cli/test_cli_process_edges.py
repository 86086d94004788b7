"""The process's edges: signals, a closed or full stdout, closed stdin, answers at a prompt.

Each is one clear stderr line (or none, for a broken pipe) and its exit status, never a
traceback; nothing is ended that the person did not confirm.
"""

from __future__ import annotations

import os
import pty
import random
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.cli.conftest import CliResult, run_script
from tests.fix_servers import Server

#: Python's own start-up, before the first line of sessionward runs: a Ctrl-C there
#: is the interpreter's to report ("Fatal Python error: init_import_site").
PYTHON_STARTUP_FAILURE = "init_import_site"


def _before_main(err: str) -> bool:
    """The Ctrl-C landed before the console script called ``main``, whose first act is to
    take SIGINT over: in Python's start-up or its import of the script's module (the three
    small package ``__init__`` files). That traceback is the interpreter's; with ``main``
    in it, it would be ours.
    """
    if PYTHON_STARTUP_FAILURE in err:
        return True
    return err.rstrip().endswith("KeyboardInterrupt") and not _in_main(err)


def _in_main(err: str) -> bool:
    """Whether the traceback passes through sessionward's ``main`` (where the signals are
    ours): the import machinery's own frames (``runpy``, importlib, setuptools'
    ``_distutils_hack``) are not."""
    return any(
        "sessionward" in line and line.rstrip().endswith(", in main")
        for line in err.splitlines()
        if line.lstrip().startswith("File ")
    )


def _alive(victim) -> bool:
    try:
        return victim.run("SELECT 1") is not None
    except Exception:
        return False


def test_sigint_at_any_moment_of_start_up_is_one_line_never_a_traceback(pg: Server) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    script = os.path.join(os.path.dirname(sys.executable), "sessionward")
    outcomes = []
    for _ in range(20):
        delay = rng.uniform(0.0, 0.3)
        child = subprocess.Popen(
            [script, "ls", "--dsn", pg.url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
        outcomes.append((round(delay, 3), child.returncode, err))
        if _before_main(err):
            continue
        assert "Traceback" not in err, (seed, delay, err)
        assert child.returncode in (0, 130, -signal.SIGINT), (seed, delay, child.returncode, err)
        lines = err.strip().splitlines()
        assert lines in ([], ["sessionward: interrupted"]), (seed, delay, err)
    # Most delays land after main took SIGINT over, which answers with its one line.
    assert sum(code == 130 for _, code, _ in outcomes) >= 10, (seed, outcomes)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
@pytest.mark.parametrize(
    ("signum", "status", "line"),
    [(signal.SIGINT, 130, "sessionward: interrupted"),
     (signal.SIGTERM, 143, "sessionward: terminated")],
)  # fmt: skip
def test_a_signal_stops_a_slow_connect_within_a_second(
    scheme: str, signum: int, status: int, line: str, silent_port: int
) -> None:
    url = f"{scheme}://u@127.0.0.1:{silent_port}/x"
    if scheme == "postgresql":
        url += "?connect_timeout=60"
    child = subprocess.Popen(
        [sys.executable, "-m", "sessionward", "terminate", "--wait", "30s", "--dsn", url, "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    assert child.poll() is None, child.communicate()
    sent = time.monotonic()
    child.send_signal(signum)
    out, err = child.communicate(timeout=30)
    assert time.monotonic() - sent < 1.0
    assert child.returncode == status, err
    assert err.strip().splitlines() == [line]
    assert out == ""


def _shell(command: str, server: Server) -> CliResult:
    bin_dir = os.path.dirname(sys.executable)
    completed = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
             "DATABASE_URL": server.url},
    )  # fmt: skip
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def test_a_closed_stdout_is_refused_before_anything_is_done(server: Server, victims) -> None:
    victim = victims(server, database=server.create_database())
    result = _shell(f"exec 1>&-; exec sessionward terminate {victim.pid}", server)
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "sessionward: error: cannot write to standard output: it is closed"
    ]
    assert _alive(victim)


def test_a_full_stdout_is_one_line_and_exit_2(server: Server) -> None:
    result = _shell("sessionward ls > /dev/full", server)
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "sessionward: error: cannot write to standard output: No space left on device"
    ]


def test_a_broken_pipe_is_silent_and_exit_141(server: Server) -> None:
    result = _shell("sessionward ls --all | head -0; exit ${PIPESTATUS[0]}", server)
    assert result.code == 141
    assert result.err == ""


def test_a_closed_stdin_is_no_terminal_and_no_internal_error(server: Server, victims) -> None:
    database, user = server.create_database(), server.create_user()
    chosen = [victims(server, database=database, user=user) for _ in range(2)]
    result = _shell("exec 0<&-; exec sessionward ls", server)
    assert result.code == 0, result.err
    # Not a terminal, so nobody is asked, as in a script: both are ended.
    pids = " ".join(str(v.pid) for v in chosen)
    result = _shell(f"exec 0<&-; exec sessionward terminate {pids}", server)
    assert result.code == 0, result.err
    assert not any(_alive(v) for v in chosen)


def test_no_arguments_prints_the_help_on_stdout_and_exits_0() -> None:
    result = run_script()
    assert result.code == 0
    assert result.out.startswith("Usage: sessionward [OPTIONS] [COMMAND] [ARGS]...")
    assert "terminate" in result.out
    assert result.err == ""


@pytest.mark.parametrize("command", ["terminate", "cancel"])
@pytest.mark.parametrize("pid", ["0", "5"])
def test_pids_with_all_matching_are_refused(command: str, pid: str) -> None:
    result = run_script(command, "--all-matching", pid, "--dsn", "postgresql://u@127.0.0.1:1/x")
    assert result.code == 2
    assert "Traceback" not in result.err
    (line,) = result.err.strip().splitlines()
    expected = "not in the range x>=1" if pid == "0" else "give pids or --all-matching, not both"
    assert expected in line


class _Prompted:
    """``sessionward terminate`` with a terminal on stdin, stopped at its question."""

    def __init__(self, server: Server, database: str) -> None:
        self.master, slave = pty.openpty()
        self.child = subprocess.Popen(
            [sys.executable, "-m", "sessionward", "terminate", "--dsn", server.url,
             "--database", database],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        os.close(slave)
        self.out = b""
        deadline = time.monotonic() + 30
        assert self.child.stdout is not None
        while b"[y/N]: " not in self.out:
            assert time.monotonic() < deadline, self.out
            ready, _, _ = select.select([self.child.stdout], [], [], 1.0)
            if ready:
                chunk = os.read(self.child.stdout.fileno(), 65536)
                assert chunk, (self.out, self.child.stderr.read() if self.child.stderr else b"")
                self.out += chunk

    def finish(self) -> CliResult:
        try:
            out, err = self.child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.child.kill()  # a child left at its question would hold its sessions
            self.child.communicate()
            raise
        finally:
            os.close(self.master)
        return CliResult(self.child.returncode, (self.out + out).decode(), err.decode())


def test_ctrl_d_at_the_prompt_ends_nothing_and_exits_1(server: Server, victims) -> None:
    database, user = server.create_database(), server.create_user()
    chosen = [victims(server, database=database, user=user) for _ in range(2)]
    prompted = _Prompted(server, database)
    assert "Terminate these 2 sessions? [y/N]: " in prompted.out.decode()
    os.write(prompted.master, b"\x04")  # Ctrl-D: end of input on a terminal
    result = prompted.finish()
    assert result.code == 1
    assert result.err.strip().splitlines() == ["sessionward: no answer; nothing was ended"]
    assert all(_alive(v) for v in chosen)


def test_ctrl_c_at_the_prompt_ends_nothing_and_exits_130(server: Server, victims) -> None:
    database, user = server.create_database(), server.create_user()
    chosen = [victims(server, database=database, user=user) for _ in range(2)]
    prompted = _Prompted(server, database)
    prompted.child.send_signal(signal.SIGINT)
    result = prompted.finish()
    assert result.code == 130
    assert result.err.strip().splitlines() == ["sessionward: interrupted"]
    assert all(_alive(v) for v in chosen)


def test_main_in_process_gives_the_signal_handlers_back(run_cli) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    result = run_cli("--version")
    assert result.code == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
