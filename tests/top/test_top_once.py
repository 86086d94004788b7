"""``sessionward top --once``: one frame from a real server, and what a refresh costs it."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
import types
from collections.abc import Iterator

import psycopg
import pytest

import sessionward
from sessionward.core import SessionFilter
from sessionward.interfaces.top._frame import header_dict, take_frame
from tests.fix_servers import wait_until
from tests.top._helpers import lock_chain


def test_once_json_has_header_sessions_and_the_forest(server, victims, run_cli):
    db = server.create_database()
    user = server.create_user()
    root, middle, tail = lock_chain(server, victims, user=user, database=db)

    def frame() -> dict:
        result = run_cli("top", "--once", "--json", "--dsn", server.url, "--user", user)
        assert result.code == 0, result.err
        return json.loads(result.out)

    document = wait_until(lambda: (d := frame())["header"]["blocked"] == 2 and d, timeout=30)
    header = document["header"]
    assert document["schema"] == "sessionward.top/1"
    engines = ("postgresql",) if server.engine == "postgresql" else ("mariadb", "mysql")
    assert header["engine"] in engines
    assert header["version"]
    assert header["sessions"] == 3
    assert sum(header["states"].values()) == 3
    assert header["longest_transaction"]["pid"] == root.pid
    assert header["cost_ms"] > 0
    assert header["queries"] == (1 if server.engine == "postgresql" else 2)
    assert {s["pid"] for s in document["snapshot"]["sessions"]} == {root.pid, middle.pid, tail.pid}
    (tree,) = [t for t in document["forest"] if t["pid"] == root.pid]
    assert tree["waiting_total"] == 2
    assert [w["pid"] for w in tree["waiters"]] == [middle.pid]
    assert [w["pid"] for w in tree["waiters"][0]["waiters"]] == [tail.pid]

    result = run_cli("top", "--once", "--csv", "--dsn", server.url, "--user", user)
    assert result.code == 0, result.err
    rows = {int(r["pid"]): r for r in csv.DictReader(io.StringIO(result.out))}
    assert set(rows) == {root.pid, middle.pid, tail.pid}
    assert rows[root.pid]["holds_up"] == "2"
    assert rows[tail.pid]["holds_up"] == "0"

    result = run_cli("top", "--once", "--dsn", server.url, "--user", user)
    assert result.code == 0, result.err
    first = result.out.splitlines()[0]
    assert "3 sessions" in first
    assert "2 blocked" in first
    assert f"longest xact: pid {root.pid}" in first
    assert f"· {header['queries']} quer" in first
    assert result.out.index(str(root.pid)) < result.out.index("lock waits")


@contextlib.contextmanager
def statements_on_the_wire(control: sessionward.SessionControl) -> Iterator[list[int]]:
    """Count the statements the monitoring connection itself sends while in the block.

    MariaDB/MySQL: the server's own ``Questions`` counter of that session, read on
    that connection (the reads themselves taken off).  PostgreSQL has no per-session
    statement counter: libpq traces the protocol messages on that connection, and each
    statement is one ``Execute`` (extended protocol) or ``Query`` (simple protocol).
    """
    counted: list[int] = []
    conn = control.backend._conn  # the real monitoring connection, not a stand-in
    if control.backend.server.engine == "postgresql":
        with tempfile.TemporaryFile() as log:
            fd = os.dup(log.fileno())
            conn.pgconn.trace(fd)
            conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
            try:
                yield counted
            finally:
                conn.pgconn.untrace()  # flushes the trace
                os.close(fd)
            log.seek(0)
            messages = [line.split("\t") for line in log.read().decode().splitlines()]
        counted.append(sum(1 for m in messages if m[0] == "F" and m[2] in ("Execute", "Query")))
        return

    def questions() -> int:
        with conn.cursor() as cursor:
            cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
            return int(cursor.fetchone()[1])

    first = questions()
    own_read = questions() - first  # what one of these reads adds to the counter
    before = questions()
    yield counted
    counted.append(questions() - before - own_read)


def test_a_refresh_takes_at_most_two_queries_whatever_the_number_of_sessions(server, victims):
    db = server.create_database()
    user = server.create_user()
    only_ours = SessionFilter(users=(user,))
    with sessionward.connect(server.url) as control:
        # A lock chain, so the refresh reads the lock waits too (MariaDB: the second query).
        root = lock_chain(server, victims, user=user, database=db)[0]
        wait_until(
            lambda: [(n.pid, len(n.descendants())) for n in take_frame(
                control, only_ours, sort="pid").forest] == [(root.pid, 2)],
            timeout=30,
        )  # fmt: skip
        counts = []
        for extra in (0, 55):
            for _ in range(extra):
                victims(server, database=db, user=user).run("SELECT 1")
            with statements_on_the_wire(control) as counted:
                frame = take_frame(control, only_ours, sort="pid")
            (sent,) = counted
            counts.append(sent)
            assert len(frame.shown) == 3 + extra
            assert [(n.pid, len(n.descendants())) for n in frame.forest] == [(root.pid, 2)]
            # The header says what the server saw.
            assert frame.queries == sent
            assert header_dict(frame)["queries"] == sent
    assert counts[0] == counts[1], counts
    # PostgreSQL: the whole frame, ages and lock waits included, is one catalog query;
    # MariaDB: the process list with its clock and superusers, then the lock waits.
    assert counts[0] == (1 if server.engine == "postgresql" else 2), counts


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--json",), "--json and --csv need --once"),
        (("--once", "--json", "--csv"), "choose one of --json and --csv"),
        (("--interval", "0.1s"), "--interval: at least 0.2s"),
        (("--once", "--idle-over", "soon"), "not a duration: 'soon'"),
        # The live view refuses a standard input and output that are not a terminal.
        ((), "the live view needs a terminal"),
    ],
)
def test_bad_top_input_is_one_line_and_exit_2(pg, run_cli, args, expected):
    result = run_cli("top", "--dsn", pg.url, *args)
    assert result.code == 2, result
    assert result.err.count("\n") == 1, result.err
    assert expected in result.err
    assert result.out == ""


class _Terminal:
    def isatty(self) -> bool:
        return True


def test_a_terminal_too_small_for_the_live_view_is_one_line(pg, run_cli, monkeypatch):
    from sessionward.interfaces.top import _live

    monkeypatch.setattr(_live, "sys", types.SimpleNamespace(stdin=_Terminal(), stdout=_Terminal()))
    monkeypatch.setattr(_live.shutil, "get_terminal_size", lambda: os.terminal_size((50, 10)))
    result = run_cli("top", "--dsn", pg.url)
    assert result.code == 2, result
    assert result.err == (
        "sessionward: error: terminal too small (50x10); the live view needs at least 60x16\n"
    )
