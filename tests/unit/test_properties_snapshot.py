"""Properties of snapshot loading: a snapshot with finite numbers, or one refusal line.

Fields are only ever added within ``sessionward.snapshot/1``: unknown ones, of any type and
at any level, change nothing.  Deterministic (``derandomize``), so CI does not flake.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sessionward.core import (
    ConfigurationError,
    ServerInfo,
    Session,
    Snapshot,
    dump_snapshot,
    load_snapshot,
    snapshot_to_dict,
)

pytestmark = pytest.mark.filterwarnings("error")

# No example database: every run tries the same examples, wherever it runs.
SETTINGS = settings(derandomize=True, database=None, max_examples=200, deadline=None)

SNAPSHOT = Snapshot(
    server=ServerInfo(engine="postgresql", version="16.2", version_num=160002, own_pid=1),
    taken_at=dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc),
    sessions=(
        Session(pid=10, state="idle in transaction", xact_age_seconds=12.5, state_age_seconds=3.0,
                user="app", database="shop", blocked_by=(11,), xmin_age=4),
        Session(pid=11, state="active", query="select 1", query_age_seconds=0.5),
    ),
    degraded=("wait_target: pg_locks is not readable",),
)  # fmt: skip
KNOWN = {
    "snapshot": set(snapshot_to_dict(SNAPSHOT)),
    "server": set(snapshot_to_dict(SNAPSHOT)["server"]),
    "session": set(snapshot_to_dict(SNAPSHOT)["sessions"][0]),
}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def assert_one_line_refusal(error: BaseException) -> None:
    assert type(error) is ConfigurationError
    message = str(error)
    assert message
    assert "\n" not in message


def assert_finite(snapshot: Snapshot) -> None:
    for session in snapshot.sessions:
        for name in ("session_age_seconds", "xact_age_seconds", "state_age_seconds",
                     "query_age_seconds", "wait_age_seconds"):  # fmt: skip
            age = getattr(session, name)
            assert age is None or math.isfinite(age)


def load(text: str) -> Snapshot | None:
    try:
        snapshot = load_snapshot(text)
    except ConfigurationError as error:
        assert_one_line_refusal(error)
        return None
    assert_finite(snapshot)
    return snapshot


@SETTINGS
@given(st.text(max_size=200))
@example('{"a":' * 5000)
@example("[" * 5000)
@example("NaN")
def test_any_text_loads_or_is_refused_in_one_line(text):
    load(text)


def objects(data: dict) -> list[dict]:
    """Every non-empty JSON object in ``data``: the top level, the server, each session."""
    server, sessions = data.get("server"), data.get("sessions")
    found = [data, server, *(sessions if isinstance(sessions, list) else [])]
    return [obj for obj in found if isinstance(obj, dict) and obj]


@SETTINGS
@given(st.data(), st.lists(st.tuples(json_values, st.booleans()), min_size=1, max_size=6))
def test_a_changed_field_loads_with_finite_numbers_or_is_refused(data, changes):
    document = snapshot_to_dict(SNAPSHOT)
    for value, delete in changes:
        if not objects(document):
            break
        target = data.draw(st.sampled_from(objects(document)))
        key = data.draw(st.sampled_from(sorted(target)))
        if delete:
            del target[key]
        else:
            target[key] = value
    loaded = load(json.dumps(document))
    if loaded is not None:
        assert loaded.server.engine in ("postgresql", "mariadb", "mysql")
        assert all(type(session.pid) is int for session in loaded.sessions)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["snapshot", "server", "session"]),
            st.text(min_size=1, max_size=12),
            json_values,
        ),
        min_size=1,
        max_size=6,
    )
)
@example([("server", "port", 5432)])
@example([("session", "tls", {"cipher": {"bits": 256.5}})])
@example([("snapshot", "NaN", None)])
def test_unknown_fields_anywhere_change_nothing(additions):
    document = snapshot_to_dict(SNAPSHOT)
    for level, key, value in additions:
        if key in KNOWN[level]:
            continue
        targets = {"snapshot": [document], "server": [document["server"]]}.get(
            level, document["sessions"]
        )
        for target in targets:
            target[key] = copy.deepcopy(value)
    # NaN in an unknown field is still not JSON; anything else there is ignored.
    text = json.dumps(document)
    try:
        json.dumps(document, allow_nan=False)
    except ValueError:  # a NaN or an infinity among the added values
        has_non_finite = True
    else:
        has_non_finite = False
    if has_non_finite:
        with pytest.raises(ConfigurationError, match="is not a JSON number"):
            load_snapshot(text)
    else:
        assert load_snapshot(text) == SNAPSHOT


def test_round_trip_still_holds():
    assert load_snapshot(dump_snapshot(SNAPSHOT)) == SNAPSHOT
