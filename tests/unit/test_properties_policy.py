"""Properties of policy loading: a policy that loads describes only what its author wrote.

Every numeric key gets arbitrary TOML values (``nan``, ``inf``, huge, negative, strings,
tables…): the policy is refused in one line, or every threshold, count and grace in it is
finite and within the documented caps; and a session younger than every threshold of
every rule is never chosen.  Deterministic (``derandomize``), so CI does not flake.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sessionward.core import (
    STATES,
    ConfigurationError,
    Policy,
    ServerInfo,
    Session,
    Snapshot,
    decide,
    parse_policy,
)

pytestmark = pytest.mark.filterwarnings("error")

# No example database: every run tries the same examples, wherever it runs.
SETTINGS = settings(derandomize=True, database=None, max_examples=200, deadline=None)

MAX_SECONDS = 366 * 86400.0
MAX_COUNT = 100_000
MAX_XMIN_AGE = 2**31 - 1
DURATION_KEYS = ("idle_over", "idle_in_transaction_over", "xact_over", "query_over", "wait_over")
MATCH_COUNT_KEYS = ("blocking_at_least", "xmin_age_over")
LIMIT_KEYS = ("max_per_sweep", "max_per_minute")


# ------------------------------------------------------------------ TOML text


def toml_float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def toml_key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else json.dumps(key)


def toml_value(value: object) -> str:
    """``value`` as a TOML literal; a ``Raw`` is written as it is."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return toml_float(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }"
    raise TypeError(value)


class Raw:
    """TOML text written as it is: literals Python has no value for (``1e400``, dates)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text!r})"


numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-5, max_value=400_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=2 * MAX_SECONDS),
    st.sampled_from(
        [Raw(text) for text in ("nan", "+nan", "-nan", "inf", "+inf", "-inf", "1e400", "-1e400",
                                "0x7fffffffffffffff", "0o17", "0b101", "1_000", "9" * 30,
                                "1979-05-27", "07:32:00", "1979-05-27T07:32:00Z")]
    ),
)  # fmt: skip
duration_strings = st.one_of(
    st.sampled_from(["90s", "5m", "1h30m", "366d", "367d", "0", "0s", "-5s", "nan", "inf",
                     "1e3", "5 minutes", "", "250ms", "9" * 400, "1h30"]),
    st.text(max_size=12),
)  # fmt: skip
scalars = st.one_of(numbers, duration_strings, st.booleans())
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(["a", "idle_over", "s"]), scalars, max_size=2),
)


# ------------------------------------------------------------------ what may load


def assert_one_line_refusal(error: BaseException) -> None:
    assert type(error) is ConfigurationError
    message = str(error)
    assert message.startswith("policy")
    assert "\n" not in message


def assert_in_range(policy: Policy) -> None:
    """Every number of a loaded policy is finite and within the README's caps."""
    for rule in policy.rules:
        assert math.isfinite(rule.grace_seconds)
        assert 0 < rule.grace_seconds <= MAX_SECONDS
        for match in (rule.match, *rule.exclude):
            for seconds in match.thresholds().values():
                assert type(seconds) is float
                assert math.isfinite(seconds)
                assert 0 <= seconds <= MAX_SECONDS
            if match.blocking_at_least is not None:
                assert 1 <= match.blocking_at_least <= MAX_COUNT
            if match.xmin_age_over is not None:
                assert 0 <= match.xmin_age_over <= MAX_XMIN_AGE
        for limits in (rule.limits, policy.limits):
            for count in (limits.max_per_sweep, limits.max_per_minute):
                assert count is None or 1 <= count <= MAX_COUNT


def load(text: str) -> Policy | None:
    try:
        policy = parse_policy(text)
    except ConfigurationError as error:
        assert_one_line_refusal(error)
        return None
    assert_in_range(policy)
    return policy


RULE_HEAD = '[[rule]]\nname = "r"\naction = "cancel_then_terminate"\n'


@SETTINGS
@given(st.sampled_from(DURATION_KEYS), numbers, st.booleans())
@example("idle_over", float("nan"), True)
@example("idle_over", Raw("inf"), False)
@example("xact_over", 10**30, True)
def test_a_numeric_threshold_loads_in_range_or_is_refused(key, value, as_table):
    if as_table:
        load(f"{RULE_HEAD}[rule.match]\n{key} = {toml_value(value)}\n")
    else:
        load(f"{RULE_HEAD}match = {{ {key} = {toml_value(value)} }}\n")


@SETTINGS
@given(st.sampled_from(DURATION_KEYS), duration_strings)
def test_a_duration_string_threshold_loads_in_range_or_is_refused(key, value):
    load(f"{RULE_HEAD}[[rule.exclude]]\n{key} = {toml_value(value)}\n")


@SETTINGS
@given(st.sampled_from(MATCH_COUNT_KEYS), values)
@example("blocking_at_least", 0)
def test_a_match_count_loads_in_range_or_is_refused(key, value):
    load(f"{RULE_HEAD}[rule.match]\n{key} = {toml_value(value)}\n")


@SETTINGS
@given(st.sampled_from(LIMIT_KEYS), values, st.booleans())
def test_a_limit_loads_in_range_or_is_refused(key, value, overall):
    line = f"{key} = {toml_value(value)}\n"
    load(f"[limits]\n{line}{RULE_HEAD}" if overall else f"{RULE_HEAD}[rule.limits]\n{line}")


@SETTINGS
@given(st.one_of(values, duration_strings))
@example(0)
@example(Raw("nan"))
def test_grace_loads_in_range_or_is_refused(value):
    load(f"{RULE_HEAD}grace = {toml_value(value)}\n")


# ------------------------------------------------------------------ whole documents

MATCH_VOCABULARY = [*DURATION_KEYS, *MATCH_COUNT_KEYS, "database", "user", "application",
                    "client", "state", "backend_type", "query", "colour"]  # fmt: skip
matches = st.dictionaries(st.sampled_from(MATCH_VOCABULARY), values, max_size=4)
rules = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.just("r"), st.text(max_size=5), numbers),
        "action": st.sampled_from(["report", "cancel", "terminate", "cancel_then_terminate", "x"]),
        "victims": st.sampled_from(["all", "oldest", "newest", "root_blockers", 3]),
        "match": st.one_of(matches, values),
        "exclude": st.one_of(matches, st.lists(matches, max_size=2), values),
        "limits": st.one_of(st.dictionaries(st.sampled_from(LIMIT_KEYS), values), values),
        "grace": st.one_of(values, duration_strings),
        "include_superusers": st.one_of(st.booleans(), values),
        "speed": values,
    },
)
documents = st.fixed_dictionaries(
    {"rule": st.one_of(st.lists(rules, max_size=3), values)},
    optional={
        "protect": st.one_of(
            st.dictionaries(
                st.sampled_from(["users", "applications", "databases", "clients", "x"]), values
            ),
            values,
        ),
        "limits": st.one_of(st.dictionaries(st.sampled_from(LIMIT_KEYS), values), values),
    },
)


def write_document(document: dict[str, object], headers: bool) -> str:
    """A policy as TOML: rules as ``[[rule]]`` sections when ``headers``, else inline."""
    rules = document.get("rule")
    headers = headers and isinstance(rules, list) and all(isinstance(r, dict) for r in rules)
    # Plain keys first: after a [[rule]] header they would belong to that rule.
    lines = [
        f"{toml_key(key)} = {toml_value(value)}"
        for key, value in document.items()
        if not (headers and key == "rule")
    ]
    if headers:
        assert isinstance(rules, list)
        for rule in rules:
            lines.append("[[rule]]")
            lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in rule.items())
    return "\n".join(lines) + "\n"


@SETTINGS
@given(documents, st.booleans())
def test_any_document_loads_in_range_or_is_refused_in_one_line(document, headers):
    load(write_document(document, headers))


@SETTINGS
@given(st.text(max_size=200))
@example("[[rule]]\n" * 3)
@example("a = " + "[" * 5000)
def test_any_text_loads_or_is_refused_in_one_line(text):
    load(text)


# ------------------------------------------------------------------ nothing undescribed

SERVER = ServerInfo(engine="postgresql", version="16.2", version_num=160002, own_pid=1)
thresholds = st.one_of(
    st.floats(min_value=0, max_value=MAX_SECONDS),
    st.integers(min_value=0, max_value=int(MAX_SECONDS)),
    st.sampled_from([Raw("nan"), Raw("inf"), Raw("-1"), 0, 0.0, "0s", "5m", "1h30m", "366d"]),
)
young_rules = st.lists(
    st.tuples(
        st.sampled_from(["report", "cancel", "terminate", "cancel_then_terminate"]),
        st.sampled_from(["all", "oldest", "newest"]),
        st.dictionaries(st.sampled_from(DURATION_KEYS), thresholds, min_size=1),
    ),
    min_size=1,
    max_size=3,
)
#: Each session's ages, as fractions (0 to 1) of the smallest threshold of the policy.
young_sessions = st.lists(
    st.tuples(
        st.sampled_from(STATES),
        st.lists(st.floats(min_value=0, max_value=1), min_size=5, max_size=5),
        st.lists(st.integers(10, 20), max_size=2),
    ),
    min_size=1,
    max_size=6,
)


@SETTINGS
@given(young_rules, young_sessions)
@example([("terminate", "all", {"idle_over": Raw("nan")})], [("idle", [1.0] * 5, [])])
@example([("terminate", "all", {"idle_over": 0})], [("idle", [0.0] * 5, [])])
def test_a_session_younger_than_every_threshold_is_never_chosen(rule_specs, session_specs):
    text = "".join(
        f'[[rule]]\nname = "r{i}"\naction = "{action}"\nvictims = "{victims}"\n'
        f"match = {toml_value(match)}\n"
        for i, (action, victims, match) in enumerate(rule_specs)
    )
    policy = load(text)
    if policy is None:
        return
    youngest = min(v for rule in policy.rules for v in rule.match.thresholds().values())
    sessions = tuple(
        Session(
            pid=10 + i,
            user="app",
            database="shop",
            state=state,
            is_superuser=False,
            session_age_seconds=youngest * ages[0],
            xact_age_seconds=youngest * ages[1],
            state_age_seconds=youngest * ages[2],
            query_age_seconds=youngest * ages[3],
            wait_age_seconds=youngest * ages[4],
            blocked_by=tuple(pid for pid in blockers if pid != 10 + i),
        )
        for i, (state, ages, blockers) in enumerate(session_specs)
    )
    snapshot = Snapshot(
        server=SERVER, taken_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), sessions=sessions
    )
    sweep = decide(policy, snapshot, now=0.0)
    assert sweep.decisions == ()
