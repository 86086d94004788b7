"""Bad input gets one clear stderr line and exit 2, never a traceback."""

from __future__ import annotations

import os

import pytest

from tests.cli.conftest import run_script


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL"))}
    env.update(extra)
    return env


def assert_one_clean_line(result, *needles: str) -> None:
    assert result.code == 2, result
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("oracle://scott@db/x", "unsupported URL scheme 'oracle'"),
        ("not a url", "not a server URL"),
        ("postgresql://u@h:notaport/db", "malformed URL"),
    ],
)
def test_bad_url(url: str, needle: str) -> None:
    assert_one_clean_line(run_script("ls", "--dsn", url, env=_env()), needle)


def test_postgres_down_is_one_line_and_hides_the_password() -> None:
    result = run_script("ls", "--dsn", "postgresql://app:hunter2@127.0.0.1:1/x", env=_env())
    assert_one_clean_line(result, "cannot connect", "127.0.0.1:1")
    assert "hunter2" not in result.err + result.out


def test_mysql_down_is_one_line_and_hides_the_password() -> None:
    result = run_script("ls", "--dsn", "mysql://app:hunter2@127.0.0.1:1/x", env=_env())
    assert_one_clean_line(result, "cannot connect", "127.0.0.1:1")
    assert "hunter2" not in result.err + result.out


def test_database_url_is_used_when_no_dsn() -> None:
    result = run_script("ls", env=_env(DATABASE_URL="mariadb://u:pw@127.0.0.1:1/x"))
    assert_one_clean_line(result, "mariadb://u:***@127.0.0.1:1/x")


def test_libpq_variables_are_used_last() -> None:
    result = run_script("ls", env=_env(PGHOST="127.0.0.1", PGPORT="1"))
    assert_one_clean_line(result, "cannot connect", "PG* variables")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ls", "--idle-over", "soon"], "not a duration"),
        (["ls", "--client", "nowhere"], "not a client address"),
        (["ls", "--state", "sleepy"], "unknown state"),
        (["ls", "--query", "("], "bad --query regex"),
        (["terminate"], "no session chosen"),
        (["cancel", "12", "--database", "x"], "pids or filters, not both"),
        (["terminate", "abc"], "'abc' is not a valid integer"),
        (["terminate", "--csv"], "No such option '--csv'"),
        (["frob"], "No such command 'frob'"),
    ],
)
def test_bad_arguments(args: list[str], needle: str) -> None:
    result = run_script(*args, "--dsn", "postgresql://postgres@127.0.0.1:1/x", env=_env())
    assert_one_clean_line(result, needle)
