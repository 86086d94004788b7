"""Origins: the wire format both halves follow, and parsing untrusted client text.

Property tests are deterministic (``derandomize``), so CI does not flake.
"""

from __future__ import annotations

import pickle

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sessionward.core import (
    Origin,
    application_name_for,
    encode_comment,
    parse_origin,
    with_comment,
)

pytestmark = pytest.mark.filterwarnings("error")

SETTINGS = settings(derandomize=True, database=None, max_examples=300, deadline=None)

FULL = Origin(
    service="billing",
    host="web-1",
    pid=4242,
    holder="Thread-3 (worker)",
    code="reports/daily.py:88",
)


def test_the_comment_is_sqlcommenter_with_sorted_url_encoded_keys():
    assert encode_comment(FULL) == (
        "/*sw_code='reports%2Fdaily.py%3A88',sw_holder='Thread-3%20%28worker%29',"
        "sw_host='web-1',sw_pid='4242',sw_service='billing'*/"
    )


def test_a_quote_or_comment_end_in_a_value_cannot_close_the_comment():
    comment = encode_comment(Origin(service="x*/; DROP TABLE t; --'"))
    assert comment.count("*/") == 1
    assert comment.endswith("*/")
    assert "'" not in comment[len("/*sw_service='") : -len("'*/")]
    assert parse_origin(None, "SELECT 1 " + comment) == Origin(service="x*/; DROP TABLE t; --'")


def test_foreign_keys_travel_in_extra():
    origin = Origin(service="api", extra={"route": "/pay/{id}", "traceparent": "00-a-b-01"})
    comment = encode_comment(origin)
    assert comment.startswith("/*route='%2Fpay%2F%7Bid%7D',sw_service='api',traceparent=")
    assert parse_origin(None, f"SELECT 1 {comment}") == origin


def test_over_the_cap_the_code_goes_first_then_the_holder():
    full = encode_comment(FULL)
    without_code = encode_comment(FULL, max_bytes=len(full) - 1)
    assert "sw_code" not in without_code
    assert "sw_holder" in without_code
    assert len(without_code) <= len(full) - 1
    bare = encode_comment(FULL, max_bytes=len(without_code) - 1)
    assert "sw_holder" not in bare
    assert "sw_service='billing'" in bare
    assert encode_comment(FULL, max_bytes=10) == ""
    assert encode_comment(Origin()) == ""


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT 1", "SELECT 1 /*a='b'*/"),
        ("SELECT 1;", "SELECT 1 /*a='b'*/;"),
        ("SELECT 1 ;\n", "SELECT 1 /*a='b'*/;"),
        ("SELECT 1 /* mine */", "SELECT 1 /* mine */"),
        ("SELECT 1 -- mine", "SELECT 1 -- mine"),
    ],
)
def test_with_comment(statement, expected):
    assert with_comment(statement, "/*a='b'*/") == expected


def test_with_an_empty_comment_the_statement_is_unchanged():
    assert with_comment("SELECT 1;", "") == "SELECT 1;"


def test_application_name_round_trips():
    name = application_name_for("billing", 4242, "web-1")
    assert name == "billing[4242]@web-1"
    assert parse_origin(name, None) == Origin(service="billing", host="web-1", pid=4242)


def test_application_name_cuts_the_host_then_the_service():
    name = application_name_for("billing", 4242, "h" * 100)
    assert name == "billing[4242]@" + "h" * (63 - len("billing[4242]@"))
    name = application_name_for("é" * 100, 4242, "host")
    assert len(name.encode()) <= 63
    assert name.endswith("[4242]@")
    assert name.startswith("é" * 28)  # 56 bytes: a 29th would split at 58 > 57


def test_djangos_older_form_names_the_thread():
    assert parse_origin("manage.py[77]:Thread-1 (process_request_thread)", "SELECT 1") == Origin(
        service="manage.py", pid=77, holder="Thread-1 (process_request_thread)"
    )


def test_the_comment_wins_over_the_application_name_and_the_last_comment_counts():
    query = "SELECT /*sw_code='old.py%3A1'*/ 1 /*sw_code='new.py%3A2',sw_pid='9'*/"
    origin = parse_origin("svc[8]@h", query)
    assert origin == Origin(service="svc", host="h", pid=9, code="new.py:2")


def test_a_comment_that_is_not_sqlcommenter_is_skipped_for_an_earlier_one():
    query = "SELECT 1 /*sw_code='a.py%3A1'*/ /* plain note */"
    assert parse_origin(None, query) == Origin(code="a.py:1")


@pytest.mark.parametrize(
    ("application", "query"),
    [
        (None, None),
        ("psql", "SELECT 1"),
        ("app[0]@h", None),  # no process has pid 0
        ("app[99999999999]@h", None),
        (None, "SELECT '/*' || '*/'"),
        (None, "/*sw_pid='x'*/"),
        (None, "/*='v'*/"),
        (None, "/*k=v*/"),
        (None, "/**/"),
    ],
)
def test_nothing_ours_is_none(application, query):
    assert parse_origin(application, query) is None


def test_values_and_keys_are_capped():
    query = "/*sw_code='" + "a" * 5000 + "'," + "k" * 100 + "='v'*/"
    origin = parse_origin(None, query)
    assert origin is not None
    assert origin.code == "a" * 256
    assert list(origin.extra) == ["k" * 64]


def test_at_most_32_foreign_keys_are_kept():
    pairs = ",".join(f"k{i:02}='v'" for i in range(50))
    origin = parse_origin(None, f"/*{pairs}*/")
    assert origin is not None
    assert len(origin.extra) == 32


def test_origins_hash_pickle_and_hold_a_read_only_extra():
    origin = Origin(service="a", extra={"route": "/x"})
    assert {origin: 1}[Origin(service="a", extra={"route": "/x"})] == 1
    assert pickle.loads(pickle.dumps(origin)) == origin
    with pytest.raises(TypeError):
        origin.extra["route"] = "/y"  # type: ignore[index]


def test_as_dict_leaves_out_the_unknown_and_round_trips():
    assert Origin(pid=3).as_dict() == {"pid": 3}
    data = Origin(service="s", code="a.py:1", extra={"route": "/r"}).as_dict()
    assert data == {"service": "s", "code": "a.py:1", "extra": {"route": "/r"}}
    assert Origin.from_dict(data) == Origin(service="s", code="a.py:1", extra={"route": "/r"})


def test_compact_form():
    assert FULL.compact == "billing web-1[4242] Thread-3 (worker) reports/daily.py:88"
    assert Origin(pid=5).compact == "[5]"
    assert Origin(extra={"traceparent": "00-x", "route": "/r"}).compact == "route=/r"


# --------------------------------------------------------------------------- properties

texts = st.text(max_size=40)
maybe_texts = st.none() | st.text(min_size=1, max_size=40)
origins = st.builds(
    Origin,
    service=maybe_texts,
    host=maybe_texts,
    pid=st.none() | st.integers(min_value=1, max_value=2**31 - 1),
    holder=maybe_texts,
    code=maybe_texts,
    extra=st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda k: not k.startswith("sw_")),
        st.text(max_size=20),
        max_size=4,
    ),
)
sql_pieces = st.sampled_from(
    ["/*", "*/", "'", "\\'", "\\", "=", ",", "sw_pid", "sw_code", "route", "%", "%2", "%ZZ",
     "%ff", "[", "]", "@", ":", "1", "x", " ", "\n", "--", ";", "é", "\x00", "\ud800"]
)  # fmt: skip
hostile = st.one_of(st.lists(sql_pieces, max_size=30).map("".join), st.text(max_size=60))


@SETTINGS
@given(origins, st.integers(min_value=0, max_value=600))
def test_an_encoded_origin_parses_back(origin, max_bytes):
    comment = encode_comment(origin, max_bytes=max_bytes)
    assert len(comment.encode()) <= max_bytes
    assert comment.isascii()
    assert "\n" not in comment
    parsed = parse_origin(None, with_comment("SELECT 1", comment))
    if not comment:
        assert parsed is None
        return
    assert parsed is not None
    # The code line goes first over the cap, then the holder; the rest always stays.
    kept = [name for name in ("holder", "code") if f"sw_{name}=" in comment]
    if "code" in kept and origin.holder is not None:
        assert "holder" in kept
    for name in ("service", "host", "pid", *kept):
        expected = getattr(origin, name)
        if isinstance(expected, str):
            expected = expected.encode("utf-8", "replace").decode()[:256] or None
        assert getattr(parsed, name) == expected
    assert dict(parsed.extra) == {
        k.encode("utf-8", "replace").decode()[:64]: v.encode("utf-8", "replace").decode()
        for k, v in origin.extra.items()
    }


@SETTINGS
@given(texts, st.integers(min_value=1, max_value=2**22), texts)
@example("s" * 40, 1, "h" * 40)
@example("\ud800", 4242, "é")
def test_application_name_fits_and_keeps_the_pid(service, pid, host):
    name = application_name_for(service, pid, host)
    data = name.encode("utf-8")
    assert len(data) <= 63
    assert f"[{pid}]@" in name
    origin = parse_origin(name, None)
    assert origin is not None
    assert origin.pid == pid


@SETTINGS
@given(st.none() | hostile, st.none() | hostile)
@example("[1]@" * 100, "/*" * 5000)
@example(None, "/*" + "a='" * 3000)
@example(None, "/*k='\\" + "'*/" * 1000)
def test_parsing_untrusted_text_never_raises(application, query):
    origin = parse_origin(application, query)
    if origin is None:
        return
    for value in (origin.service, origin.host, origin.holder, origin.code, *origin.extra.values()):
        assert value is None or len(value) <= 256
    assert all(len(k) <= 64 for k in origin.extra)
    assert len(origin.extra) <= 32
    assert origin.pid is None or 0 < origin.pid < 2**31
    assert isinstance(origin.compact, str)


@SETTINGS
@given(hostile, hostile)
def test_with_comment_only_appends(statement, comment):
    result = with_comment(statement, comment)
    if result != statement:
        assert comment
        assert "/*" not in statement
        assert "--" not in statement
        body = statement.rstrip()
        if body.endswith(";"):
            assert result == f"{body[:-1].rstrip()} {comment};"
        else:
            assert result == f"{statement} {comment}"


# --------------------------------------------------------------------------- snapshots, policies


def _snapshot(*sessions):
    import datetime as dt

    from sessionward.core import ServerInfo, Snapshot

    return Snapshot(
        server=ServerInfo(engine="postgresql", version="15.2", version_num=150002, own_pid=1),
        taken_at=dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc),
        sessions=tuple(sessions),
    )


def test_a_snapshot_keeps_origins_through_json_and_the_schema():
    import jsonschema

    from sessionward.core import (
        Session,
        dump_snapshot,
        load_snapshot,
        snapshot_json_schema,
        snapshot_to_dict,
    )

    foreign = Origin(extra={"route": "/pay", "traceparent": "00-a-b-01"})
    snap = _snapshot(Session(pid=10, origin=FULL), Session(pid=11, origin=foreign),
                     Session(pid=12))  # fmt: skip
    document = snapshot_to_dict(snap)
    jsonschema.validate(document, snapshot_json_schema())
    assert [row["origin"] for row in document["sessions"]] == [
        FULL.as_dict(),
        {"extra": {"route": "/pay", "traceparent": "00-a-b-01"}},
        None,
    ]
    assert load_snapshot(dump_snapshot(snap)) == snap


def test_a_loaded_origin_of_the_wrong_shape_is_refused_or_ignored():
    import json

    from sessionward.core import ConfigurationError, Session, dump_snapshot, load_snapshot

    document = json.loads(dump_snapshot(_snapshot(Session(pid=10, origin=FULL))))
    document["sessions"][0]["origin"]["extra"] = {"route": 3, "ok": "yes"}
    document["sessions"][0]["origin"]["later"] = {"any": ["thing"]}
    loaded = load_snapshot(json.dumps(document))
    assert loaded.sessions[0].origin.extra == {"ok": "yes"}
    document["sessions"][0]["origin"]["pid"] = "4242"
    with pytest.raises(ConfigurationError, match=r"origin\.pid should be integer"):
        load_snapshot(json.dumps(document))
    document["sessions"][0]["origin"] = "billing"
    with pytest.raises(ConfigurationError, match=r"origin should be object or null"):
        load_snapshot(json.dumps(document))


POLICY = """
[[rule]]
name = "reports"
action = "terminate"
[rule.match]
origin.code = ["reports/*", "batch/*.py:1?"]
origin.service = "bill*"
"""


def test_a_policy_matches_origin_globs():
    from sessionward.core import Session, parse_policy

    match = parse_policy(POLICY).rules[0].match
    assert match.origin_codes == ("reports/*", "batch/*.py:1?")
    assert match.origin_services == ("bill*",)
    hit = Session(pid=10, origin=FULL)
    batch = Session(pid=11, origin=Origin(service="billing", code="batch/run.py:12"))
    other_code = Session(pid=12, origin=Origin(service="billing", code="api/views.py:12"))
    other_service = Session(pid=13, origin=Origin(service="web", code="reports/a.py:1"))
    no_origin = Session(pid=14)
    snap = _snapshot(hit, batch, other_code, other_service, no_origin)
    assert [s.pid for s in snap.sessions if match.matches(s, snap)] == [10, 11]
    assert match.static_failures(other_code, snap) == ["origin.code"]
    assert match.static_failures(no_origin, snap) == ["origin.service", "origin.code"]
    assert match.explain(hit, snap) == "origin.service billing, origin.code reports/daily.py:88"


@pytest.mark.parametrize(
    ("match", "message"),
    [
        ('{ origin.line = "x" }', "unknown key 'origin.line'; known: origin.service, origin.host"),
        ('{ origin = "x" }', "origin must be a table"),
        ("{ origin.code = 1 }", "origin.code must be a string or a list of strings"),
        ('{ "origin.holder" = [] }', "origin.holder must be a string or a list of strings"),
    ],
)
def test_bad_origin_matches_are_one_line_naming_the_line(match, message):
    from sessionward.core import ConfigurationError, parse_policy

    with pytest.raises(ConfigurationError) as caught:
        parse_policy(f'[[rule]]\nname = "r"\naction = "report"\nmatch = {match}\n')
    assert str(caught.value).startswith("policy line 4: rule 'r': match: ")
    assert message in str(caught.value)


def test_a_quoted_origin_key_is_the_dotted_one():
    from sessionward.core import parse_policy

    text = 'match = { "origin.holder" = "Thread-*", origin.host = "web-?" }'
    quoted = parse_policy(f'[[rule]]\nname = "r"\naction = "report"\n{text}\n')
    match = quoted.rules[0].match
    assert match.origin_holders == ("Thread-*",)
    assert match.origin_hosts == ("web-?",)


def test_an_origin_never_lifts_a_protection():
    from sessionward.core import Session, decide, parse_policy

    policy = parse_policy(
        POLICY + '[protect]\nusers = ["admin"]\napplications = ["billing*@web-1"]\n'
    )
    reports = Origin(service="billing", host="web-1", pid=1, code="reports/a.py:1")
    sessions = (
        Session(pid=10, user="admin", origin=reports),
        Session(pid=11, user="app", application="billing[1]@web-1", origin=reports),
        # Claims to be the reaper's own process and a superuser's code: still spared.
        Session(pid=1, user="app", origin=reports),
        Session(pid=12, user="app", is_superuser=True, origin=reports),
        Session(pid=13, user="app", origin=reports),
    )
    sweep = decide(policy, _snapshot(*sessions), now=0.0)
    assert [d.session.pid for d in sweep.to_act()] == [13]
    assert sorted(pid.pid for _, pid, _ in sweep.protected) == [1, 10, 11, 12]


# --------------------------------------------------------------------------- the client's caches


def test_a_statement_is_tagged_once_then_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionward.integrations import _origin

    comment = _origin.Comment("/*sw_code='a.py%3A1'*/")
    first = _origin.tagged("SELECT %s", comment, True)
    assert first == "SELECT %s /*sw_code='a.py%%3A1'*/"
    assert _origin.tagged("".join(["SELECT ", "%s"]), comment, True) is first  # an equal text
    assert _origin.tagged("SELECT %s", comment, False) == "SELECT %s /*sw_code='a.py%3A1'*/"
    # Not strings, or not hashable: sent as they are.
    assert _origin.tagged(b"SELECT 1", comment, False) == b"SELECT 1"
    unhashable = ["SELECT 1"]
    assert _origin.tagged(unhashable, comment, False) is unhashable
    # A long statement is tagged each time, not kept; the cache is bounded.
    long = "SELECT 1" + " " * _origin._MAX_CACHED_STATEMENT_CHARS
    assert _origin.tagged(long, comment, False).endswith(comment.text)
    assert (long, comment.text) not in _origin._tagged_statements
    monkeypatch.setattr(_origin, "_MAX_TAGGED_STATEMENTS", 3)
    for n in range(10):
        _origin.tagged(f"SELECT {n}", comment, False)
    assert len(_origin._tagged_statements) <= 3


def test_a_sites_comment_is_built_once_and_again_after_a_fork(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sessionward.integrations import _origin

    built: list[Origin] = []
    real = _origin.encode_comment

    def counting(origin: Origin, max_bytes: int = 512) -> str:
        built.append(origin)
        return real(origin, max_bytes)

    monkeypatch.setattr(_origin, "encode_comment", counting)
    tagger = _origin.Tagger("billing", 512, host="web-1")
    site = test_a_sites_comment_is_built_once_and_again_after_a_fork.__code__
    key = (id(site), 4, "Thread-7 (work)")
    assert tagger.cached(key) is None
    made = tagger.remember(key, key[2], "a.py:1", site)
    assert made.site is site  # keeps the code, so its id is not reused while cached
    assert tagger.cached(key) is made
    assert [(o.holder, o.code) for o in built] == [("Thread (work)", "a.py:1")]
    monkeypatch.setattr(_origin, "_pid", [_origin._pid[0] + 1])  # as after a fork
    assert tagger.cached(key) is None
    again = tagger.remember(key, key[2], "a.py:1", site)
    parsed = parse_origin(None, "SELECT 1 " + again.text)
    assert parsed is not None
    assert parsed.pid == _origin._pid[0]


def test_a_tagging_cursor_class_per_slot_forwards_what_it_was_given() -> None:
    from sessionward.integrations import _origin

    calls: list[tuple[object, ...]] = []

    class Cursor:
        def execute(self, query: object, params: object = None, *, prepare: object = None):
            calls.append((query, params, prepare))

        def executemany(self, query: object, rows: object) -> None:
            calls.append((query, rows))

    one, two = _origin.Slot(), _origin.Slot()
    first = _origin.tagging_class(Cursor, percent=True, many=True, slot=one)
    second = _origin.tagging_class(first, percent=True, many=True, slot=two)  # not stacked
    assert first is not second
    assert first.__mro__[1] is second.__mro__[1]  # one shared class with the methods
    assert sum(issubclass(c, _origin._Tagging) for c in second.__mro__) == 3
    first().execute("SELECT 1")
    one.comment = _origin.Comment("/*sw_holder='a%2Fb'*/")
    two.comment = _origin.Comment("/*sw_holder='c'*/")
    first().execute("SELECT 1")
    first().execute("SELECT %s", (1,))
    first().execute("SELECT %s", params=(1,), prepare=True)
    first().executemany("INSERT %s", [(1,)])
    second().execute("SELECT 1")
    assert calls == [
        ("SELECT 1", None, None),
        ("SELECT 1 /*sw_holder='a%2Fb'*/", None, None),
        ("SELECT %s /*sw_holder='a%%2Fb'*/", (1,), None),
        ("SELECT %s /*sw_holder='a%%2Fb'*/", (1,), True),
        ("INSERT %s /*sw_holder='a%%2Fb'*/", [(1,)]),
        ("SELECT 1 /*sw_holder='c'*/", None, None),
    ]
