"""Hundreds of careless and hostile inputs through the real command, against both servers.

Every case is bad input: the command must say so in one stderr line and exit 2 (or, where
a case names it, another refusal code), never print a traceback, never show the password,
and never end or drop anything. Canary sessions and databases on both servers, which a
wrongly accepted input would hit, are checked after every batch.

Cases come from a seeded generator: a failure names its seed and case number, and
``SESSIONWARD_FUZZ_SEED=<seed> pytest tests/cli/test_fuzz_bad_input.py`` replays it.
``SESSIONWARD_FUZZ_CASES`` sets how many cases of each kind run (default 30).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sessionward.interfaces.cli import main
from tests.fix_servers import ABSENT_PID, Server, Victim, unique

SEED = int(os.environ.get("SESSIONWARD_FUZZ_SEED", "20261207"))
CASES_PER_KIND = int(os.environ.get("SESSIONWARD_FUZZ_CASES", "30"))
#: The password every generated URL carries: it must never appear in any output.
SECRET = "Zq9xS3cr3tPw"
SECRET_FORMS = (SECRET, SECRET[3:-2], SECRET.upper())
#: Cases run in a child process too (the console script's own start-up and exit path).
SUBPROCESS_SHARE = 0.1


@dataclass
class Case:
    kind: str
    number: int
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    codes: frozenset[int] = frozenset({2})
    subprocess: bool = False

    def __str__(self) -> str:
        return f"seed {SEED} case {self.kind}#{self.number}: sessionward {' '.join(self.args)!r}"


@dataclass
class Scene:
    pg: Server
    mysql: Server
    pg_canary: Victim
    mysql_canary: Victim
    pg_database: str
    mysql_database: str
    tmp: Path
    files: dict[str, Path]

    mysql_user: str

    def url(self, server: Server) -> str:
        """A working URL carrying the password (PostgreSQL trusts any; MariaDB checks it)."""
        if server is self.pg:
            return server.url_for(self.pg_database, password=SECRET)
        return server.url_for(self.mysql_database, user=self.mysql_user, password=SECRET)


# --------------------------------------------------------------------------- generators


def _noise(rng: random.Random, alphabet: str, low: int = 1, high: int = 12) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


_AMBIGUOUS = "@/#?"


def _with_ambiguous(rng: random.Random, text: str) -> str:
    at = rng.randint(1, len(text) - 1)
    return text[:at] + rng.choice(_AMBIGUOUS) + text[at:]


def bad_urls(rng: random.Random, scene: Scene) -> Iterator[Case]:
    schemes = ["postgresql", "postgres", "mysql", "mariadb"]
    pg_port = _port_of(scene.pg.url) or "5432"
    my_port = _port_of(scene.mysql.url) or "3306"
    for number in range(CASES_PER_KIND * 3):
        scheme = rng.choice(schemes)
        port = pg_port if scheme.startswith("postgres") else my_port
        shape = rng.randrange(9)
        codes = frozenset({2})
        if shape == 0:  # a password with a character that changes the URL's parts
            password = _with_ambiguous(rng, SECRET)
            url = f"{scheme}://sw_fuzz:{password}@127.0.0.1:{port}/sw_fuzz"
            codes = frozenset({2})
        elif shape == 1:  # an option the driver rejects
            option = rng.choice(
                ["charset=bogus", "ssl_ca=/nonexistent/ca.pem", "connect_timeout=abc",
                 "sslmode=bogus", "frobnicate=1", "port=99999", "connect_timeout=-5",
                 "sslmode=verify-full&sslrootcert=/nonexistent"]
            )  # fmt: skip
            url = f"{scheme}://sw_fuzz:{SECRET}@127.0.0.1:{port}/sw_fuzz?{option}"
        elif shape == 2:  # a user name that is not UTF-8 once decoded
            url = f"{scheme}://%FF%FE:{SECRET}@127.0.0.1:{port}/sw_fuzz"
        elif shape == 3:  # a port out of range or not a number
            bad_port = rng.choice(["0", "65536", "99999999999", "-1", "abc", "5432x"])
            url = f"{scheme}://u:{SECRET}@127.0.0.1:{bad_port}/db"
        elif shape == 4:  # a scheme we do not serve
            other = rng.choice(["oracle", "mssql", "sqlite", "http", "postgresql+psycopg", "pg"])
            url = f"{other}://u:{SECRET}@127.0.0.1:{port}/db"
        elif shape == 5:  # nothing like a URL
            url = _noise(rng, "abc:/@?#%&=. \t\\x") + SECRET
        elif shape == 6:  # bad percent-encoding in the password
            url = f"{scheme}://u:{SECRET}%zz@127.0.0.1:{port}/db"
        elif shape == 7:  # a server that does not answer
            url = f"{scheme}://u:{SECRET}@127.0.0.1:1/db"
        else:  # a user the server refuses (MariaDB checks passwords)
            url = f"mysql://sw_fuzz_nobody_{number}:{SECRET}@127.0.0.1:{my_port}/sw_fuzz"
        command = rng.choice(
            [["ls"], ["ls", "--json"], ["blockers"],
             ["terminate", "--all-matching", "--dry-run", "--idle-over", "1h"],
             ["cancel", str(ABSENT_PID)], ["dropdb", "sw_fuzz_absent", "--dry-run"]]
        )  # fmt: skip
        if rng.random() < 0.3:
            yield Case("url-env", number, command, env={"DATABASE_URL": url}, codes=codes)
        else:
            yield Case("url", number, [*command, "--dsn", url], codes=codes)


def bad_filters(rng: random.Random, scene: Scene) -> Iterator[Case]:
    durations = ["nan", "inf", "-inf", "-5s", "1e400s", "99999999999999h", "", "5 minutes",
                 "NaNs", "1h-30m", "9" * 400, "0x10s", "1e308h", "∞"]  # fmt: skip
    regexes = ["(", "[[:alpha:]]", "a{99999999999}", "(" * 3000 + ")" * 2999, "\\", "*x",
               "(?P<", "[z-a]", "x[[:digit:]]y", "(?<=a+)b"]  # fmt: skip
    for number in range(CASES_PER_KIND * 2):
        server = rng.choice([scene.pg, scene.mysql])
        canary = scene.pg_canary if server is scene.pg else scene.mysql_canary
        kind = rng.randrange(4)
        if kind == 0:
            option = [rng.choice(["--idle-over", "--xact-over", "--query-over"]),
                      rng.choice(durations)]  # fmt: skip
        elif kind == 1:
            option = ["--query", rng.choice(regexes)]
        elif kind == 2:
            option = ["--state", _noise(rng, "abcxyz-_ ")]
        else:
            option = ["--client", rng.choice(["nowhere", "1.2.3.4/99", "::g", "300.1.1.1", ""])]
        # Aimed at the canary: were the bad value ever accepted, the canary would end.
        command = rng.choice(
            [["ls"], ["terminate", "--all-matching", "--yes"],
             ["cancel", "--all-matching", "--yes"], ["terminate", "--all-matching", "--dry-run"]]
        )  # fmt: skip
        yield Case(
            "filter",
            number,
            [*command, "--app", canary.application, *option, "--dsn", scene.url(server)],
        )


def bad_pids(rng: random.Random, scene: Scene) -> Iterator[Case]:
    for number in range(CASES_PER_KIND):
        server = rng.choice([scene.pg, scene.mysql])
        action = rng.choice(["terminate", "cancel"])
        shape = rng.randrange(4)
        if shape == 0:
            args = [action, rng.choice(["abc", "1.5", "0x10", "", "1e3", "½"])]
        elif shape == 1:
            args = [action, "--all-matching", rng.choice(["0", "1", str(ABSENT_PID)])]
        elif shape == 2:
            args = [action, str(rng.choice([2**63, 2**64 + 5, 10**30]))]
        else:
            args = [action, str(ABSENT_PID), "--wait", rng.choice(["nan", "-1s", "1e400s"])]
        # A pid no server can have is refused (2) or reported gone (1): either way, one line.
        codes = frozenset({1, 2}) if shape == 2 else frozenset({2})
        yield Case("pid", number, [*args, "--dsn", scene.url(server)], codes=codes)


def bad_policies(rng: random.Random, scene: Scene) -> Iterator[Case]:
    duration_keys = ["idle_over", "idle_in_transaction_over", "xact_over", "query_over",
                     "wait_over"]  # fmt: skip
    count_keys = ["blocking_at_least", "xmin_age_over"]
    bad_values = ["nan", "inf", "-inf", "+nan", "-1", "-0.5", "1e308", '"nan"', '"inf"',
                  '"-5s"', '"1e400s"', "99999999999999999999", "true", "[]", "{}", '"∞"',
                  '"99999999999d"']  # fmt: skip
    for number in range(CASES_PER_KIND * 2):
        shape = rng.randrange(6)
        path = scene.tmp / f"policy-{number}.toml"
        canary_apps = f'["{scene.pg_canary.application}", "{scene.mysql_canary.application}"]'
        if shape <= 2:
            key = rng.choice(duration_keys if shape < 2 else count_keys)
            value = rng.choice(bad_values)
            path.write_text(
                "[[rule]]\n"
                'name = "fuzz"\n'
                'action = "terminate"\n'
                f"match = {{ application = {canary_apps}, {key} = {value} }}\n"
            )
        elif shape == 3:
            limit = rng.choice(["max_per_sweep", "max_per_minute"])
            path.write_text(
                f"[limits]\n{limit} = {rng.choice(['nan', '-1', 'inf', '1e308', '-0.0'])}\n"
                f'[[rule]]\nname = "fuzz"\naction = "report"\n'
                f"match = {{ application = {canary_apps} }}\n"
            )
        elif shape == 4:
            path.write_bytes(rng.choice([
                bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))),
                b"\xff\xfe[[rule]]\n",
                "[[rule]]\nname = \"caf\xe9\"\n".encode("latin-1"),
                b"a = " + b"[" * 50_000 + b"]" * 50_000,
                b"a = " + b"{b = " * 5_000 + b"1" + b"}" * 5_000,
            ]))  # fmt: skip
        else:
            path = scene.files[rng.choice(["zero", "directory", "fifo", "missing"])]
        real = scene.url(rng.choice([scene.pg, scene.mysql]))
        command = rng.choice(
            [["policy", "check", str(path)],
             ["policy", "test", str(path), "--snapshot", str(scene.files["snapshot"])],
             ["reap", "--policy", str(path), "--once", "--dsn", real],
             ["reap", "--policy", str(path), "--once", "--dry-run", "--dsn", real]]
        )  # fmt: skip
        # reap installs signal handlers: always in a child process.
        yield Case("policy", number, command, subprocess=command[0] == "reap")


def bad_snapshots(rng: random.Random, scene: Scene) -> Iterator[Case]:
    for number in range(CASES_PER_KIND):
        shape = rng.randrange(5)
        path = scene.tmp / f"snapshot-{number}.json"
        if shape == 0:
            path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(1, 300))))
        elif shape == 1:
            path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
        elif shape == 2:
            path.write_text(rng.choice(['{"sessions": 5}', '{"version": "x"}', "[]", "null",
                                        '{"sessions": [{"pid": "x"}]}', "{" * 3]))  # fmt: skip
        elif shape == 3:
            path.write_bytes(b'{"sessions": [], "taken_at": "\xff"}')
        else:
            path = scene.files[rng.choice(["zero", "directory", "fifo", "missing"])]
        yield Case(
            "snapshot",
            number,
            ["policy", "test", str(scene.files["good_policy"]), "--snapshot", str(path)],
        )


def bad_drops(rng: random.Random, scene: Scene) -> Iterator[Case]:
    for number in range(CASES_PER_KIND):
        server = rng.choice([scene.pg, scene.mysql])
        sentinel = scene.pg_database if server is scene.pg else scene.mysql_database
        # One past the server's limit: a server that cut it would find the sentinel.
        limit = 63 if server is scene.pg else 64
        name = (sentinel + "x" * 80)[: limit + rng.randint(1, 20)]
        flags = rng.choice([["--if-exists", "--yes"], ["--dry-run"], ["--force", "--yes"],
                            ["--if-exists", "--dry-run", "--force"]])  # fmt: skip
        yield Case("dropdb", number, ["dropdb", name, *flags, "--dsn", scene.url(server)])


GENERATORS: list[Callable[[random.Random, Scene], Iterator[Case]]] = [
    bad_urls, bad_filters, bad_pids, bad_policies, bad_snapshots, bad_drops,
]  # fmt: skip


# --------------------------------------------------------------------------- the run


def _port_of(url: str) -> str | None:
    from sessionward.core import parse_target

    port = parse_target(url).port
    return str(port) if port else None


@pytest.fixture
def scene(pg: Server, mysql: Server, victims: Any, tmp_path: Path) -> Scene:
    # Sentinels 63 and 64 characters long: exactly what a truncated longer name would hit.
    pg_database = unique("sw_fuzz").ljust(63, "s")
    mysql_database = unique("sw_fuzz").ljust(64, "s")
    pg.execute(f'CREATE DATABASE "{pg_database}"')
    pg.created_databases.append(pg_database)
    mysql.execute(f"CREATE DATABASE `{mysql_database}`")
    mysql.created_databases.append(mysql_database)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "directory").mkdir()
    good_policy = tmp_path / "good.toml"
    good_policy.write_text(
        '[[rule]]\nname = "r"\naction = "report"\nmatch = { idle_over = "1h" }\n'
    )
    snapshot = tmp_path / "snapshot.json"
    done = subprocess.run(
        [sys.executable, "-m", "sessionward", "ls", "--json", "--dsn", pg.url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    snapshot.write_text(done.stdout)
    # A MariaDB login with the password, allowed to end any session: were a bad input
    # ever acted on, nothing but the check would stop it.
    mysql_user = mysql.create_user(superuser=True)
    mysql.execute(f"ALTER USER '{mysql_user}'@'%' IDENTIFIED BY '{SECRET}'")
    return Scene(
        mysql_user=mysql_user,
        pg=pg,
        mysql=mysql,
        pg_canary=victims(pg, database=pg_database, application=unique("sw_fuzz_canary")),
        mysql_canary=victims(mysql, database=mysql_database),
        pg_database=pg_database,
        mysql_database=mysql_database,
        tmp=tmp_path,
        files={
            "zero": Path("/dev/zero"),
            "directory": tmp_path / "directory",
            "fifo": fifo,
            "missing": tmp_path / "missing.toml",
            "good_policy": good_policy,
            "snapshot": snapshot,
        },
    )


def _run_in_process(case: Case, capsys: pytest.CaptureFixture[str],
                    monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:  # fmt: skip
    with monkeypatch.context() as patch:
        patch.delenv("DATABASE_URL", raising=False)
        for name, value in case.env.items():
            patch.setenv(name, value)
        capsys.readouterr()
        try:
            main(case.args)
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        captured = capsys.readouterr()
    return code, captured.out, captured.err


def _run_child(case: Case) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL"))}
    env.update(case.env)
    done = subprocess.run(
        [sys.executable, "-m", "sessionward", *case.args],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def _problems(case: Case, code: int, out: str, err: str) -> list[str]:
    problems = []
    if code not in case.codes:
        problems.append(f"exit {code}, expected {sorted(case.codes)}")
    if "Traceback" in err or "Traceback" in out:
        problems.append("a traceback")
    if "internal error" in err:
        problems.append("an internal error")
    lines = [line for line in err.splitlines() if line.strip()]
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines")
    for form in SECRET_FORMS:
        if form in out or form in err:
            problems.append("the password in the output")
            break
    if problems:
        problems.append(f"stderr: {err.strip()[:300]!r}")
    return problems


def _assert_nothing_ended(scene: Scene) -> None:
    for canary in (scene.pg_canary, scene.mysql_canary):
        rows = [tuple(row) for row in canary.run("SELECT 1")]
        assert rows == [(1,)], f"canary on {canary.server.name} was ended"
    assert scene.pg.database_exists(scene.pg_database), "PostgreSQL sentinel database dropped"
    assert scene.mysql.database_exists(scene.mysql_database), "MariaDB sentinel database dropped"


@pytest.mark.slow
@pytest.mark.parametrize("generator", GENERATORS, ids=lambda g: g.__name__)
def test_bad_input_is_one_line_exit_2_and_ends_nothing(
    generator: Callable[[random.Random, Scene], Iterator[Case]],
    scene: Scene,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    rng = random.Random(f"{SEED}-{generator.__name__}")
    failures = []
    count = 0
    for case in generator(rng, scene):
        count += 1
        child = case.subprocess or rng.random() < SUBPROCESS_SHARE
        code, out, err = _run_child(case) if child else _run_in_process(case, capsys, monkeypatch)
        problems = _problems(case, code, out, err)
        if problems:
            failures.append(f"{case}{' (child process)' if child else ''}: {'; '.join(problems)}")
    _assert_nothing_ended(scene)
    assert count >= CASES_PER_KIND
    assert not failures, f"{len(failures)} of {count} cases:\n" + "\n".join(failures[:25])
