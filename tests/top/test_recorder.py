"""The flight recorder against real servers: record a real lock chain, ask who blocked whom."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from sessionward.core import ServerInfo, Session, Snapshot
from sessionward.interfaces.recorder import Recorder, Recording
from tests.fix_servers import Server, wait_until
from tests.top._helpers import lock_chain, make_table, through_proxy


def _frames(run_cli, path) -> list[dict]:
    result = run_cli("history", str(path), "--between", "2000-01-01", "2100-01-01", "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_history_at_shows_the_root_blocker_and_its_waiters(server, victims, run_cli, tmp_path):
    db = server.create_database()
    user = server.create_user()
    root, middle, tail = lock_chain(server, victims, user=user, database=db)
    wait_until(
        lambda: (
            json.loads(run_cli("top", "--once", "--json", "--dsn", server.url, "--user", user).out)[
                "header"
            ]["blocked"]
            == 2
        ),
        timeout=30,
    )
    path = tmp_path / "incident.sqlite"
    result = run_cli("record", "--dsn", server.url, "--to", str(path), "--interval", "0.3s",
                     "--count", "3")  # fmt: skip
    assert result.code == 0, result.err
    frames = _frames(run_cli, path)
    assert len(frames) == 3
    assert all(any(r["pid"] == root.pid for r in f["roots"]) for f in frames)

    # Between the 2nd and 3rd frame: the 2nd is the nearest at or before.
    second = dt.datetime.fromisoformat(frames[1]["taken_at"])
    at = (second + dt.timedelta(milliseconds=100)).isoformat()
    result = run_cli("history", str(path), "--at", at, "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["taken_at"] == frames[1]["taken_at"]
    (tree,) = [t for t in document["forest"] if t["pid"] == root.pid]
    assert tree["waiting_total"] == 2
    assert [w["pid"] for w in tree["waiters"]] == [middle.pid]
    assert [w["pid"] for w in tree["waiters"][0]["waiters"]] == [tail.pid]
    # The recorder's own session is marked, and never a session of the frame.
    (own,) = document["own_pids"]
    assert own not in {s["pid"] for s in document["snapshot"]["sessions"]}
    assert own not in {t["pid"] for t in document["forest"]}

    result = run_cli("history", str(path), "--at", at, "--blockers")
    assert result.code == 0, result.err
    assert f"frame of {frames[1]['taken_at']}" in result.out
    assert result.out.index(str(root.pid)) < result.out.index(str(middle.pid))
    assert result.out.index(str(middle.pid)) < result.out.index(str(tail.pid))
    assert "blocks 2 sessions" in result.out

    start, end = frames[0]["taken_at"], frames[-1]["taken_at"]
    result = run_cli("history", str(path), "--between", start, end, "--pid", str(root.pid),
                     "--json")  # fmt: skip
    assert result.code == 0, result.err
    life = json.loads(result.out)
    assert [row["taken_at"] for row in life] == [f["taken_at"] for f in frames]
    assert all(row["blocking"] == [middle.pid] for row in life)
    assert all(row["state"] == "idle in transaction" for row in life)


def _env(server: Server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL"))}
    env["DATABASE_URL"] = server.url
    return env


def test_one_recorder_per_file_and_sigterm_leaves_the_file_whole(pg, run_cli, tmp_path):
    path = tmp_path / "rec.sqlite"
    child = subprocess.Popen(
        [sys.executable, "-m", "sessionward", "record", "--to", str(path), "--interval", "0.1s"],
        env=_env(pg), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: path.exists() and len(_frames(run_cli, path)) >= 3, timeout=20)
        second = run_cli("record", "--dsn", pg.url, "--to", str(path), "--count", "1")
        assert second.code == 2
        assert second.err.count("\n") == 1
        assert f"another sessionward record writes this file (pid {child.pid})" in second.err
        sent = time.monotonic()
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=5)
        assert time.monotonic() - sent < 1.5
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 143
    assert err == "sessionward: terminated\n"
    with closing(sqlite3.connect(path)) as conn, conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        orphans = conn.execute(
            "SELECT count(*) FROM edges WHERE frame_id NOT IN (SELECT id FROM frames)"
        ).fetchone()
        assert orphans == (0,)
    before = len(_frames(run_cli, path))
    again = run_cli("record", "--dsn", pg.url, "--to", str(path), "--count", "1")
    assert again.code == 0, again.err
    assert len(_frames(run_cli, path)) == before + 1


def test_recorder_waits_out_a_server_that_goes_away(server, run_cli, tmp_path):
    proxy, url = through_proxy(server.url)
    path = tmp_path / "rec.sqlite"
    env = _env(server)
    env["DATABASE_URL"] = url
    child = subprocess.Popen(
        [sys.executable, "-m", "sessionward", "record", "--to", str(path), "--interval", "0.1s"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: path.exists() and len(_frames(run_cli, path)) >= 2, timeout=20)
        proxy.down()
        proxy.cut()
        time.sleep(1.0)  # the recorder noticed; what it wrote before is all there is
        during = len(_frames(run_cli, path))
        time.sleep(1.0)
        assert len(_frames(run_cli, path)) == during
        assert child.poll() is None  # still running, retrying
        proxy.up()
        wait_until(lambda: len(_frames(run_cli, path)) >= during + 2, timeout=20)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=5)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        proxy.close()
    assert child.returncode == 143, err
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert lines[0].startswith("sessionward: server lost, retrying every 100ms: ")
    assert lines[1:] == ["sessionward: server back, recording again", "sessionward: terminated"]


def test_episodes_name_the_root_its_waiters_start_and_end(server, victims, run_cli, tmp_path):
    """A scripted incident: one session holds a row lock ~2.5 s while 4 others queue."""
    interval = 0.25
    db = server.create_database()
    user = server.create_user()
    make_table(server, db)
    path = tmp_path / "incident.sqlite"
    child = subprocess.Popen(
        [sys.executable, "-m", "sessionward", "record", "--to", str(path),
         "--interval", f"{interval}s"],
        env=_env(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: path.exists() and len(_frames(run_cli, path)) >= 2, timeout=20)
        holder = victims(server, database=db, user=user)
        holder.run("BEGIN")
        holder.run("UPDATE accounts SET balance = 0 WHERE id = 1")
        locked_at = dt.datetime.now(dt.timezone.utc)
        queue = [victims(server, database=db, user=user) for _ in range(4)]
        for waiter in queue:
            waiter.start("UPDATE accounts SET balance = balance + 1 WHERE id = 1")
        time.sleep(2.5)
        holder.run("ROLLBACK")
        released_at = dt.datetime.now(dt.timezone.utc)
        for waiter in queue:
            assert waiter.result()[1] is None
        time.sleep(4 * interval)
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=5)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    result = run_cli("history", str(path), "--episodes", "--json")
    assert result.code == 0, result.err
    (episode,) = [e for e in json.loads(result.out) if e["root_pid"] == holder.pid]
    assert episode["waiters"] == 4
    assert episode["waiter_pids"] == sorted(w.pid for w in queue)
    start = dt.datetime.fromisoformat(episode["start"])
    end = dt.datetime.fromisoformat(episode["end"])
    # Within one interval, plus what a loaded machine adds to a read (and MariaDB's clock
    # is read in whole microseconds from another process: a little slack).
    slack = dt.timedelta(seconds=interval + 0.5)
    assert locked_at - dt.timedelta(seconds=0.1) <= start <= locked_at + slack
    assert released_at - slack <= end <= released_at + dt.timedelta(seconds=0.1)
    # MariaDB dates a lock wait to the whole second (INNODB_TRX.trx_wait_started).
    shortest = 1.5 if server.engine == "postgresql" else 0.9
    assert shortest <= episode["longest_wait_seconds"] <= 3.5

    table = run_cli("history", str(path), "--episodes")
    assert table.code == 0, table.err
    (row,) = [line for line in table.out.splitlines() if line.split()[0] == str(holder.pid)]
    assert row.split()[4] == "4"


def _snapshot(taken_at: dt.datetime, *, sessions: int, seed: int) -> Snapshot:
    """A synthetic snapshot whose queries do not compress (the size cap must bite)."""
    rows = tuple(
        Session(
            pid=1000 + i,
            state="active",
            user="app",
            database="shop",
            query=f"SELECT '{os.urandom(48).hex()}' -- {seed}",
            blocked_by=(1000,) if i else (),
        )
        for i in range(sessions)
    )
    server = ServerInfo(engine="postgresql", version="15.20", version_num=150020, own_pid=1)
    return Snapshot(server=server, taken_at=taken_at, sessions=rows)


def test_retention_drops_frames_past_their_age(tmp_path):
    path = str(tmp_path / "r.sqlite")
    now = dt.datetime.now(dt.timezone.utc)
    with Recorder(path, interval_seconds=5, retain_seconds=7 * 86400, max_bytes=2**30) as rec:
        for days in (10, 8, 2, 0):
            rec.write(
                _snapshot(now - dt.timedelta(days=days), sessions=3, seed=days), own_pids=(1,)
            )
    with Recording(path) as recording:
        summary = recording.summary()
        assert summary.frames == 2
        assert summary.first is not None
        assert (now - summary.first).days == 2
    with closing(sqlite3.connect(path)) as conn, conn:
        (edges,) = conn.execute("SELECT count(*) FROM edges").fetchone()
        assert edges == 2 * 2  # two frames, two waits each: none left by dropped frames


def test_size_cap_keeps_the_file_under_it_and_the_newest_frames(tmp_path):
    path = str(tmp_path / "s.sqlite")
    cap = 128 * 1024
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    with Recorder(path, interval_seconds=5, retain_seconds=86400, max_bytes=cap) as rec:
        for i in range(120):
            rec.write(_snapshot(start + dt.timedelta(seconds=5 * i), sessions=20, seed=i),
                      own_pids=(1,))  # fmt: skip
            assert rec.size_bytes() <= cap, (i, rec.size_bytes())
    assert os.path.getsize(path) <= cap
    with Recording(path) as recording:
        summary = recording.summary()
        assert 1 < summary.frames < 120
        assert summary.last == start + dt.timedelta(seconds=5 * 119)


def test_bad_files_and_times_are_one_line_and_exit_2(run_cli, tmp_path):
    good = str(tmp_path / "good.sqlite")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    with Recorder(good, interval_seconds=5, retain_seconds=86400, max_bytes=2**30) as rec:
        rec.write(_snapshot(now, sessions=2, seed=0), own_pids=(1,))
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all\n" * 100)
    other = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(other)) as conn, conn:
        conn.execute("CREATE TABLE t (x int)")
    newer = tmp_path / "newer.sqlite"
    newer.write_bytes(Path(good).read_bytes())
    with closing(sqlite3.connect(newer)) as conn, conn:
        conn.execute("PRAGMA user_version = 99")
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(Path(good).read_bytes())
    with closing(sqlite3.connect(corrupt)) as conn, conn:
        conn.execute("UPDATE frames SET data = ?", (b"{nope",))

    cases = {
        (str(tmp_path / "missing.sqlite"),): "no such file",
        (str(text),): "not a sessionward recording",
        (str(other),): "not a sessionward recording",
        (str(newer),): "recorded by a newer sessionward (schema 99",
        (str(tmp_path),): "not a regular file",
        (good, "--at", "yesterday"): "not a time: 'yesterday'",
        (good, "--at", (now - dt.timedelta(hours=1)).isoformat()): "before the recording starts",
        (good, "--at", (now + dt.timedelta(hours=1)).isoformat()): "after the recording ends",
        (str(corrupt), "--at", now.isoformat()): "frame 1 is corrupt",
        (good, "--pid", "5"): "--pid needs --between",
        (good, "--episodes", "--at", now.isoformat()): "--episodes goes with --between only",
        (good, "--between", "2026-12-07 04:00", "2026-12-07 03:00"): "END is before START",
    }
    for args, expected in cases.items():
        result = run_cli("history", *args)
        assert result.code == 2, (args, result)
        assert result.err.count("\n") == 1, (args, result.err)
        assert expected in result.err, (args, result.err)
        assert "Traceback" not in result.err
    ok = run_cli("history", good, "--at", now.isoformat(), "--json")
    assert ok.code == 0, ok.err
    assert json.loads(ok.out)["taken_at"] == now.isoformat()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--max-size", "lots"), "not a size: 'lots'"),
        (("--max-size", "1KiB"), "--max-size: at least 64KiB"),
        (("--interval", "0s"), "--interval: at least 0.1s"),
    ],
)
def test_bad_record_options_are_one_line(run_cli, tmp_path, args, expected):
    result = run_cli("record", "--dsn", "postgresql://nobody@127.0.0.1:1/x",
                     "--to", str(tmp_path / "x.sqlite"), *args)  # fmt: skip
    assert result.code == 2
    assert result.err.count("\n") == 1, result.err
    assert expected in result.err


def _changing(index: int, taken_at: dt.datetime) -> Snapshot:
    """Sessions that come, go and change from frame to frame (ages to the millisecond)."""
    rows = tuple(
        Session(
            pid=pid,
            state=("idle", "active", "idle in transaction")[(pid + index) % 3],
            user="app" if pid % 2 else "batch",
            database="shop",
            client_addr=f"10.0.0.{pid}",
            query=f"SELECT {pid}" if pid % 4 else f"UPDATE t SET n = {index}",
            state_age_seconds=round(0.125 * index + pid / 1000, 3),
            xact_age_seconds=None if (pid + index) % 3 != 2 else 1.5 + index,
            blocked_by=(2,) if pid == 3 and 4 <= index <= 9 else (),
            wait="Lock:transactionid" if pid == 3 and 4 <= index <= 9 else None,
        )
        for pid in range(1 + index % 5, 12 + index % 7)  # pids leave and arrive
    )
    server = ServerInfo(engine="postgresql", version="15.20", version_num=150020, own_pid=1)
    return Snapshot(server=server, taken_at=taken_at, sessions=rows)


def test_keyframes_and_deltas_read_back_exactly_even_when_retention_cuts_a_keyframe(tmp_path):
    from sessionward.interfaces.recorder._store import KEYFRAME_EVERY

    path = str(tmp_path / "d.sqlite")
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
    written = [_changing(i, start + dt.timedelta(seconds=5 * i)) for i in range(3 * KEYFRAME_EVERY)]
    # Keep 100 s: the frame that falls out each time is older than the keyframe of some
    # frames kept, so those are stored again against a new keyframe.
    with Recorder(path, interval_seconds=5, retain_seconds=100, max_bytes=2**30) as rec:
        for snapshot in written:
            rec.write(snapshot, own_pids=(1,))
    with closing(sqlite3.connect(path)) as conn:
        keyframes, deltas = conn.execute(
            "SELECT count(*) FILTER (WHERE base_id IS NULL), count(base_id) FROM frames"
        ).fetchone()
        (dangling,) = conn.execute(
            "SELECT count(*) FROM frames WHERE base_id NOT IN (SELECT id FROM frames)"
        ).fetchone()
    assert keyframes >= 1, keyframes
    assert deltas >= 1, deltas
    assert dangling == 0
    with Recording(path) as recording:
        frames = list(recording.between(start, start + dt.timedelta(days=1)))
        kept = written[-len(frames) :]
        assert len(frames) == 21  # 100 s at 5 s, both ends included
        for frame, snapshot in zip(frames, kept, strict=True):
            assert frame.snapshot.taken_at == snapshot.taken_at
            assert frame.snapshot.sessions == snapshot.sessions
        # One frame alone (``--at``): its keyframe is read too.
        middle = recording.at_or_before(kept[10].taken_at)
        assert middle is not None
        assert middle.snapshot.sessions == kept[10].sessions


def test_a_schema_1_recording_is_read_and_then_appended_to(tmp_path, run_cli):
    """Files of the first schema (no deltas) are read as they are; a recorder adds the
    keyframe column before writing more."""
    import lzma

    from sessionward.core._snapshot_json import snapshot_to_dict
    from sessionward.interfaces.recorder._store import APPLICATION_ID

    path = str(tmp_path / "v1.sqlite")
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=5)
    old = _changing(4, start)
    document = snapshot_to_dict(old)
    rows = document.pop("sessions")
    document["count"] = len(rows)
    document["columns"] = {n: [r[n] for r in rows] for n in rows[0] if n != "blocking"}
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        conn.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE frames (id INTEGER PRIMARY KEY, taken_at REAL NOT NULL,"
            " own_pids TEXT NOT NULL, sessions INTEGER NOT NULL, waiting INTEGER NOT NULL,"
            " data BLOB NOT NULL);"
            "CREATE INDEX frames_taken_at ON frames (taken_at);"
            "CREATE TABLE edges (frame_id INTEGER NOT NULL, waiter INTEGER NOT NULL,"
            " blocker INTEGER NOT NULL);"
        )
        conn.execute(
            "INSERT INTO frames (taken_at, own_pids, sessions, waiting, data)"
            " VALUES (?, '[1]', ?, 1, ?)",
            (start.timestamp(), len(rows), lzma.compress(json.dumps(document).encode())),
        )
    with Recording(path) as recording:
        (frame,) = recording.between(start, start + dt.timedelta(days=1))
        assert frame.snapshot.sessions == old.sessions
    result = run_cli("history", path, "--at", start.isoformat(), "--json")
    assert result.code == 0, result.err

    later = [_changing(i, start + dt.timedelta(seconds=5 * i)) for i in range(1, 4)]
    with Recorder(path, interval_seconds=5, retain_seconds=86400, max_bytes=2**30) as rec:
        for snapshot in later:
            rec.write(snapshot, own_pids=(1,))
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    with Recording(path) as recording:
        frames = list(recording.between(start, start + dt.timedelta(days=1)))
        assert [f.snapshot.sessions for f in frames] == [old.sessions] + [s.sessions for s in later]
