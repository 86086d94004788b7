import dataclasses
import datetime as dt
import json
import re

import jsonschema
import pytest

from sessionward.core import (
    BACKGROUND,
    REPLICATION,
    SCHEMA_ID,
    ConfigurationError,
    ServerInfo,
    Session,
    Snapshot,
    dump_snapshot,
    load_snapshot,
    snapshot_from_dict,
    snapshot_json_schema,
    snapshot_to_dict,
)

RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)

FULL = Session(
    pid=4242,
    backend_kind="client",
    backend_type="client backend",
    database="shop",
    user="app",
    application="web-1 ✓",
    client_addr="2001:db8::7",
    client_port=51234,
    state="active",
    session_age_seconds=3600.25,
    xact_age_seconds=12.5,
    state_age_seconds=0.125,
    query_age_seconds=0.1,
    wait="Lock:transactionid",
    wait_age_seconds=0.05,
    wait_target="relation public.accounts",
    blocked_by=(4243,),
    query="UPDATE accounts SET balance = balance - 1 WHERE id = $1",
    is_superuser=False,
    xmin_age=17,
)
SNAPSHOT = Snapshot(
    server=ServerInfo(engine="postgresql", version="16.2", version_num=160002, own_pid=1),
    taken_at=dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc),
    sessions=(
        FULL,
        Session(pid=4243, state="idle in transaction", xact_age_seconds=100.0),
        Session(pid=2, backend_kind=BACKGROUND, backend_type="checkpointer"),
        Session(pid=3, backend_kind=REPLICATION, backend_type="walsender", state="active"),
    ),
    degraded=("wait_target: pg_locks is not readable",),
)
MARIADB = Snapshot(
    server=ServerInfo(engine="mariadb", version="11.4.2-MariaDB", version_num=110402, own_pid=9),
    taken_at=dt.datetime(2024, 5, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    sessions=(Session(pid=10, state="idle"),),
)


def validator():
    schema = snapshot_json_schema()
    checker = jsonschema.FormatChecker()
    checker.checks("date-time")(
        lambda value: not isinstance(value, str) or bool(RFC3339.match(value))
    )
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=checker)


@pytest.mark.parametrize("snap", [SNAPSHOT, MARIADB, SNAPSHOT.with_sessions(())])
def test_round_trip(snap):
    text = dump_snapshot(snap)
    back = load_snapshot(text)
    assert back == snap
    assert back.sessions == snap.sessions
    assert back.taken_at == snap.taken_at
    assert back.taken_at.utcoffset() == snap.taken_at.utcoffset()
    assert dump_snapshot(back) == text


def test_round_trip_keeps_the_lock_graph():
    back = load_snapshot(dump_snapshot(SNAPSHOT))
    assert back.blocking(4243) == (4242,)
    session = back.get(4242)
    assert session is not None
    assert session.blocked_by == (4243,)


@pytest.mark.parametrize("snap", [SNAPSHOT, MARIADB])
def test_output_validates_against_the_schema(snap):
    errors = list(validator().iter_errors(json.loads(dump_snapshot(snap))))
    assert errors == []


def test_a_bad_document_fails_the_schema():
    data = snapshot_to_dict(SNAPSHOT)
    data["taken_at"] = "yesterday"
    data["sessions"][0]["backend_kind"] = "thread"
    del data["sessions"][1]["xmin_age"]
    messages = sorted(e.message for e in validator().iter_errors(data))
    assert len(messages) == 3, messages


def test_dict_form():
    data = snapshot_to_dict(SNAPSHOT)
    assert data["schema"] == SCHEMA_ID == "sessionward.snapshot/1"
    assert data["taken_at"] == "2024-05-01T12:00:00.123456+00:00"
    assert data["server"] == {
        "engine": "postgresql",
        "version": "16.2",
        "version_num": 160002,
        "own_pid": 1,
    }
    assert data["degraded"] == ["wait_target: pg_locks is not readable"]
    first, second = data["sessions"][:2]
    assert first["blocked_by"] == [4243]
    assert first["blocking"] == []
    assert second["blocking"] == [4242]
    assert first["query"] == FULL.query


def test_every_session_field_is_documented_in_the_schema():
    # Adding a Session field without describing it in snapshot.schema.json fails here.
    rows = snapshot_json_schema()["properties"]["sessions"]["items"]
    fields = [f.name for f in dataclasses.fields(Session)]
    assert set(fields) <= set(rows["required"])
    assert set(fields) <= set(rows["properties"])
    # Everything the schema names is something we write.
    assert set(rows["required"]) == set(rows["properties"]) == {*fields, "blocking"}
    assert set(snapshot_to_dict(SNAPSHOT)["sessions"][0]) == set(rows["required"])


def test_every_server_field_is_documented_in_the_schema():
    server = snapshot_json_schema()["properties"]["server"]
    fields = {f.name for f in dataclasses.fields(ServerInfo)}
    assert set(server["required"]) == set(server["properties"]) == fields


def test_schema_identity():
    schema = snapshot_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["properties"]["schema"] == {"const": SCHEMA_ID}


def test_schema_is_a_fresh_copy():
    snapshot_json_schema()["properties"].clear()
    assert "sessions" in snapshot_json_schema()["properties"]


def test_load_tolerates_unknown_and_missing_optional_fields():
    data = snapshot_to_dict(MARIADB)
    data["sessions"][0]["added_in_a_later_minor_version"] = 1
    del data["sessions"][0]["xmin_age"]
    del data["degraded"]
    assert snapshot_from_dict(data) == MARIADB


# The README promises that within sessionward.snapshot/1 fields are only ever added:
# a reader ignores unknown ones at every level, whatever their type.
UNKNOWN_FIELDS = {
    "top level": ("hostname",),
    "server": ("server", "port"),
    "session": ("sessions", 0, "memory_bytes"),
    "nested object": ("sessions", 0, "tls"),
}


@pytest.mark.parametrize("where", list(UNKNOWN_FIELDS))
@pytest.mark.parametrize("value", [1, "x", None, [1, "a"], {"cipher": {"bits": 256}}, 1.5])
def test_load_ignores_unknown_fields_at_every_level(where, value):
    data = snapshot_to_dict(SNAPSHOT)
    *parents, last = UNKNOWN_FIELDS[where]
    target = data
    for key in parents:
        target = target[key]
    target[last] = value
    assert load_snapshot(json.dumps(data)) == SNAPSHOT


def test_schema_allows_unknown_fields_everywhere():
    schema = snapshot_json_schema()
    objects = [schema, schema["properties"]["server"], schema["properties"]["sessions"]["items"]]
    assert all(obj.get("additionalProperties") is True for obj in objects)


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ('"xact_age_seconds": 12.5', '"xact_age_seconds": NaN', "NaN is not a JSON number"),
        ('"xact_age_seconds": 12.5', '"xact_age_seconds": Infinity', "Infinity is not"),
        ('"xact_age_seconds": 12.5', '"xact_age_seconds": -Infinity', "-Infinity is not"),
        ('"xact_age_seconds": 12.5', '"xact_age_seconds": 1e999', "number or null, not inf"),
        ('"xmin_age": 17', '"xmin_age": -1e999', "integer or null, not -inf"),
    ],
)
def test_load_refuses_non_finite_numbers(old, new, words):
    document = dump_snapshot(SNAPSHOT)
    assert old in document
    with pytest.raises(ConfigurationError, match=re.escape(words)):
        load_snapshot(document.replace(old, new, 1))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"a":' * 100_000, "nested too deeply"),
        ("[" * 100_000, "nested too deeply"),
        ('{"pid": ' + "9" * 5000 + "}", "digits"),
    ],
)
def test_load_refuses_pathological_json_in_one_line(text, words):
    with pytest.raises(ConfigurationError, match=words) as raised:
        load_snapshot(text)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "text",
    ["", "not json", "{", "[]", "null", "42", '"sessionward.snapshot/1"'],
)
def test_load_rejects_non_snapshots(text):
    with pytest.raises(ConfigurationError):
        load_snapshot(text)


@pytest.mark.parametrize("schema", [None, "", "sessionward.snapshot/2", "sessionward.snapshot"])
def test_load_rejects_other_schema_ids(schema):
    data = snapshot_to_dict(SNAPSHOT)
    if schema is None:
        del data["schema"]
    else:
        data["schema"] = schema
    with pytest.raises(ConfigurationError, match="not a sessionward snapshot"):
        snapshot_from_dict(data)
    with pytest.raises(ConfigurationError, match="not a sessionward snapshot"):
        load_snapshot(json.dumps(data))


def _mutations():
    def drop(*path):
        def change(data):
            *parents, last = path
            target = data
            for key in parents:
                target = target[key]
            del target[last]

        return change

    def put(value, *path):
        def change(data):
            *parents, last = path
            target = data
            for key in parents:
                target = target[key]
            target[last] = value

        return change

    return {
        "no sessions": drop("sessions"),
        "no server": drop("server"),
        "no taken_at": drop("taken_at"),
        "no pid": drop("sessions", 0, "pid"),
        "no engine": drop("server", "engine"),
        "no own_pid": drop("server", "own_pid"),
        "no pid in a later session": drop("sessions", 2, "pid"),
        "sessions is an object": put({}, "sessions"),
        "sessions is a string": put("4242", "sessions"),
        "session is a list": put([1, 2], "sessions", 0),
        "pid is a string": put("4242", "sessions", 0, "pid"),
        "pid is a bool": put(True, "sessions", 0, "pid"),
        "pid is a float": put(4242.5, "sessions", 0, "pid"),
        "blocked_by is a string": put("4243", "sessions", 0, "blocked_by"),
        "blocked_by holds strings": put(["4243"], "sessions", 0, "blocked_by"),
        "age is a string": put("12s", "sessions", 0, "xact_age_seconds"),
        "is_superuser is a number": put(1, "sessions", 0, "is_superuser"),
        "unknown backend_kind": put("thread", "sessions", 0, "backend_kind"),
        "unknown engine": put("oracle", "server", "engine"),
        "server is a list": put([], "server"),
        "version_num is a string": put("160002", "server", "version_num"),
        "taken_at is garbage": put("yesterday", "taken_at"),
        "taken_at is a number": put(1714564800, "taken_at"),
        "degraded is a number": put(3, "degraded"),
        "degraded holds numbers": put([3], "degraded"),
    }


MUTATIONS = _mutations()


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_load_rejects_malformed_snapshots(name):
    data = snapshot_to_dict(SNAPSHOT)
    MUTATIONS[name](data)
    with pytest.raises(ConfigurationError, match="malformed snapshot"):
        load_snapshot(json.dumps(data))


def test_malformed_message_says_where():
    data = snapshot_to_dict(SNAPSHOT)
    data["sessions"][1]["pid"] = "4243"
    with pytest.raises(ConfigurationError, match=r"sessions\[1\]\.pid should be integer"):
        snapshot_from_dict(data)
