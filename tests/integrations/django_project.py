"""Drive the small real Django project in ``tests/integrations/django/project``.

Each test gets its own main database (``sw_…``), so its test database is
``test_sw_…`` and its ``--parallel`` clones ``test_sw_…_1``, ``…_2``: tests never
touch each other's databases or sessions.  Every run is a subprocess, exactly
as a user runs ``manage.py`` or ``pytest``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessionward.core import parse_target
from tests.fix_servers import Server

PROJECT_DIR = Path(__file__).parent / "django" / "project"
DJANGO_RUNNER = "django.test.runner.DiscoverRunner"
SESSIONWARD_RUNNER = "sessionward.django.TestRunner"
#: MariaDB: how long Django's own DROP DATABASE waits on a metadata lock before it fails.
LOCK_WAIT_SECONDS = 2


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


def clean_environ(**extra: str) -> dict[str, str]:
    """The environment of a child run: none of this run's pytest or database settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "SW_DJANGO_"))
        and key not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(PYTHONDONTWRITEBYTECODE="1", COLUMNS="200", **extra)
    return env


def run(args: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 120) -> Run:
    completed = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)


@dataclass
class DjangoProject:
    """The test project pointed at one server, with its own main database."""

    server: Server
    name: str
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Whatever a test leaves behind is dropped with the server's cleanup.
        self.server.created_databases.extend(self.test_databases)

    @property
    def engine(self) -> str:
        return self.server.engine

    @property
    def test_name(self) -> str:
        return f"test_{self.name}"

    @property
    def test_databases(self) -> list[str]:
        return [self.test_name, f"{self.test_name}_1", f"{self.test_name}_2"]

    def env(self, *, runner: str | None = None) -> dict[str, str]:
        target = parse_target(self.server.url)
        env = clean_environ(
            SW_DJANGO_ENGINE="postgresql" if self.engine == "postgresql" else "mysql",
            SW_DJANGO_NAME=self.name,
            SW_DJANGO_HOST=target.host or "",
            SW_DJANGO_PORT=str(target.port or ""),
            SW_DJANGO_USER=target.user or "",
            SW_DJANGO_PASSWORD=target.password or "",
            DJANGO_SETTINGS_MODULE="swproject.settings",
            **self.extra_env,
        )
        if self.engine == "mysql":
            env["SW_DJANGO_LOCK_WAIT_SECONDS"] = str(LOCK_WAIT_SECONDS)
        if runner is not None:
            env["SW_DJANGO_TEST_RUNNER"] = runner
        return env

    def manage(self, *args: str, runner: str = SESSIONWARD_RUNNER) -> Run:
        """``python manage.py ARGS`` in a child process."""
        return run(
            [sys.executable, "manage.py", *args], env=self.env(runner=runner), cwd=PROJECT_DIR
        )

    def pytest(self, *args: str, ini: Path) -> Run:
        """``pytest ARGS`` with pytest-django on this project, in a child process."""
        return run(
            [sys.executable, "-m", "pytest", "-c", str(ini), "-p", "no:cacheprovider", *args],
            env=self.env(),
            cwd=PROJECT_DIR,
        )

    def create_test_database(self, name: str | None = None) -> str:
        """Create a test database as a crashed run leaves it; MariaDB: with one InnoDB table."""
        name = name or self.test_name
        if self.engine == "postgresql":
            self.server.execute(f'CREATE DATABASE "{name}"')
        else:
            self.server.execute(f"CREATE DATABASE `{name}`")
            self.server.execute(f"CREATE TABLE `{name}`.sw_held (id INT) ENGINE=InnoDB")
        return name

    def hold(self, victims: Any, database: str, *, in_transaction: bool = False) -> Any:
        """A leftover session on ``database``; in a transaction it also read a table."""
        victim = victims(self.server, database=database)
        if in_transaction:
            victim.run("BEGIN")
            # On MariaDB the read takes the metadata lock a DROP DATABASE waits for.
            victim.run("SELECT 1" if self.engine == "postgresql" else "SELECT * FROM sw_held")
        return victim

    def existing_test_databases(self) -> set[str]:
        if self.engine == "postgresql":
            rows = self.server.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{self.test_name}%",)
            )
        else:
            rows = self.server.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                (f"{self.test_name}%",),
            )
        return {row[0] for row in rows}

    def sessions_on(self, databases: list[str]) -> set[int]:
        if self.engine == "postgresql":
            rows = self.server.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s)", (databases,)
            )
        else:
            marks = ", ".join(["%s"] * len(databases))
            rows = self.server.execute(
                f"SELECT ID FROM information_schema.PROCESSLIST WHERE DB IN ({marks})", databases
            )
        return {int(row[0]) for row in rows}

    def alive(self, pid: int) -> bool:
        if self.engine == "postgresql":
            rows = self.server.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
        else:
            rows = self.server.execute(
                "SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = %s", (pid,)
            )
        return bool(rows)
