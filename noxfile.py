"""The version matrix: the suite's server and client tests on other Pythons and servers.

``make test`` runs everything once, on the default Python (3.11) against the
system PostgreSQL 15, the embedded PostgreSQL 18 and MariaDB.  These sessions
add what that leaves out, where it pays, within CI's time budget:

- ``python-3.10`` / ``python-3.13``: the client integrations
  (``tests/integrations``: drivers, SQLAlchemy, Django, pytest, asyncio), whose
  behaviour depends on the Python version, on the oldest and newest Python we
  claim, against PostgreSQL 15 and MariaDB;
- ``postgresql-16``: the server adapters' tests (``tests/servers``: every
  catalog query and ending) on PostgreSQL 16.2, an embedded server run from the
  ``pgserver`` wheel's binaries.

The pure core, the command line and the reaper run once, in ``make test``.

Each writes ``.ci/matrix/<session>.xml``; ``.ci/matrix_table.py`` prints the
table.  Run one with ``.venv/bin/nox -s python-3.10`` (``make matrix`` runs all).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
REPORTS = ROOT / ".ci" / "matrix"
CLIENT_TESTS = ("tests/integrations",)
SERVER_TESTS = ("tests/servers",)
PGSERVER = "pgserver==0.1.4"  # PostgreSQL 16.2
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sessionward-matrix"


def _pytest(session: nox.Session, name: str, *args: str, python: str = "python") -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    session.run(
        python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={REPORTS / name}.xml",
        *args, external=python != "python",
    )  # fmt: skip


@nox.session(name="python", python=["3.10", "3.13"])
def other_python(session: nox.Session) -> None:
    """The client integrations' tests on another Python, against PostgreSQL 15 and MariaDB."""
    session.install("--quiet", "--upgrade", "pip>=25.1")
    session.install("--quiet", "-e", ".[all,mysqlclient]", "--group", "dev")
    session.env["SESSIONWARD_TEST_PG_EMBEDDED"] = "0"  # PostgreSQL 18 runs in `make test`
    _pytest(session, f"python-{session.python}", *CLIENT_TESTS)


@nox.session(name="postgresql-16", python=False)
def postgresql_16(session: nox.Session) -> None:
    """The server adapters' PostgreSQL tests on PostgreSQL 16, with the default Python."""
    bin_dir = _pgserver_binaries(session)
    session.env.pop("SESSIONWARD_TEST_PG_DSN", None)
    session.env["SESSIONWARD_TEST_PG_EMBEDDED"] = "1"
    session.env["SESSIONWARD_EMBEDDED_PG_BIN_DIR"] = str(bin_dir)
    _pytest(session, "postgresql-16", *SERVER_TESTS, "-k", "not mysql", python=sys.executable)


def _pgserver_binaries(session: nox.Session) -> Path:
    """The ``pgserver`` wheel's PostgreSQL, unpacked once into the cache."""
    target = CACHE / PGSERVER.replace("==", "-")
    bin_dir = target / "pgserver" / "pginstall" / "bin"
    if (bin_dir / "postgres").exists():
        return bin_dir
    wheels = CACHE / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(wheels), PGSERVER],
        check=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("pgserver-0.1.4-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            if member.filename.startswith(("pgserver/pginstall/", "pgserver.libs/")):
                archive.extract(member, target)
                mode = member.external_attr >> 16
                if mode:
                    (target / member.filename).chmod(mode)
    session.log(f"PostgreSQL 16 binaries in {bin_dir}")
    return bin_dir
