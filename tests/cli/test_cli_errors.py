"""Bad input gets one clear stderr line and exit 2, never a traceback."""

from __future__ import annotations

import os

import pytest

from tests.cli.conftest import run_script
from tests.unit.test_properties_urls import password_forms


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
        ("oracle://scott@db/x", "--dsn: unsupported URL scheme 'oracle'"),
        ("not a url", "--dsn: not a server URL"),
        ("postgresql://u@h:notaport/db", "--dsn: the port in the URL is not a number"),
        ("mysql://root@127.0.0.1:3306/test?charset=bogus", "--dsn: unknown charset 'bogus'"),
    ],
)
def test_bad_url(url: str, needle: str) -> None:
    assert_one_clean_line(run_script("ls", "--dsn", url, env=_env()), needle)


def test_bad_database_url_names_the_variable() -> None:
    result = run_script("ls", env=_env(DATABASE_URL="postgresql://u:Zq9@a@b@127.0.0.1:1/x"))
    assert_one_clean_line(result, "$DATABASE_URL: the host part of the URL contains '@'")
    assert "Zq9" not in result.err


def test_empty_dsn_is_refused() -> None:
    assert_one_clean_line(run_script("ls", "--dsn", "", env=_env()), "--dsn: empty")


def test_garbage_pause_variable_names_it(tmp_path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[[rule]]\nname = "r"\naction = "report"\nmatch = { idle_over = "1h" }\n')
    result = run_script(
        "reap", "--once", "--policy", str(policy), "--dsn", "postgresql://u@127.0.0.1:1/x",
        env=_env(SESSIONWARD_REAPER_PAUSE_AFTER_AUDIT="\x1b[2Jsoon"),
    )  # fmt: skip
    assert_one_clean_line(result, "SESSIONWARD_REAPER_PAUSE_AFTER_AUDIT")
    assert "\x1b" not in result.err


#: Password in every URL below; it must not show in any of its forms.
SECRET = "Zq9Secr3t"
#: (URL with {pg}/{my} for the live servers' host:port, words the one line must hold).
BAD_URLS = [
    # Could be read two ways: refused before any lookup, the URL never echoed.
    ("postgresql://u:Zq9Secr3t@x/y@{pg}/db", "--dsn: the URL has an '@' after its host part"),
    ("postgresql://u:Zq9@Secr3t@{pg}/db", "--dsn: the host part of the URL contains '@'"),
    ("mysql://u:Zq9/Secr3t@{my}/db", "--dsn: the URL has an '@' after its host part"),
    ("mysql://u:Zq9?Secr3t@{my}/db", "--dsn: the URL has an '@' after its host part"),
    ("mysql://u:Zq9#Secr3t@{my}/db", "--dsn: the URL contains a raw '#'"),
    ("mysql://u:Zq9 Secr3t@{my}/db", "--dsn: the URL contains a space"),
    ("mysql://u:Zq9%zzSecr3t@{my}/db", "--dsn: the URL has a '%' not followed"),
    ("postgresql://u:Zq9Secr3t@{pg}/db?application_name=a@b", "'@' after its host part"),
    # Not text once decoded, or nothing a server takes.
    ("mysql://r%FFoot:Zq9Secr3t@{my}/test", "--dsn: the user name in the URL is not UTF-8"),
    ("mysql://root:Zq9Secr3t%FF@{my}/test", "--dsn: the password in the URL is not UTF-8"),
    ("mysql://root:Zq9Secr3t@{my}/t%00est", "--dsn: the database name in the URL contains %00"),
    ("postgresql://u:Zq9Secr3t@{pg}/db?a=%FF", "--dsn: the value of a in the URL is not UTF-8"),
    ("postgresql://u:Zq9Secr3t@{pg}/db?a", "--dsn: the URL query is not name=value pairs"),
    # Hosts and ports.
    ("postgresql://u:Zq9Secr3t@127.0.0.1:0/db", "--dsn: port 0 in the URL is out of range"),
    ("mysql://u:Zq9Secr3t@127.0.0.1:65536/db", "--dsn: port 65536 in the URL is out of range"),
    ("mysql://u:Zq9Secr3t@127.0.0.1:1,h:2/db", "--dsn: the port in the URL is not a number"),
    ("postgresql://u:Zq9Secr3t@a..b/db", "--dsn: the host in the URL is not a valid host name"),
    ("postgresql://u:Zq9Secr3t@[::1/db", "--dsn: the URL has a malformed [IPv6] host"),
    ("oracle://u:Zq9Secr3t@{pg}/db", "--dsn: unsupported URL scheme 'oracle'"),
    ("u:Zq9Secr3t@{pg}/db", "--dsn: not a server URL"),
    # Driver options: refused by sessionward or by the driver, in one line.
    ("mysql://root:Zq9Secr3t@{my}/test?charset=bogus", "--dsn: unknown charset 'bogus' in"),
    ("mysql://root:Zq9Secr3t@{my}/test?ssl_ca=/nonexistent", "--dsn: cannot use the TLS files"),
    ("mysql://root:Zq9Secr3t@{my}/test?ssl_ca=/dev/null", "--dsn: cannot use the TLS files"),
    ("mysql://root:Zq9Secr3t@{my}/test?ssl_disabled=maybe", "is neither true nor false"),
    ("mysql://root:Zq9Secr3t@{my}/test?foo=1", "--dsn: unknown option 'foo'"),
    ("mysql://root@{my}/test?pass%77d=Zq9Secr3t", "--dsn: unknown option 'passwd'"),
    ("mysql://root:Zq9Secr3t@{my}/test", "access denied for user 'root'"),
    ("mysql://root:%D0%BFZq9Secr3t@{my}/test", "access denied for user 'root'"),
    ("postgresql://postgres:Zq9Secr3t@{pg}/db?foo=1", "invalid URI query parameter"),
    ("postgresql://postgres@{pg}/db?PASSWORD=Zq9Secr3t", "?PASSWORD=***"),
    ("postgresql://postgres@{pg}/db?pass%77ord=Zq9Secr3t&x=1", "?password=***&x=1"),
    ("postgresql://postgres:Zq9Secr3t@{pg}/db?sslmode=bogus", "invalid sslmode value"),
    ("postgresql://postgres:Zq9Secr3t@{pg}/db?connect_timeout=abc", "connect_timeout"),
    ("postgresql://postgres:Zq9Secr3t@{pg}/db?port=abc", 'for connection option "port"'),
    ("POSTGRESQL://postgres:Zq9Secr3t@{pg}/sw_no_such_db", "postgres:***@"),
    ("postgresql://postgres:Zq9Secr3t@%2Fnonexistent/db", "no such file or directory"),
]


@pytest.mark.parametrize(("url", "needle"), BAD_URLS)
def test_bad_urls_against_the_real_servers(pg_server, mysql_server, run_cli, url, needle):
    """Each bad URL: exit 2, one line naming what is wrong, no traceback, no password."""
    hosts = {
        "pg": _host_port(pg_server.url, 5432),
        "my": _host_port(mysql_server.url, 3306),
    }
    result = run_cli("ls", "--dsn", url.format(**hosts))
    assert result.code == 2, result
    assert "Traceback" not in result.err
    assert "internal error" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert needle in lines[0], lines[0]
    for form in password_forms(SECRET):
        assert form not in result.err + result.out, form
    assert "Secr3t" not in result.err + result.out


def _host_port(url: str, default_port: int) -> str:
    from sessionward.core import parse_target

    target = parse_target(url)
    return f"{target.host or '127.0.0.1'}:{target.port or default_port}"


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
