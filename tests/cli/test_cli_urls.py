"""Server URLs against the real servers: passwords with URL characters, masking, no lookups.

A MariaDB login gets a password holding '@', '/', ':' and a non-ASCII letter:
percent-encoded it logs in; written raw it is refused before anything is
looked up in DNS.  PostgreSQL runs with trust authentication, so there the
password is not checked, only masked.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from urllib.parse import quote

import pytest

import sessionward
from sessionward.core import ConfigurationError, ConnectionFailed, parse_target
from tests.fix_servers import Server, unique
from tests.reaper._helpers import events, idle_in_transaction, prepare_table, reap_process
from tests.unit.test_properties_urls import password_forms

PASSWORD = "Zq9@x/y:ä"
#: The issue's example: the raw '/' in the password made libpq look up 'x' and
#: print 'ssZq9x@127.0.0.1'.
RAW_EXAMPLES = ("u:{pw}@{host}/db", "u:ssZq9x@x/y@{host}/db")

_lookups: list[str] = []
_watching = threading.Event()


def _record_lookups(event: str, args: tuple[object, ...]) -> None:
    if event == "socket.getaddrinfo" and _watching.is_set():
        _lookups.append(str(args[0]))


sys.addaudithook(_record_lookups)  # audit hooks cannot be removed; idle unless watching


@contextlib.contextmanager
def watched_lookups() -> Iterator[list[str]]:
    """The host names looked up (any thread) while the block runs."""
    _lookups.clear()
    _watching.set()
    try:
        yield _lookups
    finally:
        _watching.clear()


@pytest.fixture
def mysql_login(mysql: Server) -> Iterator[str]:
    """A MariaDB login whose password needs percent-encoding; dropped afterwards."""
    name = unique("swpw")
    mysql.execute(f"CREATE USER '{name}'@'%%' IDENTIFIED BY %s", (PASSWORD,))
    try:
        yield name
    finally:
        mysql.execute(f"DROP USER IF EXISTS '{name}'@'%'")


def _host_port(server: Server) -> str:
    target = parse_target(server.url)
    return f"{target.host or '127.0.0.1'}:{target.port or 3306}"


def assert_one_line_without_password(result, *needles: str, code: int = 2) -> str:
    assert result.code == code, result
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    for form in password_forms(PASSWORD):
        assert form not in result.err + result.out, form
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_the_lookup_watch_sees_lookups():
    # Without this, "no lookup happened" below could pass with a blind watch.
    with watched_lookups() as seen, pytest.raises(ConnectionFailed):
        sessionward.connect("mysql://u@sessionward-nonexistent.invalid:1/x")
    assert "sessionward-nonexistent.invalid" in seen


def test_an_encoded_password_with_url_characters_logs_in(mysql, mysql_login, run_cli):
    url = f"mysql://{mysql_login}:{quote(PASSWORD, safe='')}@{_host_port(mysql)}/"
    # Logged in (a wrong password is refused, below): the listing ran.
    with sessionward.connect(url) as control:
        assert control.snapshot().sessions is not None
    result = run_cli("ls", "--dsn", url, "--json")
    assert result.code == 0, result.err
    for form in password_forms(PASSWORD):
        assert form not in result.out + result.err


def test_a_wrong_password_is_refused_without_showing_it(mysql, mysql_login, run_cli):
    wrong = quote(PASSWORD + "-Kx7", safe="")
    result = run_cli("ls", "--dsn", f"mysql://{mysql_login}:{wrong}@{_host_port(mysql)}/")
    line = assert_one_line_without_password(result, "access denied", ":***@")
    assert "Kx7" not in line


@pytest.mark.parametrize("form", RAW_EXAMPLES)
def test_a_raw_password_is_refused_before_any_lookup(mysql, mysql_login, run_cli, form):
    dsn = "mysql://" + form.format(pw=PASSWORD, host=_host_port(mysql)).replace(
        "u:", f"{mysql_login}:", 1
    )
    with watched_lookups() as seen:
        result = run_cli("ls", "--dsn", dsn)
        with pytest.raises(ConfigurationError, match="percent-encode"):
            sessionward.connect(dsn)
    assert seen == []
    line = assert_one_line_without_password(result, "--dsn: ", "percent-encode")
    assert "ssZq9x" not in line
    assert "://" not in line.replace("postgresql://, mysql://", "")


def test_a_raw_password_on_postgresql_is_refused_before_any_lookup(pg, run_cli):
    host = _host_port(pg)
    with watched_lookups() as seen:
        result = run_cli("ls", "--dsn", f"postgresql://postgres:ssZq9x@x/y@{host}/postgres")
    assert seen == []
    line = assert_one_line_without_password(result, "--dsn: ", "'@' after its host part")
    assert "ssZq9x" not in line


def test_postgresql_masks_a_password_spelled_any_way(pg, run_cli):
    """Trust authentication ignores the password: it must still never be shown."""
    base = pg.url_for("postgres")
    secret = quote(PASSWORD, safe="")
    joiner = "&" if "?" in base else "?"
    # Accepted by libpq, so it logs in; listed sessions never show it.
    ok = run_cli("ls", "--dsn", f"{base}{joiner}pass%77ord={secret}", "--json")
    assert ok.code == 0, ok.err
    # Refused by libpq ('Password' is no option): the error masks it.
    bad = run_cli("ls", "--dsn", f"{base}{joiner}Password={secret}")
    assert_one_line_without_password(bad, "--dsn: ", "Password=***")
    # A connection error after the URL was accepted.
    down = run_cli(
        "ls", "--dsn", f"postgresql://postgres:{secret}@127.0.0.1:1/x?sslpassword={secret}"
    )
    assert_one_line_without_password(down, "cannot connect", ":***@", "sslpassword=***")
    for result in (ok, bad, down):
        assert PASSWORD not in result.out + result.err


def test_audit_table_target_column_masks_a_percent_encoded_password_key(
    pg, mysql, victims, tmp_path
):
    """The reaped server's URL is stored masked, however its password key is spelled."""
    database = pg.create_database()
    prepare_table(pg, database)
    user = pg.create_user()
    victim = victims(pg, database=database, user=user)
    idle_in_transaction(victim)
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'[[rule]]\nname = "all"\naction = "terminate"\nmatch = {{ database = "{database}" }}\n'
    )
    base = pg.url_for("postgres")
    reaped = Server(pg.name, pg.engine, f"{base}{'&' if '?' in base else '?'}pass%77ord=Secr3t")
    table = unique("sw_audit")
    log = tmp_path / "log"
    child = reap_process(reaped, policy, log, "--once", "--dry-run",
                         "--audit-dsn", mysql.url, "--audit-table", table)  # fmt: skip
    try:
        assert child.wait(timeout=60) == 0, events(log)
        rows = mysql.execute(f"SELECT type, target FROM {table}")
    finally:
        mysql.execute(f"DROP TABLE IF EXISTS {table}")
    targets = {target for kind, target in rows if kind == "decision"}
    assert targets == {parse_target(reaped.url).redacted()}
    (target,) = targets
    assert "password=***" in target
    assert "Secr3t" not in target
    assert "Secr3t" not in log.read_text()


def test_lookup_is_not_attempted_for_a_host_that_cannot_be_one(run_cli):
    with watched_lookups() as seen:
        result = run_cli("ls", "--dsn", "postgresql://u:Zq9@a..b/db")
    assert seen == []
    assert result.code == 2
    assert "--dsn: " in result.err


def test_resolver_errors_never_reach_the_terminal_as_tracebacks(run_cli):
    # An IDNA-invalid name used to end in "internal error: UnicodeError".
    result = run_cli("ls", "--dsn", f"mysql://u@{'a' * 64}.example/x")
    assert result.code == 2
    assert "not a valid host name" in result.err
