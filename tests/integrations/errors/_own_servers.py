"""Servers of our own that tests may restart, crash and stop: never the shared ones.

- ``OwnPostgres``: an ``EmbeddedPostgres`` driven with its own ``pg_ctl``.
- ``OwnMariaDB``: a ``mariadbd`` on a fresh data directory from
  ``mariadb-install-db``, on its own port and socket.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sessionward.embedded import SERVICE_USER, EmbeddedPostgres

_WAIT_SECONDS = 30


class OwnPostgres:
    def __init__(self) -> None:
        self.embedded = EmbeddedPostgres(max_connections=60)
        self.url = ""

    def start(self) -> str:
        self.url = self.embedded.start()
        return self.url

    def pg_ctl(self, *args: str) -> None:
        """Run pg_ctl on our data directory, as the user the server runs as."""
        run_as = SERVICE_USER if os.name == "posix" and os.geteuid() == 0 else None
        group = None
        if run_as is not None:
            import pwd

            group = pwd.getpwnam(run_as).pw_gid
        completed = subprocess.run(
            [str(self.embedded.bin_dir / "pg_ctl"), "-D", str(self.embedded.data_dir), *args],
            user=run_as,
            group=group,
            extra_groups=[] if run_as else None,
            cwd=self.embedded.data_dir.parent,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        assert completed.returncode == 0, f"pg_ctl {' '.join(args)}: {completed.stderr}"

    @property
    def _log(self) -> str:
        return str(self.embedded.data_dir.parent / "server.log")

    def restart(self) -> None:
        """A fast restart: what a deploy or a failover does to every session."""
        self.pg_ctl("-l", self._log, "-m", "fast", "-w", "restart")

    def stop_smart(self) -> None:
        """Begin a smart shutdown and return at once: the server waits for its sessions."""
        self.pg_ctl("-m", "smart", "-W", "stop")

    def wait_stopped(self) -> None:
        pid_file = self.embedded.data_dir / "postmaster.pid"
        _wait("the server stops", lambda: not pid_file.exists())

    def start_again(self) -> None:
        self.pg_ctl("-l", self._log, "-w", "start")

    def crash_backend(self, pid: int) -> None:
        """Kill one backend of this server with SIGKILL: the postmaster resets every session."""
        os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        self.embedded.stop()


class OwnMariaDB:
    def __init__(self, *options: str) -> None:
        #: More ``mariadbd`` options, e.g. ``--performance-schema=ON``.
        self.options = options
        self.root: Path | None = None
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> str | None:
        """Why no throwaway MariaDB can run here, or ``None``."""
        for program in ("mariadbd", "mariadb-install-db"):
            if _program(program) is None:
                return f"{program} is not installed"
        return None

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/mysql"

    def start(self) -> str:
        self.root = Path(tempfile.mkdtemp(prefix="sw-mariadb-"))
        self.port = _free_port()
        install = subprocess.run(
            [
                str(_program("mariadb-install-db")), "--no-defaults",
                f"--datadir={self.root / 'data'}", *self._user(),
                "--auth-root-authentication-method=normal", "--skip-test-db",
            ],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if install.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {install.stderr[-500:]}")
        self._launch()
        return self.url

    def _user(self) -> list[str]:
        return ["--user=root"] if os.name == "posix" and os.geteuid() == 0 else []

    def _launch(self) -> None:
        assert self.root is not None
        self.process = subprocess.Popen(
            [
                str(_program("mariadbd")), "--no-defaults", f"--datadir={self.root / 'data'}",
                *self._user(), f"--port={self.port}", "--bind-address=127.0.0.1",
                f"--socket={self.root / 'sock'}", f"--pid-file={self.root / 'pid'}",
                f"--log-error={self.root / 'error.log'}", "--skip-log-bin",
                "--innodb-buffer-pool-size=16M", "--innodb-buffer-pool-dump-at-shutdown=0",
                "--innodb-buffer-pool-load-at-startup=0", *self.options,
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        _wait("MariaDB accepts connections", self._answers)

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"mariadbd exited: {self._error_log()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def _error_log(self) -> str:
        assert self.root is not None
        with contextlib.suppress(OSError):
            return (self.root / "error.log").read_text()[-1000:]
        return ""

    def _terminate(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)  # a normal shutdown
        try:
            self.process.wait(_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self._terminate()
        self._launch()

    def stop(self) -> None:
        self._terminate()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def _program(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/usr/bin")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(what: str, check: Any) -> None:
    deadline = time.monotonic() + _WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.02)
