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
decision ends up with exactly one outcome.  The file may hold months of
records: recovery streams it a line at a time, keeping only the ids of open
decisions, and reads a line longer than ``MAX_LINE_BYTES`` (a huge query
text) only for its type and id.  Only a regular file is taken: a device such
as ``/dev/full`` would read forever, and a FIFO would block.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import json
import os
import re
import stat
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, BinaryIO, Protocol

from ...core import AuditUnavailable, ConfigurationError, Session, Snapshot
from ...core._snapshot_json import snapshot_to_dict
from .._files import require_regular_or_missing

UNKNOWN = "unknown"
RECOVERED_DETAIL = (
    "the reaper stopped between recording this decision and its outcome; "
    "the session may or may not have been signalled"
)


#: The longest audit line parsed whole; a longer one is read only for its type and id.
MAX_LINE_BYTES = 16 << 20
#: How much of an over-long line is kept to find its type and id.
_HEAD_BYTES = 512
_SKIP_BYTES = 1 << 20
#: The start of every record this module writes (``json.dumps`` keeps key order).
_HEAD = re.compile(rb'\{"type":"(decision|outcome|report)","id":"([0-9A-Za-z_-]{1,64})"')


@dataclasses.dataclass(frozen=True, slots=True)
class OwnConnection:
    """One of the reaper's own connections, as the server it is on lists it."""

    pid: int
    #: When the server says it began (PostgreSQL), or ``None``.
    started_at: dt.datetime | None
    user: str | None
    application: str

    def is_session(self, session: Session) -> bool:
        """Whether ``session`` (on whichever server) is this connection.

        With a start time on both sides the pid and the instant decide.  Else
        (MariaDB/MySQL, or a role that may not see others' start times) the pid
        decides unless what is shown of the user or application differs: a
        stranger with the same pid on another server is, at worst, spared.
        """
        if session.pid != self.pid:
            return False
        if self.started_at is not None and session.started_at is not None:
            try:
                return dt.datetime.fromisoformat(session.started_at) == self.started_at
            except (TypeError, ValueError):
                return True  # the pid matches and the times cannot be compared: spare it
        if session.application is not None and session.application != self.application:
            return False
        return session.user is None or self.user is None or session.user == self.user


class AuditSink(Protocol):
    """Somewhere the reaper's records go, durably and in order."""

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        """Return once ``records`` are durable; raise when decisions among them are not."""

    def recover(self) -> list[dict[str, Any]]:
        """Give every decision left without an outcome an ``unknown`` one; return those."""

    def own_connections(self) -> tuple[OwnConnection, ...]:
        """The connections this sink holds to a server: never to be ended."""

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

    def own_connections(self) -> tuple[OwnConnection, ...]:
        return tuple(own for sink in self.sinks for own in sink.own_connections())

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
        require_regular_or_missing(path, what="audit file")
        try:
            # Non-blocking, so a FIFO put there since the check fails instead of waiting.
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
            self._fd = os.open(path, flags, 0o640)
        except OSError as error:
            raise ConfigurationError(f"cannot open audit file {path}: {error.strerror}") from None
        if not stat.S_ISREG(os.fstat(self._fd).st_mode):
            os.close(self._fd)
            raise ConfigurationError(f"cannot use audit file {path}: not a regular file")
        fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        # A crash mid-write leaves a torn last line: end it, so the next record stands alone.
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
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
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with open(fd, "rb") as file:
                if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since it was opened
                    raise ConfigurationError(
                        f"cannot use audit file {self.path}: not a regular file"
                    )
                pending = open_decisions(_records(file))
        except OSError as error:
            raise ConfigurationError(
                f"cannot read audit file {self.path}: {error.strerror}"
            ) from None
        added = [
            {"type": "outcome", "id": i, "time": now_iso(), "outcome": UNKNOWN,
             "detail": RECOVERED_DETAIL}
            for i in pending
        ]  # fmt: skip
        self.write(added)
        return added

    def own_connections(self) -> tuple[OwnConnection, ...]:
        return ()

    def close(self) -> None:
        os.close(self._fd)


def new_id() -> str:
    return uuid.uuid4().hex


def read_records(path: str) -> list[dict[str, Any]]:
    """Every complete record of an audit file; a torn line (a crash mid-write) is skipped.

    A line over ``MAX_LINE_BYTES`` gives only its ``type`` and ``id``.
    """
    require_regular_or_missing(path, what="audit file")
    try:
        with open(path, "rb") as file:
            return list(_records(file))
    except FileNotFoundError:
        return []


def open_decisions(records: Iterable[dict[str, Any]]) -> list[str]:
    """The ids of decisions that have no outcome yet, in file order."""
    pending: dict[str, None] = {}
    for record in records:
        found = record.get("id")
        if not isinstance(found, str):
            continue
        if record.get("type") == "decision":
            pending[found] = None
        elif record.get("type") == "outcome":
            pending.pop(found, None)
    return list(pending)


def _records(file: BinaryIO) -> Iterator[dict[str, Any]]:
    """Each record of an audit file, read a line at a time; what is not one is skipped."""
    for line, whole in _lines(file):
        if whole:
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # not JSON, not UTF-8, or absurdly nested
                continue
            if isinstance(record, dict):
                yield record
            continue
        head = _HEAD.match(line)
        if head is not None:
            yield {"type": head[1].decode(), "id": head[2].decode()}


def _lines(file: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """Each line and True; for a line over ``MAX_LINE_BYTES``, its start and False.

    Memory stays under ``MAX_LINE_BYTES`` however long a line is.
    """
    while True:
        line = file.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if line.endswith(b"\n") or len(line) <= MAX_LINE_BYTES:
            yield line, True
            continue
        head = line[:_HEAD_BYTES]
        del line
        while True:
            rest = file.readline(_SKIP_BYTES)
            if not rest or rest.endswith(b"\n"):
                break
        yield head, False


def server_record(snapshot: Snapshot) -> dict[str, Any]:
    return dataclasses.asdict(snapshot.server)
