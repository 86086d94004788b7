"""The reaper's policy language and decision engine, with no server."""

import datetime as dt

import pytest

from sessionward.core import (
    ACTIVE,
    BACKGROUND,
    IDLE,
    IDLE_IN_TRANSACTION,
    REPLICATION,
    ConfigurationError,
    History,
    Match,
    Policy,
    PolicyAction,
    Rule,
    ServerInfo,
    Session,
    Snapshot,
    Verdict,
    decide,
    parse_policy,
)

OWN = 1
SERVER = ServerInfo(engine="postgresql", version="16.2", version_num=160002, own_pid=OWN)


def snap(*sessions):
    return Snapshot(
        server=SERVER, taken_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), sessions=sessions
    )


def s(pid, **kw):
    kw.setdefault("user", "app")
    kw.setdefault("database", "shop")
    kw.setdefault("state", IDLE)
    return Session(pid=pid, **kw)


def policy(rule_body, top=""):
    return parse_policy(f'{top}\n[[rule]]\nname = "r"\n{rule_body}\n')


def chosen(pol, snapshot, now=100.0):
    return [
        (d.session.pid, d.action, d.verdict.value) for d in decide(pol, snapshot, now=now).decisions
    ]


# ------------------------------------------------------------------ match fields

FIELD_CASES = [
    ('database = "shop"', s(10), s(11, database="other")),
    ('database = ["x", "sh*"]', s(10), s(11, database="other")),
    ('user = "app"', s(10), s(11, user="bob")),
    ('application = "billing-*"', s(10, application="billing-1"), s(11, application="web")),
    ('client = "10.0.0.0/8"', s(10, client_addr="10.1.2.3"), s(11, client_addr="192.168.1.1")),
    ('client = "local"', s(10), s(11, client_addr="127.0.0.1")),
    ('state = "idle-in-transaction"', s(10, state=IDLE_IN_TRANSACTION), s(11, state=IDLE)),
    ('backend_type = "client backend"', s(10), s(11, backend_type="weird")),
    ('query = "^select"', s(10, query="SELECT 1"), s(11, query="UPDATE t")),
    ('idle_over = "5s"', s(10, state_age_seconds=5.001), s(11, state_age_seconds=5.0)),
    (
        'idle_in_transaction_over = "5s"',
        s(10, state=IDLE_IN_TRANSACTION, state_age_seconds=6),
        s(11, state=IDLE, state_age_seconds=60),
    ),
    ('xact_over = "1m"', s(10, xact_age_seconds=61), s(11, xact_age_seconds=None)),
    (
        'query_over = "2m"',
        s(10, state=ACTIVE, query_age_seconds=121),
        s(11, state=IDLE, query_age_seconds=500),
    ),
    ('wait_over = "3s"', s(10, wait_age_seconds=3.5), s(11, wait_age_seconds=2)),
    ("xmin_age_over = 1000", s(10, xmin_age=1001), s(11, xmin_age=1000)),
]


@pytest.mark.parametrize(("match", "hit", "miss"), FIELD_CASES, ids=[c[0] for c in FIELD_CASES])
def test_each_match_field(match, hit, miss):
    pol = policy(f'action = "report"\n[rule.match]\n{match}')
    assert chosen(pol, snap(hit, miss)) == [(10, "report", "report")]


def test_blocking_at_least_counts_the_whole_chain():
    pol = policy('action = "terminate"\nmatch = { blocking_at_least = 2 }')
    sessions = (
        s(10),
        s(11, blocked_by=(10,)),
        s(12, blocked_by=(11,)),
        s(20),
        s(21, blocked_by=(20,)),
    )
    assert chosen(pol, snap(*sessions)) == [(10, "terminate", "act")]


def test_fields_and_together():
    pol = policy('action = "report"\nmatch = { user = "app", idle_over = 5 }')
    sessions = (
        s(10, state_age_seconds=9),
        s(11, user="x", state_age_seconds=9),
        s(12, state_age_seconds=1),
    )
    assert [p for p, *_ in chosen(pol, snap(*sessions))] == [10]


def test_exclude_uses_the_same_fields_any_entry_excludes():
    pol = policy(
        'action = "terminate"\nmatch = { idle_over = 1 }\n'
        '[[rule.exclude]]\napplication = "backup"\n'
        '[[rule.exclude]]\nuser = "etl"\ndatabase = "dw"\n'
    )
    sessions = (
        s(10, state_age_seconds=5),
        s(11, state_age_seconds=5, application="backup"),
        s(12, state_age_seconds=5, user="etl", database="dw"),
        s(13, state_age_seconds=5, user="etl", database="shop"),
    )
    assert [p for p, *_ in chosen(pol, snap(*sessions))] == [10, 13]


def test_protect_wins_and_always_protected_sessions():
    pol = policy(
        'action = "terminate"',
        top='[protect]\nusers = ["dba"]\napplications = ["pg_dump"]\ndatabases = ["vault"]\n'
        'clients = ["10.9.0.0/16"]',
    )
    sessions = (
        s(OWN),
        s(10),
        s(11, user="dba"),
        s(12, application="pg_dump"),
        s(13, database="vault"),
        s(14, client_addr="10.9.1.1"),
        s(15, backend_kind=BACKGROUND, backend_type="autovacuum worker"),
        s(16, backend_kind=REPLICATION, backend_type="walsender"),
        s(17, is_superuser=True),
    )
    sweep = decide(pol, snap(*sessions), now=0)
    assert [d.session.pid for d in sweep.decisions] == [10]
    assert {p.pid for _, p, _ in sweep.protected} == {OWN, 11, 12, 13, 14, 15, 16, 17}


def test_include_superusers_is_per_rule():
    pol = policy('action = "terminate"\ninclude_superusers = true')
    assert [p for p, *_ in chosen(pol, snap(s(17, is_superuser=True)))] == [17]


def test_first_rule_wins_a_session():
    pol = parse_policy(
        '[[rule]]\nname = "a"\naction = "cancel"\nmatch = { state = "active" }\n'
        '[[rule]]\nname = "b"\naction = "terminate"\n'
    )
    sweep = decide(pol, snap(s(10, state=ACTIVE), s(11)), now=0)
    assert [(d.rule, d.session.pid, d.action) for d in sweep.decisions] == [
        ("a", 10, "cancel"),
        ("b", 11, "terminate"),
    ]


def test_cancel_skips_idle_sessions():
    pol = policy('action = "cancel"')
    assert [p for p, *_ in chosen(pol, snap(s(10), s(11, state=ACTIVE)))] == [11]


# ------------------------------------------------------------------ victims


def test_victims_oldest_and_newest():
    sessions = (s(10, xact_age_seconds=5), s(11, xact_age_seconds=50), s(12, xact_age_seconds=9))
    assert [
        p for p, *_ in chosen(policy('action = "terminate"\nvictims = "oldest"'), snap(*sessions))
    ] == [11]
    assert [
        p for p, *_ in chosen(policy('action = "terminate"\nvictims = "newest"'), snap(*sessions))
    ] == [10]


def test_victims_root_blockers_protect_still_wins():
    sessions = (
        s(10, state=IDLE_IN_TRANSACTION),
        s(11, state=ACTIVE, blocked_by=(10,), wait_age_seconds=40),
        s(12, state=ACTIVE, blocked_by=(11,), wait_age_seconds=40),
        s(20, user="dba", state=IDLE_IN_TRANSACTION),
        s(21, state=ACTIVE, blocked_by=(20,), wait_age_seconds=40),
    )
    pol = policy(
        'action = "terminate"\nvictims = "root_blockers"\nmatch = { wait_over = "30s" }',
        top='[protect]\nusers = ["dba"]',
    )
    sweep = decide(pol, snap(*sessions), now=0)
    assert [d.session.pid for d in sweep.decisions] == [10]
    assert "root blocker of matching 11, 12" in sweep.decisions[0].why
    assert [p.pid for _, p, _ in sweep.protected] == [20]


# ------------------------------------------------------------------ actions, grace, limits


def test_cancel_then_terminate_escalates_after_grace():
    pol = policy('action = "cancel_then_terminate"\ngrace = "5s"\nmatch = { query_over = 10 }')
    victim = s(10, state=ACTIVE, query_age_seconds=11, started_at="t0")
    first = decide(pol, snap(victim), now=100)
    assert [(d.action, d.verdict) for d in first.decisions] == [("cancel", Verdict.ACT)]
    history = History().record(first.decisions, 100)
    waiting = decide(pol, snap(victim), now=102, history=history)
    assert [d.verdict for d in waiting.decisions] == [Verdict.IN_GRACE]
    assert waiting.next_check_seconds == pytest.approx(3.0)
    late = decide(pol, snap(victim), now=105, history=history)
    assert [(d.action, d.verdict) for d in late.decisions] == [("terminate", Verdict.ACT)]


def test_cancel_then_terminate_terminates_idle_at_once():
    pol = policy('action = "cancel_then_terminate"\nmatch = { idle_over = 1 }')
    assert chosen(pol, snap(s(10, state_age_seconds=2))) == [(10, "terminate", "act")]


def test_limits_per_rule_and_overall_per_sweep_and_minute():
    sessions = tuple(s(10 + i) for i in range(6))
    pol = policy('action = "terminate"\n[rule.limits]\nmax_per_sweep = 2')
    verdicts = [v for *_, v in chosen(pol, snap(*sessions))]
    assert verdicts == ["act", "act", "limited", "limited", "limited", "limited"]

    pol = policy('action = "terminate"', top="[limits]\nmax_per_minute = 3")
    history = History(endings=((90.0, "r"), (30.0, "r")))  # one is older than a minute
    sweep = decide(pol, snap(*sessions), now=100.0, history=history)
    assert [d.verdict.value for d in sweep.decisions].count("act") == 2
    assert sweep.next_check_seconds == pytest.approx(50.0)
    assert "overall max_per_minute = 3 reached" in sweep.decisions[-1].why


def test_sessions_still_exiting_are_not_chosen_again():
    pol = policy('action = "terminate"\nvictims = "root_blockers"\nmatch = { wait_over = 1 }')
    root = s(10, started_at="t0")
    waiter = s(11, state=ACTIVE, blocked_by=(10,), wait_age_seconds=2)
    assert chosen(pol, snap(root, waiter)) == [(10, "terminate", "act")]
    history = History().exiting([(10, "t0")])
    assert decide(pol, snap(root, waiter), now=100.0, history=history).decisions == ()
    # The same pid with another start time is another session.
    history = History().exiting([(10, "t1")])
    assert len(decide(pol, snap(root, waiter), now=100.0, history=history).decisions) == 1


def test_report_counts_against_no_limit():
    pol = policy('action = "report"\nlimits = { max_per_sweep = 1 }')
    assert [v for *_, v in chosen(pol, snap(s(10), s(11)))] == ["report", "report"]


# ------------------------------------------------------------------ deadlines


def test_deadline_of_a_known_session_and_of_unseen_ones():
    pol = policy('action = "terminate"\nmatch = { idle_in_transaction_over = "2s", user = "app" }')
    near = s(10, state=IDLE_IN_TRANSACTION, state_age_seconds=1.5)
    other = s(11, user="bob", state=IDLE_IN_TRANSACTION, state_age_seconds=1.9)
    sweep = decide(pol, snap(near, other), now=0)
    assert sweep.decisions == ()
    assert sweep.next_check_seconds == pytest.approx(0.501)
    # Nobody near: a session not yet idle in a transaction could cross 2 s from now.
    assert decide(pol, snap(other), now=0).next_check_seconds == pytest.approx(2.001)


def test_crossings_name_each_known_session_and_the_rest_needs_a_whole_look():
    pol = policy('action = "terminate"\nmatch = { idle_in_transaction_over = "2s" }')
    sessions = (
        s(10, state=IDLE_IN_TRANSACTION, state_age_seconds=1.5, started_at="t0"),
        s(11, state=IDLE_IN_TRANSACTION, state_age_seconds=0.5, started_at="t1"),
        s(12, state=IDLE_IN_TRANSACTION, state_age_seconds=2.5, started_at="t2"),
    )
    sweep = decide(pol, snap(*sessions), now=0)
    assert [d.session.pid for d in sweep.decisions] == [12]
    assert [(pid, at, pytest.approx(due)) for pid, at, due in sweep.crossings] == [
        (10, "t0", 0.501), (11, "t1", 1.501)]  # fmt: skip
    assert sweep.next_full_seconds == pytest.approx(2.001)
    assert sweep.next_check_seconds == pytest.approx(0.501)


def test_a_partial_snapshot_keeps_grace_timers_of_sessions_it_does_not_list():
    pol = policy('action = "cancel_then_terminate"\ngrace = "5s"\nmatch = { query_over = 10 }')
    victim = s(10, state=ACTIVE, query_age_seconds=11, started_at="t0")
    history = History().record(decide(pol, snap(victim), now=100).decisions, 100)
    partial = Snapshot(server=SERVER, taken_at=snap().taken_at, sessions=(), partial=True)
    kept = decide(pol, partial, now=101, history=history)
    late = decide(pol, snap(victim), now=106, history=history)
    assert kept.decisions == ()
    assert [(d.action, d.verdict) for d in late.decisions] == [("terminate", Verdict.ACT)]
    whole = Snapshot(server=SERVER, taken_at=snap().taken_at, sessions=())
    assert decide(pol, whole, now=101, history=history).decisions == ()


@pytest.mark.parametrize(
    ("bodies", "only"),
    [
        (["match = { idle_in_transaction_over = 1 }"], True),
        (
            ['match = { xact_over = 1, user = "app" }', "match = { idle_in_transaction_over = 2 }"],
            True,
        ),
        (["match = { xact_over = 1 }", "match = { query_over = 2 }"], False),
        (["match = { idle_over = 1 }"], False),
        (['match = { user = "app" }'], False),
        (['victims = "root_blockers"\nmatch = { xact_over = 1 }'], False),
        (["match = { xact_over = 1, blocking_at_least = 2 }"], False),
    ],
)
def test_which_policies_need_only_sessions_in_a_transaction(bodies, only):
    text = "".join(
        f'[[rule]]\nname = "r{i}"\naction = "terminate"\n{b}\n' for i, b in enumerate(bodies)
    )
    assert parse_policy(text).needs_only_transactions() is only


@pytest.mark.parametrize(
    ("body", "top", "alone"),
    [
        ('action = "terminate"\nmatch = { idle_over = 1 }', "", True),
        ('action = "terminate"\nvictims = "oldest"', "", False),
        ('action = "terminate"\nvictims = "root_blockers"', "", False),
        ('action = "terminate"\nmatch = { blocking_at_least = 2 }', "", False),
        ('action = "terminate"\nexclude = [{ blocking_at_least = 2 }]', "", False),
        ('action = "terminate"\nlimits = { max_per_sweep = 3 }', "", False),
        ('action = "terminate"\nlimits = { max_per_minute = 3 }', "", True),
        ('action = "terminate"', "[limits]\nmax_per_sweep = 3", False),
    ],
)
def test_which_policies_judge_sessions_alone(body, top, alone):
    assert policy(body, top=top).judges_sessions_alone() is alone


def test_deadline_of_an_and_is_the_latest_crossing():
    pol = policy('action = "terminate"\nmatch = { idle_over = "10s", xact_over = "20s" }')
    victim = s(10, state=IDLE_IN_TRANSACTION, state_age_seconds=8, xact_age_seconds=12)
    assert decide(pol, snap(victim), now=0).next_check_seconds == pytest.approx(8.001)


def test_no_time_threshold_no_deadline():
    pol = policy('action = "terminate"\nmatch = { blocking_at_least = 3 }')
    assert decide(pol, snap(s(10)), now=0).next_check_seconds is None


# ------------------------------------------------------------------ TOML errors


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('[[rule]]\nname = "a"\naction = "nuke"\n', 3, "action must be one of"),
        ('[[rule]]\nname = "a"\naction = "cancel"\nvictims = "some"\n', 4, "victims"),
        (
            '[[rule]]\nname = "a"\naction = "report"\n\n[rule.match]\nidle_over = "soon"\n',
            6,
            "not a duration",
        ),
        (
            '[[rule]]\nname = "a"\naction = "report"\nmatch = { colour = "red" }\n',
            4,
            "unknown key 'colour'",
        ),
        (
            '[[rule]]\nname = "a"\naction = "report"\n[rule.match]\nclient = "nowhere"\n',
            5,
            "client",
        ),
        ('[[rule]]\nname = "a"\naction = "report"\n[rule.match]\nquery = "("\n', 5, "regex"),
        (
            '[[rule]]\nname = "a"\naction = "report"\n[rule.match]\nstate = "sleepy"\n',
            5,
            "unknown state",
        ),
        (
            '[[rule]]\nname = "a"\naction = "report"\n[[rule]]\nname = "a"\naction = "report"\n',
            5,
            "used twice",
        ),
        ('[[rule]]\nname = "a"\naction = "report"\ngrace = "5s"\n', 4, "grace applies only"),
        (
            '[[rule]]\nname = "a"\naction = "report"\n[rule.limits]\nmax_per_sweep = 0\n',
            5,
            "from 1 to",
        ),
        (
            '[protect]\nusers = "dba"\nclients = ["300.1.1.1"]\n'
            '[[rule]]\nname = "a"\naction = "report"\n',
            3,
            "client",
        ),
        ('[[rule]]\nname = "a"\naction = "report"\n[[rule]]\nname = "b"\n', 4, "no action"),
        (
            '[[rule]]\nname = "a"\naction = "report"\n[[rule.exclude]]\nidle = 3\n',
            5,
            "unknown key 'idle'",
        ),
        (
            '[[rule]]\nname = "a"\naction = "report"\n[rule.match]\nblocking_at_least = "many"\n',
            5,
            "whole number",
        ),
        (
            '[[rule]]\nname = "a"\naction = "report"\ninclude_superusers = "yes"\n',
            4,
            "true or false",
        ),
        ('[[rule]]\nname = "a"\naction = "report"\nspeed = 3\n', 4, "unknown key 'speed'"),
        ('[[rule]]\nname = "a"\naction = = "report"\n', 3, "not valid TOML"),
    ],
)
def test_errors_name_the_line(text, line, words):
    with pytest.raises(ConfigurationError) as raised:
        parse_policy(text)
    message = str(raised.value)
    assert f"line {line}" in message, message
    assert words in message


def test_empty_policy_is_refused():
    with pytest.raises(ConfigurationError, match="no rules"):
        parse_policy("")


def test_unknown_application_is_protected_and_excluded_where_names_are_hidden():
    hidden = Snapshot(
        server=SERVER,
        taken_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        sessions=(s(10), s(11, user="etl")),
        degraded=("application names not shown: enable performance_schema",),
    )
    protecting = policy('action = "terminate"', top='[protect]\napplications = ["backup"]')
    sweep = decide(protecting, hidden, now=0)
    assert sweep.decisions == ()
    assert "application unknown" in sweep.protected[0][2]
    excluding = policy('action = "terminate"\n[[rule.exclude]]\napplication = "x"\nuser = "etl"')
    assert [d.session.pid for d in decide(excluding, hidden, now=0).decisions] == [10]
    # Where names are shown, a session without one is neither.
    assert [d.session.pid for d in decide(protecting, snap(s(10)), now=0).decisions] == [10]


# ------------------------------------------------------------------ numbers in range (#14)

DURATION_KEYS = ("idle_over", "idle_in_transaction_over", "xact_over", "query_over", "wait_over")
NOT_DURATIONS = {
    "nan": "is not a duration",
    "inf": "is not a duration",
    "-inf": "is not a duration",
    "+nan": "is not a duration",
    "1e400": "is not a duration",
    "-1": "is negative",
    "-0.5": "is negative",
    "31622401": "is longer than 366 days",
    "1e30": "is longer than 366 days",
    "99999999999999999999999999999999": "is longer than 366 days",
    '"400d"': "longer than 366 days",
    '"nan"': "not a duration",
    '"-5m"': "not a duration",
    "true": "must be a duration",
    "[5]": "must be a duration",
    "1979-05-27": "must be a duration",
}


@pytest.mark.parametrize("key", DURATION_KEYS)
@pytest.mark.parametrize("value", list(NOT_DURATIONS))
def test_a_duration_out_of_range_is_refused_naming_key_and_line(key, value):
    text = f'[[rule]]\nname = "idle-tx"\naction = "report"\n\n[rule.match]\n{key} = {value}\n'
    with pytest.raises(ConfigurationError) as raised:
        parse_policy(text)
    message = str(raised.value)
    assert message.startswith(f"policy line 6: rule 'idle-tx': match: {key}"), message
    assert NOT_DURATIONS[value] in message
    assert "\n" not in message


def test_the_message_repeats_the_value_as_written():
    with pytest.raises(ConfigurationError) as raised:
        parse_policy(
            '[[rule]]\nname = "idle-tx"\naction = "terminate"\n'
            "match = { idle_in_transaction_over = nan }\n"
        )
    assert str(raised.value) == (
        "policy line 4: rule 'idle-tx': match: idle_in_transaction_over = nan is not a "
        'duration (give seconds from 0 to 366 days, or a string such as "90s")'
    )


@pytest.mark.parametrize("value", ["0", "0.0", '"0s"', "31622400", '"366d"', "1e-9", "300"])
def test_durations_in_range_are_kept(value):
    pol = policy(f'action = "report"\nmatch = {{ idle_over = {value} }}')
    seconds = pol.rules[0].match.idle_over_seconds
    assert seconds is not None
    assert 0 <= seconds <= 366 * 86400


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("grace = nan", "grace = nan is not a duration"),
        ("grace = inf", "grace = inf is not a duration"),
        ("grace = -1", "grace = -1 is negative"),
        ('grace = "400d"', "longer than 366 days"),
        ("grace = 0", "grace = 0 leaves no time"),
        ('grace = "0s"', "grace = 0 leaves no time"),
    ],
)
def test_grace_out_of_range_is_refused(body, words):
    with pytest.raises(ConfigurationError) as raised:
        policy(f'action = "cancel_then_terminate"\n{body}')
    assert "line 5" in str(raised.value)
    assert words in str(raised.value)


COUNTS = {
    # key, where it goes, smallest and largest accepted
    "blocking_at_least": ("[rule.match]", 1, 100_000),
    "xmin_age_over": ("[rule.match]", 0, 2**31 - 1),
    "max_per_sweep": ("[rule.limits]", 1, 100_000),
    "max_per_minute": ("[rule.limits]", 1, 100_000),
}


@pytest.mark.parametrize("key", list(COUNTS))
def test_counts_have_a_floor_and_a_ceiling(key):
    table, low, high = COUNTS[key]

    def load(value):
        return parse_policy(f'[[rule]]\nname = "r"\naction = "report"\n{table}\n{key} = {value}\n')

    for value in (low, high):
        load(value)
    for value in (low - 1, high + 1, -1, "nan", "inf", "1.0", "10" + "0" * 40, '"3"', "true"):
        expected = f"line 5: rule 'r': .*{key} must be a whole number from {low} to {high:,}"
        with pytest.raises(ConfigurationError, match=expected):
            load(value)


@pytest.mark.parametrize("key", ["max_per_sweep", "max_per_minute"])
def test_overall_limits_have_the_same_ceiling(key):
    with pytest.raises(ConfigurationError, match=r"line 2: limits: .* from 1 to 100,000"):
        policy('action = "report"', top=f"[limits]\n{key} = 100001")


def test_blocking_at_least_zero_would_match_every_session():
    # A session blocking nobody is "blocking at least 0": refused, not matched.
    with pytest.raises(ConfigurationError, match="blocking_at_least must be a whole number"):
        policy('action = "terminate"\nmatch = { blocking_at_least = 0 }')


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a = " + "[" * 100_000, "nested too deeply"),
        ("a = " + "{b = " * 100_000, "nested too deeply"),
        ("a = " + "9" * 5000, "a number of more than 4300 digits"),
    ],
)
def test_pathological_toml_is_one_line(text, words):
    with pytest.raises(ConfigurationError) as raised:
        parse_policy(text)
    message = str(raised.value)
    assert message.startswith("policy is not valid TOML: ")
    assert words in message
    assert "\n" not in message
    assert "sys.set_int_max_str_digits" not in message


@pytest.mark.parametrize(
    "pattern", ["[[:alpha:]]", "[[a]", "(" * 100_000 + ")" * 100_000, "a{99999999999}"]
)
def test_a_bad_policy_regex_names_the_line(pattern):
    text = f'[[rule]]\nname = "a"\naction = "report"\n[rule.match]\nquery = \'{pattern}\'\n'
    with pytest.raises(
        ConfigurationError, match=r"^policy line 5: rule 'a': match: bad query regex"
    ):
        parse_policy(text)


def test_line_numbers_stay_linear_on_long_lines():
    # The key-to-line map once backtracked quadratically on a long inline table or a
    # bracket-led line in a multi-line string: 200,000 characters took minutes.
    import time

    letters, spaces = "a" * 200_000, " " * 200_000
    text = (
        f'[[rule]]\nname = "a"\naction = "report"\nmatch = {{ query = "{letters}" }}\n'
        f'[[rule]]\nname = "b"\naction = "report"\nmatch = {{ query = """\n[{spaces}x\n""" }}\n'
    )
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match="line 8: rule 'b'"):
        parse_policy(text)
    assert time.monotonic() - started < 10


def test_line_numbers_count_only_toml_newlines():
    # U+2028 inside a string is not a line break for TOML.
    text = '[[rule]]\nname = "a\u2028b"\naction = "report"\nmatch = { idle_over = nan }\n'
    with pytest.raises(ConfigurationError, match="line 4:"):
        parse_policy(text)


def test_crlf_policies_name_the_line():
    text = '[[rule]]\r\nname = "a"\r\naction = "report"\r\n[rule.match]\r\nidle_over = nan\r\n'
    with pytest.raises(ConfigurationError, match="line 5:"):
        parse_policy(text)


def test_a_hand_built_nan_threshold_never_matches():
    # The loader refuses nan; a Match built in Python must not end every session with it.
    nan = float("nan")
    pol = Policy(
        rules=(Rule(name="r", action=PolicyAction.TERMINATE, match=Match(idle_over_seconds=nan)),)
    )
    assert chosen(pol, snap(s(10, state_age_seconds=1e6, is_superuser=False))) == []
