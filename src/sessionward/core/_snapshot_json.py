"""The JSON form of a snapshot: ``sessionward ls --json`` writes it, later tools read it.

The schema is versioned by its ``schema`` key and described by
``snapshot.schema.json`` beside this module.  Within version 1, fields are only
ever added, never renamed or removed: a reader ignores the fields it does not know,
at every level, and tolerates the absence of any it can do without (all but
``taken_at``, ``server`` and its four keys, ``sessions`` and each session's ``pid``).
Numbers must be finite: ``NaN`` or ``Infinity`` in an age would match every rule or none.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
from collections.abc import Iterable
from importlib import resources
from typing import Any

from ._errors import ConfigurationError
from ._origin import Origin
from ._session import ServerInfo, Session, Snapshot

SCHEMA_ID = "sessionward.snapshot/1"
_SESSION_FIELDS = tuple(f.name for f in dataclasses.fields(Session))
_SERVER_FIELDS = tuple(f.name for f in dataclasses.fields(ServerInfo))
#: What a reader cannot do without; every other field has a default.
_REQUIRED_TOP = ("taken_at", "server", "sessions")
_REQUIRED_SESSION = ("pid",)


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
        row["origin"] = session.origin.as_dict() if session.origin is not None else None
        rows.append(row)
    return {
        "schema": SCHEMA_ID,
        "taken_at": snapshot.taken_at.isoformat(),
        "server": dataclasses.asdict(snapshot.server),
        "degraded": list(snapshot.degraded),
        "sessions": rows,
    }


def snapshot_from_dict(data: dict[str, Any]) -> Snapshot:
    """Rebuild a snapshot from its JSON form; raise ``ConfigurationError`` when it is not one.

    Unknown fields are ignored wherever they appear: later versions only add fields.
    """
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_ID:
        raise ConfigurationError(f"not a sessionward snapshot (expected schema {SCHEMA_ID!r})")
    problem = _type_problem(data, _schema(), "snapshot") or _missing_problem(data)
    if problem is not None:
        raise ConfigurationError(f"malformed snapshot: {problem}")
    try:
        sessions = tuple(_session_from_row(row) for row in data["sessions"])
        server = data["server"]
        return Snapshot(
            server=ServerInfo(**{name: server[name] for name in _SERVER_FIELDS}),
            taken_at=dt.datetime.fromisoformat(data["taken_at"]),
            sessions=sessions,
            degraded=tuple(data.get("degraded", ())),
        )
    except ValueError as error:  # taken_at is not an ISO 8601 time
        raise ConfigurationError(f"malformed snapshot: {error}") from None


def _missing_problem(data: dict[str, Any]) -> str | None:
    """Name the first field a reader cannot do without that ``data`` lacks."""
    for key in _REQUIRED_TOP:
        if key not in data:
            return f"snapshot has no {key!r}"
    for key in _SERVER_FIELDS:
        if key not in data["server"]:
            return f"snapshot.server has no {key!r}"
    for index, row in enumerate(data["sessions"]):
        for key in _REQUIRED_SESSION:
            if key not in row:
                return f"snapshot.sessions[{index}] has no {key!r}"
    return None


def _session_from_row(row: dict[str, Any]) -> Session:
    values: dict[str, Any] = {name: row[name] for name in _SESSION_FIELDS if name in row}
    values["blocked_by"] = tuple(values.get("blocked_by", ()))
    origin = values.get("origin")
    values["origin"] = _origin_from_dict(origin) if isinstance(origin, dict) else None
    return Session(**values)


def _origin_from_dict(data: dict[str, Any]) -> Origin:
    extra = data.get("extra")
    if not isinstance(extra, dict):
        extra = {}
    # Later versions may add keys; a value that is not text is not ours to show.
    clean = {k: v for k, v in extra.items() if isinstance(v, str)}
    return Origin.from_dict({**data, "extra": clean})


def dump_snapshot(snapshot: Snapshot) -> str:
    return json.dumps(snapshot_to_dict(snapshot), indent=2)


def load_snapshot(text: str) -> Snapshot:
    """Read a snapshot from its JSON text; any fault is one ``ConfigurationError`` line."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"snapshot is not JSON: {error}") from None
    except RecursionError:
        raise ConfigurationError("snapshot is not JSON: nested too deeply") from None
    except ValueError as error:  # NaN or Infinity, or an integer of too many digits
        reason = str(error).partition(";")[0]  # not Python's advice on raising the limit
        raise ConfigurationError(f"snapshot is not JSON: {reason}") from None
    return snapshot_from_dict(data)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


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
    # 1e999 reads as inf: no age or count is infinite.
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, _JSON_TYPES[name])


def _same(value: Any, option: Any) -> bool:
    return type(value) is type(option) and bool(value == option)
