"""The reaper's write-ahead audit: where it goes (``AuditSink``), and the audit file.

The loop talks to one ``AuditSink``: the file (``AuditLog``, ``--audit``), the
table (``_audit_table.AuditTable``, ``--audit-dsn``), or both through
``AuditFanOut``.  ``write`` returns once the records are durable, and raises
when decisions among them are not, so the reaper never acts without its record.

The audit file: JSON lines, each decision fsynced before acting.

Records, one JSON object a line:

- ``{"type": "decision", "id", "time", "rule", "action", "dry_run", "why", "server", "session"}``
  written and fsynced *before* the session is signalled;
- ``{"type": "outcome", "id", "time", "outcome", "detail"}`` after the ending was verified
  (``outcome`` as ``sessionward terminate`` reports it: ``ended``, ``still running``, …);
- ``{"type": "report", "id", "time", "rule", "why", "server", "session"}`` for ``report`` rules,
  once per session and rule.

A decision whose outcome is missing (the reaper died between the two) gets an
``outcome`` of ``unknown`` the next time a reaper opens the file, so every
decision ends up with exactly one outcome.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ...core import AuditUnavailable, ConfigurationError, Session, Snapshot
from ...core._snapshot_json import snapshot_to_dict

UNKNOWN = "unknown"
RECOVERED_DETAIL = (
    "the reaper stopped between recording this decision and its outcome; "
    "the session may or may not have been signalled"
)


class AuditSink(Protocol):
    """Somewhere the reaper's records go, durably and in order."""

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        """Return once ``records`` are durable; raise when decisions among them are not."""

    def recover(self) -> list[dict[str, Any]]:
        """Give every decision left without an outcome an ``unknown`` one; return those."""

    def close(self) -> None: ...


class AuditFanOut:
    """Every record to each sink in turn.

    Put the sink most likely to fail first (the table before the file): when
    it refuses decisions, the later sinks never see them, so no sink holds a
    decision that was not acted on.
    """

    def __init__(self, sinks: Sequence[AuditSink]) -> None:
        self.sinks = tuple(sinks)

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        for sink in self.sinks:
            sink.write(records)

    def recover(self) -> list[dict[str, Any]]:
        return [record for sink in self.sinks for record in sink.recover()]

    def close(self) -> None:
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as error:  # close the others all the same
                errors.append(error)
        if errors:
            raise errors[0]


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def session_record(snapshot: Snapshot, session: Session) -> dict[str, Any]:
    rows: list[dict[str, Any]] = snapshot_to_dict(snapshot, sessions=[session])["sessions"]
    return rows[0]


class AuditLog:
    """Append records to ``path``; ``write`` returns once they are on disk."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as error:
            raise ConfigurationError(f"cannot open audit file {path}: {error.strerror}") from None
        # A crash mid-write leaves a torn last line: end it, so the next record stands alone.
        size = os.fstat(self._fd).st_size
        if size:
            with open(path, "rb") as file:
                file.seek(size - 1)
                if file.read(1) != b"\n":
                    os.write(self._fd, b"\n")

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, default=str, separators=(",", ":")) + "\n" for r in records)
        view = memoryview(data.encode("utf-8"))
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError as error:  # a full disk, say: record nothing, so end nothing
            raise AuditUnavailable(
                f"audit file {self.path} not written, so no session was signalled: {error.strerror}"
            ) from None

    def recover(self) -> list[dict[str, Any]]:
        """Close every decision left without an outcome; return the records added."""
        added = [
            {"type": "outcome", "id": i, "time": now_iso(), "outcome": UNKNOWN,
             "detail": RECOVERED_DETAIL}
            for i in open_decisions(read_records(self.path))
        ]  # fmt: skip
        self.write(added)
        return added

    def close(self) -> None:
        os.close(self._fd)


def new_id() -> str:
    return uuid.uuid4().hex


def read_records(path: str) -> list[dict[str, Any]]:
    """Every complete record of an audit file; a torn line (a crash mid-write) is skipped."""
    records = []
    try:
        with open(path, encoding="utf-8") as file:
            for line in file:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        return []
    return records


def open_decisions(records: Iterable[dict[str, Any]]) -> list[str]:
    """The ids of decisions that have no outcome yet, in file order."""
    pending: dict[str, None] = {}
    for record in records:
        if record.get("type") == "decision":
            pending[record["id"]] = None
        elif record.get("type") == "outcome":
            pending.pop(record.get("id", ""), None)
    return list(pending)


def server_record(snapshot: Snapshot) -> dict[str, Any]:
    return dataclasses.asdict(snapshot.server)
