"""How a frame is stored: the snapshot's JSON form by column, each column in the shape
that compresses best, and most frames only as what changed since a keyframe.

A column of one session field compresses far better than rows; on top of that:

- integers (pids, ports) as differences from the previous one (a run of 1s);
- floats as whole milliseconds (the ages; no decimal point to store);
- text and other values that repeat (states, users, applications) as a list of the
  distinct values and one small index per session.

A *keyframe* holds every session.  A *delta* frame names the keyframe it is read
against (``frames.base_id``) and holds, per column, only the sessions whose value
differs from that keyframe's session of the same pid: on a real server most sessions
and most of their fields (client, user, database, start) do not change from one
frame to the next.  Reading any frame so decompresses at most two blobs, whatever the
length of the recording, which keeps ``history --at`` fast.

Format 1 (schema 1 files) stored plain columns; ``decode`` still reads it.
"""

from __future__ import annotations

import json
import lzma
from collections.abc import Mapping, Sequence
from typing import Any

#: The ``format`` a document of this module carries (absent: format 1).
FORMAT = 2
#: Fields derived on reading, not stored.
_DERIVED = frozenset({"blocking"})

Row = dict[str, Any]


def compress(document: Mapping[str, Any]) -> bytes:
    text = json.dumps(document, separators=(",", ":"))
    # xz keeps a CRC: a damaged frame is reported as corrupt, not read as other data.
    return lzma.compress(text.encode("utf-8"), preset=6, check=lzma.CHECK_CRC32)


def decompress(data: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(lzma.decompress(data).decode("utf-8"))
    return document


def encode(
    document: Mapping[str, Any], *, key_rows: Mapping[int, Row] | None = None
) -> dict[str, Any]:
    """The stored form of a snapshot's JSON form; against ``key_rows`` (a keyframe's
    sessions by pid, as ``decode`` returns them) when given."""
    stored = {name: value for name, value in document.items() if name != "sessions"}
    rows = [_rounded(row) for row in document["sessions"]]
    names = [name for name in (rows[0] if rows else ()) if name not in _DERIVED]
    stored["format"] = FORMAT
    stored["count"] = len(rows)
    columns: dict[str, Any] = {}
    for name in names:
        values = [row[name] for row in rows]
        if key_rows is None or name == "pid":
            columns[name] = _column(values)
            continue
        changed = [
            i
            for i, row in enumerate(rows)
            if (old := key_rows.get(row["pid"])) is None
            or name not in old
            or old[name] != row[name]
        ]
        if len(changed) == len(rows):
            columns[name] = _column(values)
        else:
            columns[name] = {"changed": _deltas(changed), **_column([values[i] for i in changed])}
    stored["columns"] = columns
    return stored


def decode(
    stored: Mapping[str, Any], *, key_rows: Mapping[int, Row] | None = None
) -> dict[str, Any]:
    """The snapshot's JSON form back from ``encode`` (or a format 1 document).

    A delta frame needs ``key_rows``: its keyframe's sessions by pid.
    """
    document = {
        name: value for name, value in stored.items() if name not in ("columns", "count", "format")
    }
    count = stored["count"]
    columns = stored["columns"]
    if stored.get("format") is None:  # format 1: plain lists
        document["sessions"] = [{name: values[i] for name, values in columns.items()}
                                for i in range(count)]  # fmt: skip
        return document
    rows: list[Row] = [{} for _ in range(count)]
    pending: list[tuple[str, list[int], list[Any]]] = []
    for name, column in columns.items():
        values = _values(column)
        if "changed" in column:
            pending.append((name, _undeltas(column["changed"]), values))
            continue
        if len(values) != count:
            raise ValueError(f"column {name!r} has {len(values)} values for {count} sessions")
        for row, value in zip(rows, values, strict=True):
            row[name] = value
    if pending:
        # "pid" is never left out of a delta: it names each session's keyframe row.
        if key_rows is None:
            raise ValueError("a delta frame without its keyframe")
        for name, changed, values in pending:
            for row in rows:
                row[name] = key_rows[row["pid"]][name] if row["pid"] in key_rows else None
            for i, value in zip(changed, values, strict=True):
                rows[i][name] = value
    document["sessions"] = rows
    return document


def by_pid(document: Mapping[str, Any]) -> dict[int, Row]:
    """A decoded keyframe's sessions by pid: what its deltas are read against."""
    return {int(row["pid"]): row for row in document["sessions"]}


def _rounded(row: Mapping[str, Any]) -> Row:
    """Ages to the millisecond, as they are stored (so a delta compares stored values)."""
    return {name: round(v, 3) if isinstance(v, float) else v for name, v in row.items()}


def _column(values: Sequence[Any]) -> dict[str, Any]:
    """``values`` in the shape that compresses best.

    >>> _column([10, 11, 12, None])
    {'int': [10, 1, 1, None]}
    >>> _column([1.5, None, 0.25])
    {'ms': [1500, None, 250]}
    >>> _column(["idle", "active", "idle", "idle"])
    {'distinct': ['idle', 'active'], 'index': [0, 1, 0, 0]}
    """
    present = [v for v in values if v is not None]
    if present and all(type(v) is int for v in present):
        return {"int": _deltas(values)}
    if present and all(type(v) is float for v in present):
        return {"ms": [None if v is None else round(v * 1000) for v in values]}
    keys = [json.dumps(v, sort_keys=True) for v in values]
    distinct = list(dict.fromkeys(keys))
    if len(distinct) * 2 <= len(values):
        position = {key: i for i, key in enumerate(distinct)}
        return {"distinct": [json.loads(k) for k in distinct], "index": [position[k] for k in keys]}
    return {"list": list(values)}


def _values(column: Mapping[str, Any]) -> list[Any]:
    if "int" in column:
        return _undeltas(column["int"])
    if "ms" in column:
        return [None if v is None else v / 1000 for v in column["ms"]]
    if "distinct" in column:
        distinct = column["distinct"]
        return [distinct[i] for i in column["index"]]
    return list(column["list"])


def _deltas(values: Sequence[int | None]) -> list[int | None]:
    """Each integer as its difference from the previous one (``None`` kept).

    >>> _deltas([5, 7, None, 6])
    [5, 2, None, -1]
    >>> _undeltas(_deltas([5, 7, None, 6]))
    [5, 7, None, 6]
    """
    out: list[int | None] = []
    previous = 0
    for value in values:
        if value is None:
            out.append(None)
        else:
            out.append(value - previous)
            previous = value
    return out


def _undeltas(values: Sequence[int | None]) -> list[Any]:
    out: list[int | None] = []
    previous = 0
    for value in values:
        if value is None:
            out.append(None)
        else:
            previous += value
            out.append(previous)
    return out
