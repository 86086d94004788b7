"""The recording file: snapshots in SQLite (WAL), bounded by age and size.

One row per frame in ``frames`` (the snapshot's JSON form by column, xz-compressed, most
frames as a delta against a keyframe: see ``_codec``; with the pids of the recorder's own
sessions) and one row per lock wait in ``edges``.  The file
says what it is with ``PRAGMA application_id`` and its schema with ``user_version``: a
reader refuses anything else, and a file from a newer schema, in one line.

Only one recorder writes a file: it holds an exclusive ``flock`` on ``FILE.lock`` for
its lifetime (the kernel drops it when the process dies, however it dies).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import lzma
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...core import ConfigurationError, Snapshot, snapshot_from_dict
from ...core._snapshot_json import snapshot_to_dict
from . import _codec

#: ``PRAGMA application_id``: "SWrc", so ``file`` and a reader can tell the file apart.
APPLICATION_ID = 0x53577263
#: 2: frames as deltas against keyframes (``frames.base_id``); 1 is still read, and
#: a recorder appending to a schema 1 file adds the column first.
SCHEMA_VERSION = 2
#: A keyframe every this many frames (a minute at the default 5 s): the rest are
#: deltas against it, so reading any frame decompresses two blobs at most.
KEYFRAME_EVERY = 12
#: Below this a recording cannot hold the schema and a frame or two.
MIN_MAX_BYTES = 64 * 1024
PAGE_BYTES = 1024

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE frames (
    id INTEGER PRIMARY KEY,
    taken_at REAL NOT NULL,          -- server clock, seconds since the epoch (UTC)
    own_pids TEXT NOT NULL,          -- JSON list: the recorder's own sessions
    sessions INTEGER NOT NULL,
    waiting INTEGER NOT NULL,
    data BLOB NOT NULL,              -- xz(JSON snapshot by column, see _codec)
    base_id INTEGER                  -- the keyframe a delta is read against; NULL: a keyframe
);
CREATE INDEX frames_taken_at ON frames (taken_at);
CREATE TABLE edges (
    frame_id INTEGER NOT NULL,
    waiter INTEGER NOT NULL,
    blocker INTEGER NOT NULL
);
CREATE INDEX edges_frame ON edges (frame_id);
"""


@dataclass(frozen=True, slots=True)
class StoredFrame:
    """One recorded snapshot."""

    id: int
    taken_at: dt.datetime
    own_pids: tuple[int, ...]
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class Summary:
    frames: int
    first: dt.datetime | None
    last: dt.datetime | None
    interval_seconds: float | None


def _epoch(moment: dt.datetime) -> float:
    return moment.timestamp()


def _moment(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


class Recorder:
    """The writing side: one per file, refused while another holds the file."""

    def __init__(
        self, path: str, *, interval_seconds: float, retain_seconds: float, max_bytes: int
    ) -> None:
        if max_bytes < MIN_MAX_BYTES:
            raise ConfigurationError(f"--max-size: at least {MIN_MAX_BYTES // 1024}KiB")
        self.path = path
        self.retain_seconds = retain_seconds
        self.max_bytes = max_bytes
        self._lock_fd = _take_lock(path)
        try:
            self._conn = _open_for_writing(path, interval_seconds)
        except BaseException:
            os.close(self._lock_fd)
            raise
        #: The keyframe new frames are deltas against: its id, server and sessions by
        #: pid, and how many frames were written since; ``None``: the next is a keyframe.
        self._key: tuple[int, dict[str, Any], dict[int, _codec.Row]] | None = None
        self._since_key = 0

    def write(self, snapshot: Snapshot, *, own_pids: tuple[int, ...]) -> int:
        """Store one frame, then trim by age and size; return its id."""
        edges = [(s.pid, b) for s in snapshot.sessions for b in s.blocked_by]
        document = snapshot_to_dict(snapshot)
        key = self._key
        if key is not None and (
            self._since_key >= KEYFRAME_EVERY - 1 or key[1] != document["server"]
        ):
            key = None
        stored = _codec.encode(document, key_rows=None if key is None else key[2])
        with self._transaction():
            cursor = self._conn.execute(
                "INSERT INTO frames (taken_at, own_pids, sessions, waiting, data, base_id)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    _epoch(snapshot.taken_at),
                    json.dumps(list(own_pids)),
                    len(snapshot.sessions),
                    len({w for w, _ in edges}),
                    _codec.compress(stored),
                    None if key is None else key[0],
                ),
            )
            frame_id = cursor.lastrowid
            assert frame_id is not None
            self._conn.executemany(
                "INSERT INTO edges (frame_id, waiter, blocker) VALUES (?, ?, ?)",
                [(frame_id, w, b) for w, b in edges],
            )
        if key is None:
            # What the deltas will be compared with: the keyframe as a reader decodes it.
            rows = _codec.by_pid(_codec.decode(stored))
            self._key, self._since_key = (frame_id, document["server"], rows), 0
        else:
            self._since_key += 1
        self._trim(_epoch(snapshot.taken_at))
        return frame_id

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += os.path.getsize(self.path + suffix)
        return total

    def close(self) -> None:
        try:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
        finally:
            os.close(self._lock_fd)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            # A signal between two statements leaves no half frame behind.
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _trim(self, now: float) -> None:
        """Drop frames past the retention, then the oldest until the file fits."""
        self._delete_where("taken_at < ?", (now - self.retain_seconds,))
        self._shrink()
        while self.size_bytes() > self.max_bytes:
            (count,) = self._conn.execute("SELECT count(*) FROM frames").fetchone()
            if count <= 1:
                break  # the newest frame stays, whatever its size
            batch = max(1, count // 10)
            self._delete_where(
                "id IN (SELECT id FROM frames ORDER BY taken_at, id LIMIT ?)", (batch,)
            )
            self._shrink()

    def _delete_where(self, condition: str, params: tuple[Any, ...]) -> int:
        """Delete the frames matching ``condition``; the deltas that outlive their keyframe
        are stored again, against the first of them made a keyframe."""
        with self._transaction():
            doomed = [
                row[0]
                for row in self._conn.execute(f"SELECT id FROM frames WHERE {condition}", params)
            ]
            if not doomed:
                return 0
            self._conn.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY)")
            self._conn.execute("DELETE FROM temp.doomed")
            self._conn.executemany(
                "INSERT INTO temp.doomed (id) VALUES (?)", [(i,) for i in doomed]
            )
            orphans = self._conn.execute(
                "SELECT f.id, f.data, f.base_id, k.data"
                " FROM frames AS f JOIN frames AS k ON k.id = f.base_id"
                " WHERE f.base_id IN (SELECT id FROM temp.doomed)"
                " AND f.id NOT IN (SELECT id FROM temp.doomed) ORDER BY f.base_id, f.taken_at, f.id"
            ).fetchall()
            self._rekey(orphans)
            self._conn.execute("DELETE FROM edges WHERE frame_id IN (SELECT id FROM temp.doomed)")
            deleted = self._conn.execute(
                "DELETE FROM frames WHERE id IN (SELECT id FROM temp.doomed)"
            ).rowcount
        if self._key is not None and self._key[0] in doomed:
            self._key = None
        return deleted

    def _rekey(self, orphans: list[tuple[int, bytes, int, bytes]]) -> None:
        """Store ``orphans`` (id, data, keyframe id, keyframe data; by keyframe, oldest
        first) again: the first of each keyframe's as a keyframe, the others against it."""
        base_id: int | None = None
        old_key: dict[int, _codec.Row] = {}
        new_key: tuple[int, dict[int, _codec.Row]] | None = None
        for frame_id, data, frame_base_id, base_data in orphans:
            if frame_base_id != base_id:
                base_id, new_key = frame_base_id, None
                old_key = _codec.by_pid(_codec.decode(_codec.decompress(base_data)))
            document = _codec.decode(_codec.decompress(data), key_rows=old_key)
            stored = _codec.encode(document, key_rows=None if new_key is None else new_key[1])
            self._conn.execute(
                "UPDATE frames SET data = ?, base_id = ? WHERE id = ?",
                (_codec.compress(stored), None if new_key is None else new_key[0], frame_id),
            )
            if new_key is None:
                new_key = (frame_id, _codec.by_pid(_codec.decode(stored)))
        if orphans:
            self._key = None  # the writer's keyframe may have been one of them

    def _shrink(self) -> None:
        """Give freed pages back to the file system and empty the write-ahead log."""
        self._conn.execute("PRAGMA incremental_vacuum")
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _take_lock(path: str) -> int:
    lock_path = path + ".lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise ConfigurationError(f"{path}: cannot create {lock_path}: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise ConfigurationError(  # another recorder writes this file
                f"{path}: another sessionward record writes this file{who}"
            ) from None
        raise ConfigurationError(f"{path}: cannot lock {lock_path}: {error.strerror}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def _open_for_writing(path: str, interval_seconds: float) -> sqlite3.Connection:
    if not (os.path.exists(path) and os.path.getsize(path) > 0):
        _create(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as error:
        raise ConfigurationError(f"{path}: cannot open: {error}") from None
    try:
        if _check_file(conn, path) < SCHEMA_VERSION:
            _upgrade(conn)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('interval_seconds', ?)",
            (repr(float(interval_seconds)),),
        )
    except sqlite3.Error as error:
        conn.close()
        raise ConfigurationError(f"{path}: not a sessionward recording ({error})") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _create(path: str) -> None:
    """Make a new recording beside ``path`` and move it in place whole, so that a reader
    never sees a file without its schema."""
    draft = f"{path}.new-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(draft)
    try:
        conn = sqlite3.connect(draft, isolation_level=None)
        try:
            # Frames are a few KiB each: small pages waste less at the end of each one.
            # (SQLite takes the page size only before any other setting.)
            conn.execute(f"PRAGMA page_size = {PAGE_BYTES}")
            # Page reuse and shrinking need auto_vacuum set before the first table.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.executescript(_SCHEMA)
            conn.execute("PRAGMA journal_mode = WAL")  # kept in the file's header
        finally:
            conn.close()
        os.replace(draft, path)
    except (OSError, sqlite3.Error) as error:
        with contextlib.suppress(OSError):
            os.unlink(draft)
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise ConfigurationError(f"{path}: cannot create: {reason}") from None


def _upgrade(conn: sqlite3.Connection) -> None:
    """Make a schema 1 file take schema 2 frames: its frames stay keyframes (format 1)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE frames ADD COLUMN base_id INTEGER")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _check_file(conn: sqlite3.Connection, path: str) -> int:
    """The file's schema version, once it is known to be a recording this one reads."""
    (app_id,) = conn.execute("PRAGMA application_id").fetchone()
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if app_id != APPLICATION_ID:
        raise ConfigurationError(f"{path}: not a sessionward recording")
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"{path}: recorded by a newer sessionward (schema {version}; "
            f"this one reads up to {SCHEMA_VERSION})"
        )
    return int(version)


class Recording:
    """The reading side: a recording file opened read-only (a recorder may be writing)."""

    def __init__(self, path: str) -> None:
        if not os.path.exists(path):
            raise ConfigurationError(f"{path}: no such file")
        if not os.path.isfile(path):
            raise ConfigurationError(f"{path}: not a regular file")
        self.path = path
        try:
            self._conn = sqlite3.connect(
                f"file:{_uri_path(path)}?mode=ro", uri=True, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise ConfigurationError(f"{path}: cannot open: {error}") from None
        try:
            version = _check_file(self._conn, path)
            self._conn.execute("SELECT count(*) FROM frames").fetchone()
        except sqlite3.Error as error:
            self._conn.close()
            raise ConfigurationError(f"{path}: not a sessionward recording ({error})") from None
        except BaseException:
            self._conn.close()
            raise
        # Schema 1 has no deltas: every frame is a keyframe.
        base = "base_id" if version >= 2 else "NULL"
        self._columns = f"id, taken_at, own_pids, data, {base}"
        #: The last keyframe a delta was read against: its id and sessions by pid.
        self._key: tuple[int, dict[int, _codec.Row]] | None = None

    def summary(self) -> Summary:
        count, first, last = self._one("SELECT count(*), min(taken_at), max(taken_at) FROM frames")
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'interval_seconds'").fetchone()
        return Summary(
            frames=count,
            first=None if first is None else _moment(first),
            last=None if last is None else _moment(last),
            interval_seconds=float(row[0]) if row else None,
        )

    def at_or_before(self, moment: dt.datetime) -> StoredFrame | None:
        """The frame nearest ``moment`` that is not after it."""
        row = self._conn.execute(
            f"SELECT {self._columns} FROM frames WHERE taken_at <= ?"
            " ORDER BY taken_at DESC, id DESC LIMIT 1",
            (_epoch(moment),),
        ).fetchone()
        return None if row is None else self._frame(row)

    def between(self, start: dt.datetime, end: dt.datetime) -> Iterator[StoredFrame]:
        rows = self._conn.execute(
            f"SELECT {self._columns} FROM frames WHERE taken_at BETWEEN ? AND ?"
            " ORDER BY taken_at, id",
            (_epoch(start), _epoch(end)),
        )
        for row in rows:
            yield self._frame(row)

    def index(self) -> list[tuple[int, dt.datetime]]:
        """Every frame's id and time, oldest first (nothing decompressed)."""
        rows = self._conn.execute("SELECT id, taken_at FROM frames ORDER BY taken_at, id")
        return [(frame_id, _moment(taken_at)) for frame_id, taken_at in rows]

    def load(self, frame_id: int) -> StoredFrame:
        row = self._conn.execute(
            f"SELECT {self._columns} FROM frames WHERE id = ?", (frame_id,)
        ).fetchone()
        if row is None:
            raise ConfigurationError(f"{self.path}: frame {frame_id} is gone (retention)")
        return self._frame(row)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _one(self, sql: str) -> tuple[Any, ...]:
        try:
            row = self._conn.execute(sql).fetchone()
        except sqlite3.Error as error:
            raise ConfigurationError(f"{self.path}: unreadable recording ({error})") from None
        return tuple(row)

    def _frame(self, row: tuple[Any, ...]) -> StoredFrame:
        frame_id, taken_at, own_pids, data, base_id = row
        try:
            key_rows = None if base_id is None else self._key_rows(frame_id, base_id)
            document = _codec.decode(_codec.decompress(data), key_rows=key_rows)
            pids = tuple(int(p) for p in json.loads(own_pids))
        except (lzma.LZMAError, ValueError, TypeError, KeyError, IndexError) as error:
            raise ConfigurationError(
                f"{self.path}: frame {frame_id} is corrupt ({error})"
            ) from None
        return StoredFrame(
            id=frame_id,
            taken_at=_moment(taken_at),
            own_pids=pids,
            snapshot=snapshot_from_dict(document),
        )

    def _key_rows(self, frame_id: int, base_id: int) -> dict[int, _codec.Row]:
        """The sessions by pid of the keyframe ``base_id`` (kept for the next delta)."""
        if self._key is not None and self._key[0] == base_id:
            return self._key[1]
        row = self._conn.execute("SELECT data FROM frames WHERE id = ?", (base_id,)).fetchone()
        if row is None:
            raise ValueError(f"its keyframe {base_id} is gone")
        rows = _codec.by_pid(_codec.decode(_codec.decompress(row[0])))
        self._key = (base_id, rows)
        return rows


def _uri_path(path: str) -> str:
    from urllib.parse import quote

    return quote(os.path.abspath(path))
