"""Properties of URL parsing: exact parts or one refusal, and never a password shown.

Deterministic (``derandomize``): the same examples run everywhere, so CI does
not flake; a failure prints the example, which reproduces it.
"""

from __future__ import annotations

from urllib.parse import quote, quote_plus, unquote

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sessionward.core import ConfigurationError, Target, parse_target, redact_url

SETTINGS = settings(
    derandomize=True,
    database=None,
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: Characters that mean something in a URL, and some that mean something elsewhere.
SPECIAL = "@/:#?%&=+;[]\\ \t'\"$~!,*"
password_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(SPECIAL),
        # NUL is refused by design (no server takes it), tested on its own.
        st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"),
    ),
    min_size=1,
    max_size=16,
)
#: A marker around the random part makes "the password is not in the output"
#: mean something: a one-letter password would be in every message.
passwords = password_text.map(lambda middle: f"Zq{middle}9x")
users = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-é@:/", min_size=1, max_size=8)
hosts = st.sampled_from(["db", "127.0.0.1", "db.example.com", "h1,h2", "%2Ftmp", "[::1]", ""])
ports = st.one_of(st.none(), st.integers(min_value=1, max_value=65535))
databases = st.one_of(
    st.none(), st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=8)
)
schemes = st.sampled_from(["postgresql", "postgres", "POSTGRESQL+psycopg", "mysql", "MariaDB"])
#: Each is a password to libpq or a MySQL driver, or would be to a lenient reader.
secret_keys = st.sampled_from(
    ["password", "pass%77ord", "%70assword", "PASSWORD", "sslpassword", "passwd", "Passwd"]
)


def password_forms(password: str) -> tuple[str, ...]:
    """A password as a message might show it: raw, percent-encoded, escaped."""
    return (
        password,
        quote(password, safe=""),
        quote(password),
        quote_plus(password),
        repr(password)[1:-1],
        password.encode("unicode_escape").decode("ascii"),
    )


def _parsed(url: str) -> tuple[Target | None, str]:
    """The target, or the one-line refusal."""
    try:
        return parse_target(url), ""
    except ConfigurationError as error:
        return None, str(error)


def build(scheme, user, password_as_written, host, port, database, query=""):
    port_text = "" if port is None else f":{port}"
    path = "" if database is None else "/" + quote(database, safe="")
    user_text = quote(user, safe="")
    return f"{scheme}://{user_text}:{password_as_written}@{host}{port_text}{path}{query}"


def assert_hidden(text: str, password: str) -> None:
    for form in password_forms(password):
        assert form not in text, (form, text)


@SETTINGS
@given(schemes, users, passwords, hosts, ports, databases)
@example("postgresql", "u", "Zqx@x/y9x", "127.0.0.1", None, "db")
@example("mysql", "root", "Zq@/:#?%9x", "db", 3306, "test")
def test_an_encoded_password_parses_exactly(scheme, user, password, host, port, database):
    url = build(scheme, user, quote(password, safe=""), host, port, database)
    target = parse_target(url)
    expected_host = {"%2Ftmp": "/tmp", "[::1]": "::1", "": None}.get(host, host)
    assert (target.user, target.password, target.host, target.port, target.database) == (
        user,
        password,
        expected_host,
        port,
        database or None,
    )
    for shown in (target.redacted(), repr(target), str(target)):
        assert_hidden(shown, password)
    # What is printed parses back to the same parts, the password aside.
    again = parse_target(target.redacted())
    assert (again.user, again.host, again.port, again.database) == (
        target.user,
        target.host,
        target.port,
        target.database,
    )
    # And what drivers are given is the same URL, password included.
    assert parse_target(target.to_url()).password == password


@SETTINGS
@given(schemes, users.filter(lambda u: not set(u) & set("@:/")), passwords, hosts, ports)
@example("postgresql", "u", "ZqssZq9x@x/y9x", "127.0.0.1", None)
@example("postgresql", "u", "Zq a9x", "db", None)
@example("mysql", "u", "Zq%FF9x", "db", None)
@example("mysql", "u", "Zq%zz9x", "db", None)
@example("mysql", "u", "Zq:a%41&=ä9x", "db", 3306)
def test_a_raw_password_parses_exactly_or_is_refused_unseen(scheme, user, password, host, port):
    """Written as is: either the parts come out exact, or one line that shows none of it."""
    url = build(scheme, user, password, host, port, "db")
    target, message = _parsed(url)
    if target is None:
        assert "\n" not in message
        assert "://" not in message.replace("postgresql://, mysql://", "")
        assert_hidden(message, password)
        return
    expected_host = {"%2Ftmp": "/tmp", "[::1]": "::1", "": None}.get(host, host)
    assert (target.user, target.host, target.port, target.database) == (
        user,
        expected_host,
        port,
        "db",
    )
    assert target.password == unquote(password)
    assert_hidden(target.redacted(), target.password or "")
    assert_hidden(target.redacted(), password)


@SETTINGS
@given(schemes, passwords, secret_keys)
def test_a_password_in_the_query_is_hidden_under_any_spelling(scheme, password, key):
    url = f"{scheme}://app@db/shop?sslmode=require&{key}={quote(password, safe='')}&x=1"
    target = parse_target(url)
    assert dict(target.params)[unquote(key)] == password
    for shown in (target.redacted(), repr(target), redact_url(url)):
        assert_hidden(shown, password)


@SETTINGS
@given(passwords, st.text(max_size=30), st.text(max_size=30))
def test_scrub_hides_every_form_in_driver_text(password, before, after):
    target = parse_target(f"postgresql://app:{quote(password, safe='')}@db/shop")
    for form in password_forms(password):
        scrubbed = target.scrub(f"{before}{form}{after}")
        assert_hidden(scrubbed, password)


@SETTINGS
@given(st.text(max_size=60))
@example("postgresql://u:p@ss@h/db")
@example("pOsTgReS://[")
@example("mysql://:@:/?=&")
def test_any_text_parses_or_is_refused_in_one_line(text):
    target, message = _parsed(text)
    if target is None:
        assert "\n" not in message
        return
    # A parsed URL survives its own redacted form.
    parse_target(target.redacted())


def test_password_forms_are_distinct_enough():
    # The helper itself: the forms the CLI tests look for.
    assert set(password_forms("a/b c")) >= {"a/b c", "a%2Fb%20c", "a/b%20c", quote_plus("a/b c")}
