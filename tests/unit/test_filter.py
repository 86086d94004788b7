import datetime as dt
import ipaddress
import re

import pytest

from sessionward.core import (
    ACTIVE,
    BACKGROUND,
    IDLE,
    IDLE_IN_TRANSACTION,
    IDLE_IN_TRANSACTION_ABORTED,
    REPLICATION,
    ConfigurationError,
    ServerInfo,
    Session,
    SessionFilter,
    Snapshot,
    compile_query_regex,
    parse_client,
    parse_state,
)

SERVER = ServerInfo(engine="postgresql", version="16.2", version_num=160002, own_pid=1)

# One snapshot, every session built for a purpose; pids say which.
SESSIONS = (
    Session(
        pid=101,
        database="shop",
        user="app",
        application="web-1",
        client_addr="10.0.0.7",
        client_port=50001,
        state=ACTIVE,
        query="SELECT * FROM orders",
        query_age_seconds=120.0,
        state_age_seconds=120.0,
        xact_age_seconds=120.0,
    ),
    Session(
        pid=102,
        database="shop_archive",
        user="report",
        application="metabase",
        client_addr="10.1.2.3",
        state=IDLE,
        query="SELECT count(*) FROM Orders",
        # An idle session's last statement ran long ago: not running now.
        query_age_seconds=900.0,
        state_age_seconds=900.0,
    ),
    Session(
        pid=103,
        database="billing",
        user="app",
        application="web-2",
        client_addr="192.168.1.20",
        state=IDLE_IN_TRANSACTION,
        query="UPDATE invoices SET paid = true",
        state_age_seconds=30.0,
        xact_age_seconds=400.0,
        query_age_seconds=30.0,
    ),
    Session(
        pid=104,
        database="billing",
        user="batch",
        application=None,
        client_addr=None,
        state=ACTIVE,
        query="UPDATE invoices SET total = 0",
        blocked_by=(103,),
        query_age_seconds=5.0,
        state_age_seconds=5.0,
        xact_age_seconds=5.0,
        wait="Lock:transactionid",
    ),
    Session(
        pid=105,
        database="shop",
        user="admin",
        application="psql",
        client_addr="2001:db8::15",
        client_port=40000,
        state=IDLE_IN_TRANSACTION_ABORTED,
        query="select 1/0",
        state_age_seconds=3000.0,
        xact_age_seconds=3000.0,
    ),
    Session(
        pid=106,
        database="shop",
        user="app",
        application="web-1",
        client_addr="::ffff:10.0.0.9",
        state=ACTIVE,
        query="vacuum orders",
        query_age_seconds=0.5,
        state_age_seconds=0.5,
    ),
    Session(pid=201, backend_kind=BACKGROUND, backend_type="autovacuum launcher"),
    Session(
        pid=202,
        backend_kind=REPLICATION,
        backend_type="walsender",
        user="replicator",
        client_addr="10.0.0.50",
        state=ACTIVE,
    ),
)
CLIENTS = {101, 102, 103, 104, 105, 106}
SNAPSHOT = Snapshot(
    server=SERVER,
    taken_at=dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc),
    sessions=SESSIONS,
)


def pids(session_filter):
    return {s.pid for s in session_filter.select(SNAPSHOT)}


def test_empty_filter_selects_every_client_session():
    assert SessionFilter().is_empty()
    assert pids(SessionFilter()) == CLIENTS


def test_include_background_adds_background_and_replication():
    f = SessionFilter(include_background=True)
    assert f.is_empty()
    assert pids(f) == CLIENTS | {201, 202}


@pytest.mark.parametrize(
    ("databases", "expected"),
    [
        (("shop",), {101, 105, 106}),
        (("shop*",), {101, 102, 105, 106}),
        (("*_archive",), {102}),
        (("billing", "shop_archive"), {102, 103, 104}),
        (("Shop",), set()),
        (("nope",), set()),
    ],
)
def test_databases(databases, expected):
    assert pids(SessionFilter(databases=databases)) == expected


@pytest.mark.parametrize(
    ("users", "expected"),
    [
        (("app",), {101, 103, 106}),
        (("app", "batch"), {101, 103, 104, 106}),
        (("re*",), {102}),
        # Background processes stay out unless asked for, whatever the user.
        (("replicator",), set()),
    ],
)
def test_users(users, expected):
    assert pids(SessionFilter(users=users)) == expected


def test_users_with_background():
    assert pids(SessionFilter(users=("replicator",), include_background=True)) == {202}


@pytest.mark.parametrize(
    ("applications", "expected"),
    [
        (("web-1",), {101, 106}),
        (("web-*",), {101, 103, 106}),
        # '*' matches any application name, but not a missing one.
        (("*",), {101, 102, 103, 105, 106}),
        (("psql", "metabase"), {102, 105}),
    ],
)
def test_applications(applications, expected):
    assert pids(SessionFilter(applications=applications)) == expected


@pytest.mark.parametrize(
    ("clients", "expected"),
    [
        (("10.0.0.0/8",), {101, 102, 106}),
        (("10.0.0.0/24",), {101, 106}),
        (("10.0.0.7",), {101}),
        (("192.168.1.20/32",), {103}),
        (("2001:db8::/32",), {105}),
        (("2001:db8::15",), {105}),
        (("local",), {104}),
        (("LOCAL",), {104}),
        (("local", "192.168.0.0/16"), {103, 104}),
        (("172.16.0.0/12",), set()),
        # A dual-stack listener shows IPv4 clients as ::ffff:a.b.c.d.
        (("10.0.0.9",), {106}),
        (("::ffff:10.0.0.0/104",), {106}),
    ],
)
def test_clients(clients, expected):
    f = SessionFilter(clients=tuple(parse_client(c) for c in clients))
    assert pids(f) == expected


def test_client_with_an_unparsable_address_never_matches():
    odd = SNAPSHOT.with_sessions((Session(pid=7, client_addr="not-an-ip"),))
    assert SessionFilter(clients=(parse_client("0.0.0.0/0"),)).select(odd) == ()


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (("active",), {101, 104, 106}),
        (("idle",), {102}),
        (("idle-in-transaction",), {103}),
        (("idle_in_transaction_aborted",), {105}),
        (("idle in transaction (aborted)",), {105}),
        (("idle", "IDLE-IN-TRANSACTION"), {102, 103}),
    ],
)
def test_states(states, expected):
    assert pids(SessionFilter(states=tuple(parse_state(s) for s in states))) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("orders", {101, 102, 106}),
        ("^update", {103, 104}),
        ("SELECT .* FROM orders", {101, 102}),
        ("invoices set (paid|total)", {103, 104}),
        (r"1/0", {105}),
        ("nothing matches this", set()),
    ],
)
def test_query_regex_is_case_insensitive(pattern, expected):
    assert pids(SessionFilter(query=compile_query_regex(pattern))) == expected


def test_query_regex_spans_lines():
    multi = SNAPSHOT.with_sessions((Session(pid=7, query="SELECT a\nFROM t"),))
    assert len(SessionFilter(query=compile_query_regex("select.*from")).select(multi)) == 1


def test_query_regex_skips_sessions_without_query():
    assert pids(SessionFilter(query=compile_query_regex(".*"))) == CLIENTS
    bare = SNAPSHOT.with_sessions((Session(pid=7),))
    assert SessionFilter(query=compile_query_regex(".*")).select(bare) == ()


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.0, {102, 103, 105}),
        (29.0, {102, 103, 105}),
        # Strictly longer than the threshold.
        (30.0, {102, 105}),
        (1000.0, {105}),
        (5000.0, set()),
    ],
)
def test_idle_over_counts_only_idle_states(threshold, expected):
    # 101 and 106 are active with a state age; they never count as idle.
    assert pids(SessionFilter(idle_over_seconds=threshold)) == expected


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.0, {101, 103, 104, 105}),
        (100.0, {101, 103, 105}),
        (400.0, {105}),
        (3000.0, set()),
    ],
)
def test_xact_over(threshold, expected):
    assert pids(SessionFilter(xact_over_seconds=threshold)) == expected


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.0, {101, 104, 106}),
        (1.0, {101, 104}),
        (60.0, {101}),
        # 102 ran its last statement 900 s ago but is idle: not a long query.
        (500.0, set()),
    ],
)
def test_query_over_counts_only_active_sessions(threshold, expected):
    assert pids(SessionFilter(query_over_seconds=threshold)) == expected


def test_blocking_and_blocked():
    assert pids(SessionFilter(blocking=True)) == {103}
    assert pids(SessionFilter(blocked=True)) == {104}
    assert pids(SessionFilter(blocking=True, blocked=True)) == set()


def test_fields_combine_with_and_values_with_or():
    f = SessionFilter(
        databases=("shop", "billing"),
        users=("app", "batch"),
        states=(ACTIVE,),
    )
    assert pids(f) == {101, 104, 106}
    assert pids(f.evolve(clients=(parse_client("local"),))) == {104}
    assert pids(f.evolve(clients=(parse_client("local"), parse_client("10.0.0.7")))) == {101, 104}
    assert pids(f.evolve(query_over_seconds=60.0)) == {101}
    assert pids(f.evolve(applications=("psql",))) == set()


def test_evolve_returns_a_new_filter():
    f = SessionFilter()
    g = f.evolve(users=("app",))
    assert f.users == ()
    assert g.users == ("app",)
    assert not g.is_empty()


@pytest.mark.parametrize(
    "changes",
    [
        {"databases": ("shop",)},
        {"users": ("app",)},
        {"applications": ("*",)},
        {"clients": (parse_client("local"),)},
        {"states": (IDLE,)},
        {"query": compile_query_regex("x")},
        {"idle_over_seconds": 0.0},
        {"xact_over_seconds": 1.0},
        {"query_over_seconds": 1.0},
        {"blocking": True},
        {"blocked": True},
    ],
)
def test_is_empty_false_for_every_field(changes):
    assert not SessionFilter(**changes).is_empty()
    assert not SessionFilter(include_background=True, **changes).is_empty()


def test_filters_are_frozen():
    with pytest.raises(AttributeError):
        SessionFilter().users = ("x",)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.0/8", ipaddress.ip_network("10.0.0.0/8")),
        ("10.1.2.3/8", ipaddress.ip_network("10.0.0.0/8")),
        ("127.0.0.1", ipaddress.ip_network("127.0.0.1/32")),
        (" ::1 ", ipaddress.ip_network("::1/128")),
        ("2001:db8::/32", ipaddress.ip_network("2001:db8::/32")),
        ("local", "local"),
        (" Local ", "local"),
    ],
)
def test_parse_client(text, expected):
    assert parse_client(text) == expected


@pytest.mark.parametrize(
    "text", ["", "localhost", "10.0.0.256", "10.0.0.0/33", "db.example.com", "::g"]
)
def test_parse_client_rejects(text):
    with pytest.raises(ConfigurationError, match="not a client address"):
        parse_client(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("active", ACTIVE),
        (" IDLE ", IDLE),
        ("idle-in-transaction", IDLE_IN_TRANSACTION),
        ("idle_in_transaction", IDLE_IN_TRANSACTION),
        ("idle in transaction", IDLE_IN_TRANSACTION),
        ("idle-in-transaction-aborted", IDLE_IN_TRANSACTION_ABORTED),
        ("idle in transaction (aborted)", IDLE_IN_TRANSACTION_ABORTED),
        ("fastpath-function-call", "fastpath function call"),
        ("disabled", "disabled"),
    ],
)
def test_parse_state(text, expected):
    assert parse_state(text) == expected


@pytest.mark.parametrize("text", ["", "running", "idle in", "waiting"])
def test_parse_state_rejects(text):
    with pytest.raises(ConfigurationError, match="unknown state"):
        parse_state(text)


def test_compile_query_regex():
    pattern = compile_query_regex("^select")
    assert pattern.flags & re.IGNORECASE
    assert pattern.search("SELECT 1")


@pytest.mark.parametrize("pattern", ["(", "[a-", "*x", "(?P<x"])
def test_compile_query_regex_rejects(pattern):
    with pytest.raises(ConfigurationError, match="bad --query regex"):
        compile_query_regex(pattern)


# Filters are Python ``re`` patterns matched by sessionward, not by the server: another
# dialect's syntax must be refused, not silently read with Python's meaning (#14).
@pytest.mark.parametrize(
    ("pattern", "suggestion"),
    [
        ("[[:alpha:]]", r"[^\W\d_]"),
        ("^[[:digit:]]+$", r"\d"),
        ("[[:space:][:punct:]]", r"\s"),
        ("[:upper:]", "[A-Z]"),
        ("x[[:xdigit:]]{8}", "[0-9a-f]"),
    ],
)
def test_posix_classes_are_refused_with_the_python_spelling(pattern, suggestion):
    with pytest.raises(ConfigurationError, match="is a POSIX class") as raised:
        compile_query_regex(pattern)
    assert f"write {suggestion} instead" in str(raised.value)


def test_an_escaped_bracket_is_not_a_posix_class():
    assert compile_query_regex(r"\[:alpha:]").search("[:alpha:]")


@pytest.mark.parametrize("pattern", ["[[a]", "[a&&b]", "[a||b]", "[a~~b]", "x[[]"])
def test_patterns_re_warns_about_are_refused_every_time(pattern):
    # Twice: re caches what it compiled and warns only the first time.
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="bad --query regex") as raised:
            compile_query_regex(pattern)
        assert "escape a literal [" in str(raised.value)


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("(" * 100_000 + ")" * 100_000, "nested too deeply"),
        ("a{99999999999}", "repetition number is too large"),
        ("x(?i)", "global flags"),
        ("\\", "bad escape"),
    ],
)
def test_bad_regexes_are_one_line(pattern, words):
    with pytest.raises(ConfigurationError, match=words) as raised:
        compile_query_regex(pattern)
    message = str(raised.value)
    assert "\n" not in message
    assert len(message) < 200


def test_the_option_is_named():
    with pytest.raises(ConfigurationError, match="bad query regex"):
        compile_query_regex("(", option="query")
