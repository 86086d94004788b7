"""Properties of filter parsing: a value or one refusal line, and no warning ever escapes.

Deterministic (``derandomize``): the same examples run everywhere, so CI does not flake.
"""

from __future__ import annotations

import re
import warnings

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sessionward.core import ConfigurationError, compile_query_regex, parse_client, parse_state

pytestmark = pytest.mark.filterwarnings("error")

# No example database: every run tries the same examples, wherever it runs.
SETTINGS = settings(derandomize=True, database=None, max_examples=200, deadline=None)

#: Regex syntax from several dialects, so patterns are often almost valid.
regex_pieces = st.sampled_from(
    ["[", "]", "(", ")", "(?", "?", "*", "+", "{", "}", "{2,3}", "{99999999999}", "|", "^", "$",
     ".", "\\", "\\d", "\\w", "\\[", "-", "--", "&&", "~~", "||", ":", "[:alpha:]",
     "[[:digit:]]", "a", "Z", "é", "0", "(?i)", "(?P<n>", "(?P=n)", "\\1", "\n", " "]
)  # fmt: skip
patterns = st.one_of(st.lists(regex_pieces, max_size=12).map("".join), st.text(max_size=20))


def assert_one_line_refusal(error: BaseException) -> None:
    assert type(error) is ConfigurationError
    message = str(error)
    assert message
    assert "\n" not in message
    assert len(message) < 400


@SETTINGS
@given(patterns)
@example("[[:alpha:]]")
@example("[a--b]")
@example("(" * 2000 + ")" * 2000)
def test_a_query_regex_compiles_quietly_or_is_refused(pattern):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            compiled = compile_query_regex(pattern)
        except ConfigurationError as error:
            assert_one_line_refusal(error)
            # The same pattern is refused again, though re cached whatever it compiled.
            with pytest.raises(ConfigurationError):
                compile_query_regex(pattern)
            return
    assert isinstance(compiled, re.Pattern)
    assert compiled.flags & re.IGNORECASE


client_pieces = st.sampled_from(
    ["10", ".", "0", "/", "8", ":", "::", "ffff", "local", " ", "999", "-1", "%eth0", "33", "128"]
)


@SETTINGS
@given(st.one_of(st.text(max_size=40), st.lists(client_pieces, max_size=8).map("".join)))
def test_a_client_filter_is_a_network_or_local_or_refused(text):
    try:
        client = parse_client(text)
    except ConfigurationError as error:
        assert_one_line_refusal(error)
        return
    assert client == "local" or hasattr(client, "network_address")


@SETTINGS
@given(st.text(max_size=40))
@example("idle-in-transaction")
def test_a_state_filter_is_a_known_state_or_refused(text):
    try:
        parse_state(text)
    except ConfigurationError as error:
        assert_one_line_refusal(error)
