"""A real PgBouncer in front of the test PostgreSQL.

- ``SESSIONWARD_TEST_PGBOUNCER_ADMIN_DSN`` (CI: ``.ci/run`` starts one with
  ``.ci/pgbouncer.sh``), with ``SESSIONWARD_TEST_PGBOUNCER_SESSION_DSN`` and
  ``SESSIONWARD_TEST_PGBOUNCER_TRANSACTION_DSN``: the pooler the ``pgbouncer``
  fixture hands out.
- Without them, and wherever a test needs its own settings
  (``start_pgbouncer``), ``.ci/pgbouncer.sh`` starts a private PgBouncer on a
  free loopback port in front of ``SESSIONWARD_TEST_PG_DSN``'s server, stopped
  after the session (or the test).
- No ``pgbouncer`` binary: the tests skip with the reason, which
  ``SESSIONWARD_REQUIRE_SERVERS=1`` turns into a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sessionward.core import parse_target
from tests.fix_servers import PG_ENV, missing_server

ADMIN_ENV = "SESSIONWARD_TEST_PGBOUNCER_ADMIN_DSN"
SESSION_ENV = "SESSIONWARD_TEST_PGBOUNCER_SESSION_DSN"
TRANSACTION_ENV = "SESSIONWARD_TEST_PGBOUNCER_TRANSACTION_DSN"
SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "pgbouncer.sh"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class Bouncer:
    """One running PgBouncer: its admin console and pooled databases."""

    port: int
    #: The PostgreSQL behind it, reached directly (superuser).
    server_url: str
    directory: Path | None = None

    @property
    def base(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"{self.base}/pgbouncer"

    @property
    def session_url(self) -> str:
        """``sw_session``: the server's ``postgres`` database, session pooling."""
        return f"{self.base}/sw_session"

    @property
    def transaction_url(self) -> str:
        """``sw_transaction``: the same database, transaction pooling."""
        return f"{self.base}/sw_transaction"

    @property
    def tiny_url(self) -> str:
        """``sw_tiny``: session pooling with a single server connection."""
        return f"{self.base}/sw_tiny"

    def url_for(self, database: str) -> str:
        return f"{self.base}/{database}"

    def admin(self, command: str) -> list[tuple[object, ...]]:
        """Run one admin console command and return its rows."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            cursor = conn.execute(command, prepare=False)
            return list(cursor.fetchall()) if cursor.description else []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_url() -> str:
    return os.environ.get(PG_ENV) or DEFAULT_PG


def start(
    settings: dict[str, object] | None = None,
    *,
    pg_port: int | None = None,
    users: tuple[str, ...] = ("postgres",),
) -> Bouncer:
    """Start a private PgBouncer with ``settings`` added to its ``[pgbouncer]`` section.

    ``pg_port``: the PostgreSQL port it connects to (a proxy's); ``users``: who may log in.
    """
    if shutil.which("pgbouncer") is None and not Path("/usr/sbin/pgbouncer").exists():
        missing_server("no pgbouncer binary (apt-get install pgbouncer)")
    server = _server_url()
    target = parse_target(server)
    directory = Path(tempfile.mkdtemp(prefix="sw-pgbouncer-"))
    directory.chmod(0o755)
    port = _free_port()
    environ = {
        **os.environ,
        "PGBOUNCER_PG_HOST": target.host or "127.0.0.1",
        "PGBOUNCER_PG_PORT": str(pg_port or target.port or 5432),
        "PGBOUNCER_USERS": " ".join(users),
    }
    args = [f"{key}={value}" for key, value in (settings or {}).items()]
    done = subprocess.run(
        ["bash", str(SCRIPT), "start", str(directory), str(port), *args],
        env=environ, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        missing_server(f"PgBouncer did not start: {done.stderr.strip()}")
    return Bouncer(port=port, server_url=server, directory=directory)


def stop(bouncer: Bouncer) -> None:
    if bouncer.directory is None:
        return
    subprocess.run(["bash", str(SCRIPT), "stop", str(bouncer.directory)], timeout=30, check=False)
    shutil.rmtree(bouncer.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[Bouncer]:
    """The shared PgBouncer (CI's, from the environment, or a private one)."""
    admin = os.environ.get(ADMIN_ENV)
    if admin:
        import psycopg

        try:
            psycopg.connect(admin, autocommit=True, connect_timeout=5).close()
        except Exception as error:
            missing_server(f"{ADMIN_ENV}={admin} does not answer: {error}")
        port = parse_target(admin).port or 6432
        yield Bouncer(port=port, server_url=_server_url())
        return
    bouncer = start()
    yield bouncer
    stop(bouncer)


@pytest.fixture
def start_pgbouncer() -> Iterator[Callable[..., Bouncer]]:
    """Start private PgBouncers with given settings; each is stopped after the test."""
    started: list[Bouncer] = []

    def make(settings: dict[str, object] | None = None, **kwargs: Any) -> Bouncer:
        bouncer = start(settings, **kwargs)
        started.append(bouncer)
        return bouncer

    yield make
    for bouncer in started:
        stop(bouncer)
