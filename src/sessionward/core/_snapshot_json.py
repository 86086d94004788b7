"""The JSON form of a snapshot: ``sessionward ls --json`` writes it, later tools read it.

The schema is versioned by its ``schema`` key and described by
``snapshot.schema.json`` beside this module.  Within version 1, fields are only
ever added, never renamed or removed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

from ._errors import ConfigurationError
from ._session import ServerInfo, Session, Snapshot

SCHEMA_ID = "sessionward.snapshot/1"
_SESSION_FIELDS = tuple(f.name for f in dataclasses.fields(Session))


def snapshot_to_dict(
    snapshot: Snapshot, *, sessions: Iterable[Session] | None = None
) -> dict[str, Any]:
    """The JSON form of ``snapshot``, or of a selection of its ``sessions``.

    ``blocking`` always comes from the whole snapshot, so a filtered listing
    still says whom each session blocks.
    """
    rows = []
    for session in snapshot.sessions if sessions is None else sessions:
        row = {name: getattr(session, name) for name in _SESSION_FIELDS}
        row["blocked_by"] = list(session.blocked_by)
        row["blocking"] = list(snapshot.blocking(session.pid))
        rows.append(row)
    return {
        "schema": SCHEMA_ID,
        "taken_at": snapshot.taken_at.isoformat(),
        "server": dataclasses.asdict(snapshot.server),
        "degraded": list(snapshot.degraded),
        "sessions": rows,
    }


def snapshot_from_dict(data: dict[str, Any]) -> Snapshot:
    """Rebuild a snapshot from its JSON form; raise ``ConfigurationError`` when it is not one."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_ID:
        raise ConfigurationError(f"not a sessionward snapshot (expected schema {SCHEMA_ID!r})")
    problem = _type_problem(data, _schema(), "snapshot")
    if problem is not None:
        raise ConfigurationError(f"malformed snapshot: {problem}")
    try:
        sessions = tuple(_session_from_row(row) for row in data["sessions"])
        return Snapshot(
            server=ServerInfo(**data["server"]),
            taken_at=dt.datetime.fromisoformat(data["taken_at"]),
            sessions=sessions,
            degraded=tuple(data.get("degraded", ())),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigurationError(f"malformed snapshot: {error}") from None


def _session_from_row(row: dict[str, Any]) -> Session:
    values: dict[str, Any] = {name: row[name] for name in _SESSION_FIELDS if name in row}
    values["blocked_by"] = tuple(values.get("blocked_by", ()))
    return Session(**values)


def dump_snapshot(snapshot: Snapshot) -> str:
    return json.dumps(snapshot_to_dict(snapshot), indent=2)


def load_snapshot(text: str) -> Snapshot:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"snapshot is not JSON: {error}") from None
    return snapshot_from_dict(data)


def snapshot_json_schema() -> dict[str, Any]:
    """The JSON Schema the snapshot form follows."""
    text = resources.files(__package__).joinpath("snapshot.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return snapshot_json_schema()


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "null": type(None),
    "boolean": bool,
    "integer": int,
    "number": (int, float),
    "string": str,
    "array": list,
    "object": dict,
}


def _type_problem(value: Any, schema: dict[str, Any], where: str) -> str | None:
    """Check the ``type``, ``enum``, ``items`` and ``properties`` keywords of ``schema``.

    Enough of JSON Schema that a loaded snapshot holds the types its dataclasses
    promise, without making ``jsonschema`` a dependency.
    """
    names = schema.get("type")
    if names is not None:
        names = [names] if isinstance(names, str) else names
        if not any(_is_json_type(value, name) for name in names):
            return f"{where} should be {' or '.join(names)}, not {value!r}"
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        return f"{where} should be one of {', '.join(map(repr, schema['enum']))}, not {value!r}"
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problem = _type_problem(item, schema["items"], f"{where}[{index}]")
            if problem is not None:
                return problem
    if isinstance(value, dict):
        for key, subschema in schema.get("properties", {}).items():
            if key in value:
                problem = _type_problem(value[key], subschema, f"{where}.{key}")
                if problem is not None:
                    return problem
    return None


def _is_json_type(value: Any, name: str) -> bool:
    # bool is an int in Python, never in JSON.
    if isinstance(value, bool):
        return name == "boolean"
    return isinstance(value, _JSON_TYPES[name])


def _same(value: Any, option: Any) -> bool:
    return type(value) is type(option) and bool(value == option)
