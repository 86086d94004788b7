"""Properties of durations: a finite number of seconds from 0 to 366 days, or one refusal.

Deterministic (``derandomize``): the same examples run everywhere, so CI does not flake.
"""

from __future__ import annotations

import math

import click
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sessionward.core import ConfigurationError, parse_duration
from sessionward.interfaces._params import DURATION

pytestmark = pytest.mark.filterwarnings("error")

# No example database: every run tries the same examples, wherever it runs.
SETTINGS = settings(derandomize=True, database=None, max_examples=200, deadline=None)
MAX_SECONDS = 366 * 86400.0
UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}

#: Pieces a person (or a typo) puts in a duration, and the spellings of not-a-number.
pieces = st.sampled_from(
    ["0", "1", "5", "30", "90", "9" * 400, ".", "5.5", " ", "\t", "\n", "-", "+", "e3",
     "d", "h", "m", "min", "s", "ms", "M", "MS", "x", "nan", "inf", "Infinity", "٥", "５",
     "1h30", "1e400"]
)  # fmt: skip
duration_like = st.lists(pieces, max_size=8).map("".join)
any_text = st.one_of(duration_like, st.text(max_size=30))


def assert_one_line_refusal(error: BaseException) -> None:
    assert type(error) is ConfigurationError
    message = str(error)
    assert message
    assert "\n" not in message
    assert len(message) < 200


@SETTINGS
@given(any_text)
@example("nan")
@example("inf")
@example("9" * 400)
@example("1h30")
@example("٥s")
def test_a_duration_is_finite_and_in_range_or_refused(text):
    try:
        seconds = parse_duration(text)
    except ConfigurationError as error:
        assert_one_line_refusal(error)
        return
    assert type(seconds) is float
    assert math.isfinite(seconds)
    assert 0 <= seconds <= MAX_SECONDS


@SETTINGS
@given(
    st.lists(
        st.tuples(st.sampled_from(list(UNIT_SECONDS)), st.integers(0, 400)),
        min_size=1,
        max_size=5,
        unique_by=lambda part: part[0],
    ),
    st.sampled_from(["", " "]),
)
def test_units_largest_first_add_up(parts, space):
    parts.sort(key=lambda part: list(UNIT_SECONDS).index(part[0]))
    text = space.join(f"{number}{unit}" for unit, number in parts)
    expected = sum(number * UNIT_SECONDS[unit] for unit, number in parts)
    if expected > MAX_SECONDS:
        with pytest.raises(ConfigurationError, match="longer than 366 days"):
            parse_duration(text)
    else:
        assert parse_duration(text) == pytest.approx(expected)


@SETTINGS
@given(any_text)
@example("nan")
@example("400d")
def test_the_command_line_type_refuses_with_click(text):
    # click turns the failure into "Invalid value for '--idle-over': …", exit 2.
    try:
        seconds = DURATION.convert(text, None, None)
    except click.BadParameter as error:
        message = error.format_message()
    else:
        message = ""
        assert math.isfinite(seconds)
        assert 0 <= seconds <= MAX_SECONDS
    assert "\n" not in message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1.0])
def test_the_command_line_type_refuses_bad_defaults(value):
    with pytest.raises(click.BadParameter):
        DURATION.convert(value, None, None)
