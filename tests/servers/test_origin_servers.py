"""Origins on real servers: what a client sends shows up in ls, blockers, policies and the audit.

PostgreSQL shows the last statement of an idle session, so an idle-in-transaction
session keeps its origin; MariaDB shows a statement only while it runs, so there
the sessions run a tagged ``SLEEP``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket

import jsonschema
import pytest

import sessionward
from sessionward.core import (
    Origin,
    application_name_for,
    encode_comment,
    snapshot_json_schema,
    with_comment,
)
from sessionward.interfaces.cli import main
from tests.fix_servers import Server, Victim, wait_until
from tests.reaper._helpers import ThreadedReaper, alive, prepare_table

REPORTS = Origin(service="billing", host="web-1", pid=4242, holder="Thread-3",
                 code="reports/daily.py:88")  # fmt: skip
API = Origin(service="billing", host="web-2", pid=77, holder="MainThread", code="api/views.py:12")


@pytest.fixture
def ended_after(victims):
    """Victims, ended on the server after the test: a MariaDB SLEEP would hold their close."""
    made: list[Victim] = []

    def make(*args, **kwargs) -> Victim:
        victim = victims(*args, **kwargs)
        made.append(victim)
        return victim

    yield make
    for victim in made:
        with contextlib.suppress(Exception):
            if victim.server.engine == "mysql":
                victim.server.execute(f"KILL {int(victim.pid)}")
            else:
                victim.server.execute("SELECT pg_terminate_backend(%s)", (victim.pid,))


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run ``sessionward ARGS`` in-process; return (exit code, stdout, stderr)."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        out, err = capsys.readouterr()
        return code, out, err

    return run


def tagged(server: Server, victims, origin: Origin, *, database: str, user: str,
           statement: str | None = None) -> Victim:  # fmt: skip
    """A session that holds a transaction (PostgreSQL) or runs a statement (MariaDB) as ``origin``.

    On PostgreSQL the application name carries service, pid and host; the comment
    carries all five.  MariaDB shows no application name without performance_schema.
    """
    name = None
    if server.engine == "postgresql" and origin.service and origin.host and origin.pid:
        name = application_name_for(origin.service, origin.pid, origin.host)
    victim = victims(server, database=database, user=user, application=name)
    comment = encode_comment(origin)
    if server.engine == "postgresql":
        victim.run("BEGIN")
        victim.run(with_comment(statement or "SELECT 1", comment))
    else:
        victim.start(with_comment(statement or server.sleep_sql(30), comment))
    return victim


def sessions(cli, server: Server, *args: str) -> dict[int, dict]:
    code, out, err = cli("ls", "--dsn", server.url, "--json", *args)
    assert code == 0, err
    document = json.loads(out)
    jsonschema.validate(document, snapshot_json_schema())
    return {row["pid"]: row for row in document["sessions"]}


def test_ls_shows_the_origin_in_json_csv_and_the_table(server, ended_after, cli):
    db, user = server.create_database(), server.create_user()
    victim = tagged(server, ended_after, REPORTS, database=db, user=user)
    plain = ended_after(server, database=db, user=user)
    plain.run("SELECT 1")

    rows = wait_until(lambda: (r := sessions(cli, server, "--user", user)).get(victim.pid)
                      and r[victim.pid]["origin"] and r)  # fmt: skip
    assert rows[victim.pid]["origin"] == REPORTS.as_dict()
    assert rows[plain.pid]["origin"] is None

    code, out, err = cli("ls", "--dsn", server.url, "--user", user)
    assert code == 0, err
    line = next(row for row in out.splitlines() if row.split()[:1] == [str(victim.pid)])
    assert "ORIGIN" in out
    assert "billing web-1[4242] Thread-3 reports/daily.py:88" in line

    code, out, err = cli("ls", "--dsn", server.url, "--user", user, "--csv")
    assert code == 0, err
    assert "billing web-1[4242] Thread-3 reports/daily.py:88" in out
    assert out.splitlines()[0].endswith(",origin")


def test_a_foreign_sqlcommenter_comment_lands_in_extra(server, ended_after, cli):
    db, user = server.create_database(), server.create_user()
    trace = "00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01"
    comment = (f"/*controller='index',framework='django%3A5.2',route='%2Fpolls%2F%7Bid%7D',"
               f"traceparent='{trace}'*/")  # fmt: skip
    victim = ended_after(server, database=db, user=user)
    if server.engine == "postgresql":
        victim.run("BEGIN")
        victim.run(f"SELECT 1 {comment}")
    else:
        victim.start(f"{server.sleep_sql(30)} {comment}")

    row = wait_until(
        lambda: sessions(cli, server, "--user", user).get(victim.pid, {}).get("origin")
    )
    assert row == {
        "extra": {
            "controller": "index",
            "framework": "django:5.2",
            "route": "/polls/{id}",
            "traceparent": trace,
        }
    }


def test_hostile_origins_are_escaped_in_the_table_and_exact_in_json(server, ended_after, cli):
    db, user = server.create_database(), server.create_user()
    hostile = Origin(service="\x1b[2Jevil", code="x.py:1\n[bold]fake[/bold]")
    victim = tagged(server, ended_after, hostile, database=db, user=user)
    row = wait_until(
        lambda: sessions(cli, server, "--user", user).get(victim.pid, {}).get("origin")
    )
    assert row == {"service": "\x1b[2Jevil", "code": "x.py:1\n[bold]fake[/bold]"}

    code, out, err = cli("ls", "--dsn", server.url, "--user", user)
    assert code == 0, err
    assert "\x1b" not in out
    # One line, control characters escaped, markup shown as text.
    assert "\\e[2Jevil x.py:1 [bold]fake[/bold]" in out


def test_blockers_name_the_origin_of_the_root(pg, ended_after, cli):
    db, user = pg.create_database(), pg.create_user()
    setup = Server(pg.name, pg.engine, pg.url_for(db))
    setup.execute("CREATE TABLE t (id int PRIMARY KEY)")
    setup.execute("INSERT INTO t VALUES (1)")
    setup.execute("GRANT ALL ON t TO PUBLIC")
    root = tagged(pg, ended_after, REPORTS, database=db, user=user,
                  statement="UPDATE t SET id = 1 WHERE id = 1")  # fmt: skip
    waiter = ended_after(pg, database=db, user=user)
    waiter.start("UPDATE t SET id = 1 WHERE id = 1")

    def forest() -> list[dict]:
        code, out, err = cli("blockers", "--dsn", pg.url, "--json")
        assert code == 0, err
        return [tree for tree in json.loads(out) if tree["pid"] == root.pid]

    (tree,) = wait_until(forest)
    assert tree["origin"]["code"] == "reports/daily.py:88"
    _, out, _ = cli("blockers", "--dsn", pg.url)
    assert "origin billing web-1[4242] Thread-3 reports/daily.py:88" in out
    root.run("ROLLBACK")
    assert waiter.result()[1] is None


def test_ls_by_origin_groups_by_service_and_code_line(server, ended_after, cli):
    db, user = server.create_database(), server.create_user()
    reports = [tagged(server, ended_after, REPORTS, database=db, user=user) for _ in range(2)]
    api = tagged(server, ended_after, API, database=db, user=user)
    plain = ended_after(server, database=db, user=user)
    plain.run("SELECT 1")
    pids = {v.pid for v in (*reports, api)}

    def groups() -> list[dict]:
        code, out, err = cli("ls", "--dsn", server.url, "--user", user, "--by", "origin", "--json")
        assert code == 0, err
        found = json.loads(out)["groups"]
        tagged_pids = {pid for g in found if g["code"] for pid in g["pids"]}
        return found if tagged_pids == pids else []

    found = wait_until(groups)
    assert [(g["service"], g["code"], g["sessions"]) for g in found] == [
        ("billing", "reports/daily.py:88", 2),
        ("billing", "api/views.py:12", 1),
        (None, None, 1),
    ]
    assert found[0]["pids"] == sorted(v.pid for v in reports)
    assert found[2]["pids"] == [plain.pid]
    if server.engine == "postgresql":
        assert found[0]["states"] == {"idle in transaction": 2}
        assert found[0]["oldest_xact_age_seconds"] > 0
        assert found[0]["oldest_xact_pid"] in found[0]["pids"]
        assert found[2]["oldest_xact_age_seconds"] is None
    else:
        assert found[0]["states"] == {"active": 2}

    code, out, err = cli("ls", "--dsn", server.url, "--user", user, "--by", "origin")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["SESSIONS", "SERVICE", "CODE"]
    assert lines[1].split()[:3] == ["2", "billing", "reports/daily.py:88"]
    assert lines[3].split()[:2] == ["1", "(unnamed)"]

    code, _, err = cli("ls", "--dsn", server.url, "--by", "origin", "--csv")
    assert code == 2
    assert err.count("\n") == 1
    assert "--csv" in err


def test_a_policy_on_origin_code_ends_exactly_that_session(server, ended_after, tmp_path):
    db, user = server.create_database(), server.create_user()
    prepare_table(server, db)
    victim = tagged(server, ended_after, REPORTS, database=db, user=user)
    bystander = tagged(server, ended_after, API, database=db, user=user)
    policy = f"""
[[rule]]
name = "reports"
action = "terminate"
[rule.match]
database = "{db}"
origin.code = "reports/*"
origin.service = "bill*"
"""

    def seen() -> bool:
        with sessionward.connect(server.url) as control:
            snapshot = control.snapshot()
        return all(
            (s := snapshot.get(v.pid)) is not None and s.origin is not None
            for v in (victim, bystander)
        )

    wait_until(seen)

    with ThreadedReaper(server, policy, tmp_path, dry_run=True) as dry:
        wait_until(lambda: victim.pid in dry.outcomes(), what="the dry run")
    assert dry.outcomes() == {victim.pid: [("reports", "terminate", "would end")]}
    assert alive(server, victim.pid)
    assert alive(server, bystander.pid)

    with ThreadedReaper(server, policy, tmp_path) as reaper:
        wait_until(lambda: victim.pid in reaper.outcomes(), what="the ending")
    assert reaper.outcomes() == {victim.pid: [("reports", "terminate", "ended")]}
    assert not alive(server, victim.pid)
    assert alive(server, bystander.pid)
    (decision,) = [r for r in reaper.records() if r["type"] == "decision"]
    assert decision["session"]["origin"] == REPORTS.as_dict()
    assert "origin.code reports/daily.py:88" in decision["why"]
    (event,) = [json.loads(line) for line in reaper.log.getvalue().splitlines()
                if json.loads(line).get("event") == "terminate"]  # fmt: skip
    assert event["code"] == "reports/daily.py:88"
    assert event["pid"] == victim.pid


def test_a_hardened_engine_is_found_by_its_code_line_and_ended_by_it(server, tmp_path, cli):
    """Both halves joined: harden() tags, ls --json reads it back, the reaper ends by it."""
    import socket
    import sys
    import threading

    import sqlalchemy

    from sessionward.sqlalchemy import harden

    db, user = server.create_database(), server.create_user()
    prepare_table(server, db)
    driver = "postgresql+psycopg" if server.engine == "postgresql" else "mysql+pymysql"
    url = f"{driver}://{server.url_for(db, user).split('://', 1)[1]}"
    engine = harden(sqlalchemy.create_engine(url, pool_size=1), origin="billing")
    held = threading.Event()
    done = threading.Event()
    where: list[int] = []

    def hold() -> None:
        with contextlib.suppress(Exception), engine.connect() as connection:
            where.append(sys._getframe().f_lineno - 1)
            if server.engine == "mysql":  # MariaDB shows the statement only while it runs
                held.set()
                connection.execute(sqlalchemy.text("SELECT SLEEP(30)"))
            else:
                connection.execute(sqlalchemy.text("SELECT 1"))
                held.set()
                done.wait(30)
        done.set()

    thread = threading.Thread(target=hold, name="report-worker", daemon=True)
    thread.start()
    try:
        held.wait(10)
        code = f"tests/servers/test_origin_servers.py:{where[0]}"

        def found() -> dict:
            rows = sessions(cli, server, "--user", user)
            return next((r for r in rows.values() if (r["origin"] or {}).get("code")), {})

        row = wait_until(found, what="the tagged session")
        assert row["origin"]["code"] == code
        assert row["origin"]["service"] == "billing"
        assert row["origin"]["holder"] == "report-worker"
        assert row["origin"]["host"] == socket.gethostname()

        policy = f'[[rule]]\nname = "r"\naction = "terminate"\n[rule.match]\n' \
                 f'database = "{db}"\norigin.code = "tests/servers/*"\n'  # fmt: skip
        with ThreadedReaper(server, policy, tmp_path) as reaper:
            wait_until(lambda: row["pid"] in reaper.outcomes(), what="the ending")
        assert reaper.outcomes() == {row["pid"]: [("r", "terminate", "ended")]}
        (decision,) = [r for r in reaper.records() if r["type"] == "decision"]
        assert decision["session"]["origin"]["code"] == code
    finally:
        done.set()
        thread.join(10)
        engine.dispose()


def test_metrics_count_sessions_by_origin(server, ended_after):
    import urllib.request

    from sessionward.interfaces.reaper._metrics import Metrics

    db, user = server.create_database(), server.create_user()
    for _ in range(2):
        tagged(server, ended_after, REPORTS, database=db, user=user)
    ended_after(server, database=db, user=user).run("SELECT 1")

    def snapshot():
        with sessionward.connect(server.url) as control:
            snap = control.snapshot()
        mine = [s for s in snap.sessions if s.user == user]
        return snap if len(mine) == 3 and sum(s.origin is not None for s in mine) == 2 else None

    snap = wait_until(snapshot, what="both tagged sessions")
    metrics = Metrics("127.0.0.1:0")
    try:
        metrics.observe_snapshot(snap)
        port = metrics._server[0].server_port
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        metrics.close()
    state = "idle in transaction" if server.engine == "postgresql" else "active"
    series = [line for line in text.splitlines()
              if line.startswith("sessionward_sessions_by_origin{")]  # fmt: skip
    assert (
        f'sessionward_sessions_by_origin{{code="reports/daily.py:88",service="billing",'
        f'state="{state}"}} 2.0'
    ) in series


# --------------------------------------------------------------------------- MariaDB, idle


def _mariadb_idle_then_running(server: Server, cli, driver: str) -> tuple[dict, dict, dict, int]:
    """A hardened engine's session on MariaDB, as ``ls --json`` shows it: idle in a
    transaction, running a statement, idle again; and the line that took it."""
    import sys
    import threading

    import sqlalchemy

    from sessionward.sqlalchemy import harden

    db, user = server.create_database(), server.create_user()
    prepare_table(server, db)
    url = f"mysql+{driver}://{server.url_for(db, user).split('://', 1)[1]}"
    engine = harden(sqlalchemy.create_engine(url, pool_size=1), origin="billing")

    def row(pid: int, running: bool) -> dict | None:
        found = sessions(cli, server, "--user", user).get(pid)
        if found is None or (found["state"] == "idle in transaction") == running:
            return None
        return found if (found["query"] is not None) == running else None

    lock = f"sw-origin-{db}"
    holder = server.admin()  # holds a user lock the session's statement then waits for
    try:
        holder.cursor().execute("SELECT GET_LOCK(%s, 0)", (lock,))
        with engine.connect() as connection:
            line = sys._getframe().f_lineno - 1
            pid = int(connection.exec_driver_sql("SELECT CONNECTION_ID()").scalar())
            connection.execute(sqlalchemy.text("INSERT INTO t (v) VALUES (1)"))  # InnoDB
            idle = wait_until(lambda: row(pid, False), what="idle")
            waiting = threading.Thread(
                target=connection.execute,
                args=(sqlalchemy.text("SELECT GET_LOCK(:lock, 30)"), {"lock": lock}),
            )
            waiting.start()
            try:
                running = wait_until(lambda: row(pid, True), what="running")
            finally:
                holder.cursor().execute("SELECT RELEASE_LOCK(%s)", (lock,))
                waiting.join(30)
            again = wait_until(lambda: row(pid, False), what="idle again")
            connection.rollback()
    finally:
        holder.close()
        engine.dispose()
    return idle, running, again, line


@pytest.mark.parametrize("driver", ["pymysql", "mysqldb"])
def test_mariadb_names_the_code_line_only_while_a_statement_runs(mysql, cli, driver):
    """MariaDB's process list shows a statement only while it runs (``INFO`` is NULL
    for a session idle in a transaction, and so is ``INNODB_TRX.trx_query``); without
    performance_schema (the default) an idle session shows no origin at all."""
    ((performance_schema,),) = mysql.execute("SELECT @@performance_schema")
    idle, running, again, line = _mariadb_idle_then_running(mysql, cli, driver)
    assert running["origin"] == {
        "service": "billing",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "holder": "MainThread",
        "code": f"tests/servers/test_origin_servers.py:{line}",
    }
    assert running["query"].startswith("SELECT GET_LOCK(")
    assert "/*sw_code=" in running["query"]
    # Idle: at most what the program_name connection attribute says (PyMySQL, and only
    # with performance_schema on); the holder and the code line never.
    named = {"service": "billing", "host": socket.gethostname(), "pid": os.getpid()}
    expected = named if performance_schema and driver == "pymysql" else None
    for row in (idle, again):
        assert row["query"] is None
        assert row["origin"] == expected


@pytest.fixture(scope="module")
def mariadb_with_performance_schema():
    """A throwaway MariaDB with performance_schema on (off by default)."""
    from tests.fix_servers import missing_server
    from tests.integrations.errors._own_servers import OwnMariaDB

    reason = OwnMariaDB.available()
    if reason:
        missing_server(f"no throwaway MariaDB: {reason}")
    own = OwnMariaDB("--performance-schema=ON")
    own.start()
    server = Server("mariadb-performance-schema", "mysql", own.url)
    try:
        yield server
    finally:
        server.cleanup()
        own.stop()


@pytest.mark.parametrize("driver", ["pymysql", "mysqldb"])
def test_with_performance_schema_an_idle_pymysql_session_names_service_host_and_pid(
    mariadb_with_performance_schema, cli, driver
):
    """PyMySQL's ``program_name`` connection attribute (``service[pid]@host``) is in
    ``performance_schema.session_connect_attrs``: an idle session shows those three.
    mysqlclient sends no connection attribute of ours: nothing."""
    server = mariadb_with_performance_schema
    assert server.execute("SELECT @@performance_schema") == [(1,)]
    idle, running, again, line = _mariadb_idle_then_running(server, cli, driver)
    name = f"billing[{os.getpid()}]@{socket.gethostname()}"
    named = {"service": "billing", "host": socket.gethostname(), "pid": os.getpid()}
    for row in (idle, again):
        assert row["query"] is None
        assert row["application"] == (name if driver == "pymysql" else None)
        assert row["origin"] == (named if driver == "pymysql" else None)
    assert running["origin"] == {
        **named,
        "holder": "MainThread",
        "code": f"tests/servers/test_origin_servers.py:{line}",
    }
