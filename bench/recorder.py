"""What the flight recorder costs: bytes on disk, time to write a frame, time to answer.

Synthetic snapshots (no server): N sessions, most idle, one in five in a transaction,
every age and query id different at each frame (worse for compression than a real
server, where most sessions repeat from one frame to the next). It writes F frames,
then extrapolates to a day of frames every 5 s, and times ``history --at`` in the
middle of the file (opening the file included; the median of 5, since other work on
the machine can stall any single try).

Run: ``.venv/bin/python bench/recorder.py [--sessions 1000] [--frames 200]``.
It prints a Markdown table and exits non-zero when a day would take more than
200 MB or the answer more than 200 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sessionward.core import ServerInfo, Session, Snapshot
from sessionward.interfaces.recorder import Recorder, Recording

DAY_FRAMES = 86400 // 5
MAX_DAY_BYTES = 200e6
MAX_ANSWER_SECONDS = 0.2
START = dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)
_APPS = ("checkout", "billing", "api", "worker", "cron")
_STATES = ("idle", "idle", "idle", "active", "idle in transaction")


def synthetic(index: int, sessions: int, rnd: random.Random) -> Snapshot:
    rows = tuple(
        Session(
            pid=10000 + k,
            database="shop",
            user="app",
            application=rnd.choice(_APPS),
            client_addr=f"10.0.{k % 250}.{k % 200}",
            client_port=40000 + k,
            state=rnd.choice(_STATES),
            session_age_seconds=3600 + index * 5.0,
            state_age_seconds=rnd.random() * 100,
            xact_age_seconds=rnd.random() * 10 if k % 5 == 0 else None,
            query=f"SELECT * FROM orders WHERE id = {rnd.randint(1, 10**6)}",
            started_at="2026-12-07T00:00:00+00:00",
            wait="Client:ClientRead",
        )
        for k in range(sessions)
    )
    server = ServerInfo(engine="postgresql", version="15.20", version_num=150020, own_pid=1)
    taken_at = START + dt.timedelta(seconds=5 * index)
    return Snapshot(server=server, taken_at=taken_at, sessions=rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    rnd = random.Random(17)
    snapshots = [synthetic(i, args.sessions, rnd) for i in range(args.frames)]
    with tempfile.TemporaryDirectory() as directory:
        path = str(Path(directory) / "bench.sqlite")
        with Recorder(path, interval_seconds=5, retain_seconds=30 * 86400,
                      max_bytes=2**40) as recorder:  # fmt: skip
            started = time.perf_counter()
            for snapshot in snapshots:
                recorder.write(snapshot, own_pids=(1,))
            write_seconds = (time.perf_counter() - started) / args.frames
            frame_bytes = recorder.size_bytes() / args.frames
        # A delta frame, the slower kind to read (it needs its keyframe too).
        middle = START + dt.timedelta(seconds=5 * (args.frames // 2) + 2)
        answers = []
        for _ in range(5):
            started = time.perf_counter()
            with Recording(path) as recording:
                frame = recording.at_or_before(middle)
            answers.append(time.perf_counter() - started)
            assert frame is not None
            assert frame.snapshot.taken_at == snapshots[args.frames // 2].taken_at
            assert len(frame.snapshot.sessions) == args.sessions
        answer_seconds = statistics.median(answers)
    day_bytes = frame_bytes * DAY_FRAMES
    print("| sessions | bytes / frame | a day at 5 s | write a frame | history --at |")
    print("|---|---|---|---|---|")
    print(f"| {args.sessions} | {frame_bytes:,.0f} | {day_bytes / 1e6:,.0f} MB "
          f"| {write_seconds * 1000:.0f} ms | {answer_seconds * 1000:.0f} ms |")  # fmt: skip
    return int(day_bytes > MAX_DAY_BYTES or answer_seconds > MAX_ANSWER_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
