"""The MariaDB/MySQL adapter against the real server of ``SESSIONWARD_TEST_MYSQL_DSN``.

Each test makes its own ``sw_`` database and users and only looks at the
sessions it opened, so it never touches anything else on the server.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator

import pymysql
import pytest

import sessionward
from sessionward import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    Outcome,
    Safety,
    SessionFilter,
    SessionwardError,
)
from sessionward.core import parse_client, root_blockers
from sessionward.servers.mysql import MySQLBackend
from sessionward.servers.mysql._errors import LOST
from tests.fix_servers import Server

pytestmark = pytest.mark.mysql

#: How far a reported age may stray from the time the test slept.
AGE_TOLERANCE_SECONDS = 1.0


def eventually(check: Callable[[], object], *, timeout: float = 10.0) -> object:
    """Return the first truthy result of ``check``, polling until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.05)


def listed(server: Server, pid: int) -> bool:
    """Whether ``pid`` is still in the server's processlist, asked on a fresh connection."""
    rows = server.execute(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", (pid,)
    )
    return rows[0][0] == 1


def make_table(server: Server, database: str, rows: int = 3) -> None:
    server.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
    values = ", ".join(f"({i}, {i})" for i in range(1, rows + 1))
    server.execute(f"INSERT INTO `{database}`.t VALUES {values}")


@pytest.fixture
def control(mysql: Server) -> Iterator[sessionward.SessionControl]:
    with sessionward.connect(mysql.url) as control:
        yield control


# --------------------------------------------------------------------------- connecting


def test_connect_reads_the_server(control):
    server = control.backend.server
    assert isinstance(control.backend, MySQLBackend)
    tokens = control.backend.probe([control.own_pid])
    assert server.engine in ("mariadb", "mysql")
    assert server.version_num >= (100600 if server.engine == "mariadb" else 80000)
    assert control.own_pid > 0
    # Our own connection runs the probe itself, so it is present and busy.
    assert tokens[control.own_pid] is not None


def test_every_catalog_query_of_the_dialect_runs(control):
    backend = control.backend
    dialect = backend._dialect
    skipped = {
        dialect.kill_query,  # run by the cancel and terminate tests
        dialect.kill_connection,
        dialect.set_statement_limit,  # run by connect
        dialect.list_metadata_locks,  # needs the plugin: see test_metadata_lock_wait
        dialect.list_database_locks,  # needs it too: see tests/servers/test_dropdb.py
        dialect.drop_database,  # holds placeholders; run by tests/servers/test_dropdb.py
    }
    params = {"pids": (control.own_pid,), "name": "sw_no_such_schema", "seconds": 2}
    for name in sorted(dialect.names() - skipped):
        rows = backend._all(name, params)
        assert isinstance(rows, list), name


def test_wrong_port_is_connection_failed(mysql):
    url = re.sub(r":\d+/", ":1/", mysql.url_for("test", "root", "pw-in-url-1"))
    with pytest.raises(ConnectionFailed) as caught:
        sessionward.connect(url)
    assert not isinstance(caught.value, AuthenticationFailed)
    message = str(caught.value)
    assert "connection refused" in message
    assert "pw-in-url-1" not in message
    assert "\n" not in message


def test_wrong_password_is_authentication_failed(mysql):
    user = mysql.create_user(grants="SET PASSWORD FOR '{user}'@'%' = PASSWORD('right-pw-42')")
    database = mysql.create_database()
    with sessionward.connect(mysql.url_for(database, user, "right-pw-42")) as control:
        assert control.snapshot().server.engine in ("mariadb", "mysql")
    with pytest.raises(AuthenticationFailed) as caught:
        sessionward.connect(mysql.url_for(database, user, "wrong-pw-17"))
    message = str(caught.value)
    assert "wrong-pw-17" not in message
    assert "right-pw-42" not in message
    assert user in message


def test_unknown_url_option_is_a_configuration_error(mysql):
    with pytest.raises(ConfigurationError, match="unknown option 'colour'"):
        sessionward.connect(mysql.url + "?colour=blue")


def test_statement_limit_caps_our_own_statements(mysql):
    with sessionward.connect(mysql.url, statement_timeout_seconds=0.3) as control:
        backend = control.backend
        assert isinstance(backend, MySQLBackend)
        started = time.monotonic()
        with (
            pytest.raises(SessionwardError, match=r"exceeded the 0\.3s statement limit"),
            backend._errors(),
        ):
            backend._conn.cursor().execute("SELECT SLEEP(5)")
        assert time.monotonic() - started < 3
        # The limit ended a statement, not the connection.
        assert control.snapshot().server.own_pid == control.own_pid


def test_lost_connection_is_connection_failed(mysql):
    control = sessionward.connect(mysql.url)
    try:
        mysql.execute(f"KILL {control.own_pid}")
        with pytest.raises(ConnectionFailed, match="lost the connection"):
            control.snapshot()
    finally:
        control.close()


# --------------------------------------------------------------------------- snapshots


def test_idle_in_transaction_and_idle_sessions(mysql, victims, control):
    database = mysql.create_database()
    user = mysql.create_user()
    make_table(mysql, database)
    in_transaction = victims(mysql, database=database, user=user)
    idle = victims(mysql, database=database, user=user)
    in_transaction.run("BEGIN")
    in_transaction.run("UPDATE t SET v = v + 1 WHERE id = 1")
    idle.run("SELECT 1")
    slept_since = time.monotonic()
    time.sleep(1.5)
    snapshot = control.snapshot()
    slept = time.monotonic() - slept_since

    assert control.own_pid not in snapshot
    busy = snapshot.get(in_transaction.pid)
    assert busy is not None
    assert busy.state == "idle in transaction"
    assert busy.user == user
    assert busy.database == database
    assert busy.backend_kind == "client"
    assert busy.is_superuser is False
    assert busy.client_addr == "127.0.0.1"
    assert busy.client_port is not None
    assert busy.client_port > 0
    assert busy.query is None
    assert busy.query_age_seconds is None
    assert busy.xact_age_seconds is not None
    assert busy.state_age_seconds is not None
    assert abs(busy.xact_age_seconds - slept) <= AGE_TOLERANCE_SECONDS
    assert abs(busy.state_age_seconds - slept) <= AGE_TOLERANCE_SECONDS
    assert busy.idle_age_seconds == busy.state_age_seconds
    assert busy.session_age_seconds is None

    quiet = snapshot.get(idle.pid)
    assert quiet is not None
    assert quiet.state == "idle"
    assert quiet.xact_age_seconds is None
    assert quiet.state_age_seconds is not None
    assert abs(quiet.state_age_seconds - slept) <= AGE_TOLERANCE_SECONDS
    assert snapshot.taken_at.tzinfo is not None


def test_back_to_back_snapshots_see_a_new_transaction(mysql, victims, control):
    # InnoDB's INNODB_TRX cache freezes for readers polling faster than 0.1 s.
    database = mysql.create_database()
    make_table(mysql, database)
    victim = victims(mysql, database=database, user=mysql.create_user())
    for _ in range(5):
        assert control.snapshot().get(victim.pid).state == "idle"
    victim.run("BEGIN")
    victim.run("SELECT * FROM t FOR UPDATE")
    assert control.snapshot().get(victim.pid).state == "idle in transaction"
    victim.run("ROLLBACK")
    assert control.snapshot().get(victim.pid).state == "idle"


def test_superuser_sessions_are_marked(mysql, victims, control):
    database = mysql.create_database()
    admin = victims(mysql, database=database, user=mysql.create_user(superuser=True))
    plain = victims(mysql, database=database, user=mysql.create_user())
    snapshot = control.snapshot()
    assert snapshot.get(admin.pid).is_superuser is True
    assert snapshot.get(plain.pid).is_superuser is False


def test_running_statement_is_active_with_its_query(mysql, victims, control):
    database = mysql.create_database()
    victim = victims(mysql, database=database, user=mysql.create_user())
    victim.start("SELECT SLEEP(30)")
    # The statement shows before its wait does: MariaDB names the wait once SLEEP runs.
    session = eventually(lambda: _active(control, victim.pid, waiting="User sleep"))
    assert session.query == "SELECT SLEEP(30)"
    assert session.wait == "User sleep"
    assert session.query_age_seconds is not None
    assert session.query_age_seconds >= 0
    assert session.xact_age_seconds is None
    control.cancel([victim.pid])
    victim.result()


def _active(control, pid, waiting=None):
    session = control.snapshot().get(pid)
    if session is None or session.state != "active":
        return None
    return session if waiting is None or session.wait == waiting else None


def test_login_without_process_sees_only_its_own_sessions(mysql, victims):
    database = mysql.create_database()
    user = mysql.create_user()
    other = victims(mysql, database=database, user=mysql.create_user())
    mine = victims(mysql, database=database, user=user)
    with sessionward.connect(mysql.url_for(database, user)) as control:
        snapshot = control.snapshot()
    assert mine.pid in snapshot
    assert other.pid not in snapshot
    assert any("PROCESS" in line for line in snapshot.degraded)


def test_local_socket_client_is_local(mysql, control):
    database = mysql.create_database()
    user = mysql.create_user()
    socket_path = mysql.execute("SELECT @@socket")[0][0]
    try:
        local = pymysql.connect(unix_socket=socket_path, user=user, database=database)
    except (pymysql.err.Error, OSError) as error:
        pytest.skip(f"the server socket {socket_path} is not reachable here: {error}")
    try:
        session = control.snapshot().get(local.thread_id())
        assert session is not None
        assert session.client_addr is None
        assert session.client == "local"
        only_local = SessionFilter(databases=(database,), clients=(parse_client("local"),))
        assert [s.pid for s in control.sessions(only_local)] == [local.thread_id()]
    finally:
        local.close()


# --------------------------------------------------------------------------- filters


def test_every_filter_field_selects_exactly(mysql, victims, control):
    first_db, second_db = mysql.create_database(), mysql.create_database()
    first_user, second_user = mysql.create_user(), mysql.create_user()
    make_table(mysql, first_db)
    idle = victims(mysql, database=first_db, user=first_user)
    holder = victims(mysql, database=first_db, user=second_user)
    sleeper = victims(mysql, database=second_db, user=first_user)
    waiter = victims(mysql, database=second_db, user=second_user)
    idle.run("SELECT 1")
    holder.run("BEGIN")
    holder.run("UPDATE t SET v = 10 WHERE id = 1")
    sleeper.start("SELECT SLEEP(30)")
    waiter.run("SET SESSION innodb_lock_wait_timeout = 30")
    waiter.run("BEGIN")
    waiter.start(f"UPDATE `{first_db}`.t SET v = 20 WHERE id = 1")
    eventually(lambda: control.snapshot().get(waiter.pid).blocked_by == (holder.pid,))
    time.sleep(2.5)
    snapshot = control.snapshot()
    ours = SessionFilter(databases=(first_db, second_db))

    def chosen(**changes: object) -> set[int]:
        return {s.pid for s in ours.evolve(**changes).select(snapshot)}

    everyone = {idle.pid, holder.pid, sleeper.pid, waiter.pid}
    assert chosen() == everyone
    assert chosen(databases=(first_db,)) == {idle.pid, holder.pid}
    assert chosen(databases=(second_db[:-3] + "*",)) == {sleeper.pid, waiter.pid}
    assert chosen(users=(first_user,)) == {idle.pid, sleeper.pid}
    assert chosen(users=(second_user,)) == {holder.pid, waiter.pid}
    assert chosen(clients=(parse_client("127.0.0.0/8"),)) == everyone
    assert chosen(clients=(parse_client("10.0.0.0/8"),)) == set()
    assert chosen(clients=(parse_client("local"),)) == set()  # the fixture connects over TCP
    assert chosen(states=("idle",)) == {idle.pid}
    assert chosen(states=("idle in transaction",)) == {holder.pid}
    assert chosen(states=("active",)) == {sleeper.pid, waiter.pid}
    assert chosen(query=re.compile(r"sleep\(30\)", re.IGNORECASE)) == {sleeper.pid}
    assert chosen(idle_over_seconds=1.5) == {idle.pid, holder.pid}
    assert chosen(idle_over_seconds=60) == set()
    assert chosen(xact_over_seconds=1.0) == {holder.pid, waiter.pid}
    assert chosen(xact_over_seconds=60) == set()
    assert chosen(query_over_seconds=1.5) == {sleeper.pid, waiter.pid}
    assert chosen(query_over_seconds=60) == set()
    assert chosen(blocking=True) == {holder.pid}
    assert chosen(blocked=True) == {waiter.pid}
    results = control.terminate(sorted(everyone))
    assert {r.outcome for r in results} == {Outcome.ENDED}


# --------------------------------------------------------------------------- blockers


def test_row_lock_chain_has_its_root_first(mysql, victims, control):
    database = mysql.create_database()
    user = mysql.create_user()
    make_table(mysql, database)
    a, b, c = (victims(mysql, database=database, user=user) for _ in range(3))
    for victim in (a, b, c):
        victim.run("SET SESSION innodb_lock_wait_timeout = 30")
        victim.run("BEGIN")
    a.run("UPDATE t SET v = v + 1 WHERE id = 1")
    b.run("UPDATE t SET v = v + 1 WHERE id = 2")
    b.start("UPDATE t SET v = v + 1 WHERE id = 1")
    eventually(lambda: control.snapshot().get(b.pid).blocked_by)
    c.start("UPDATE t SET v = v + 1 WHERE id = 2")
    eventually(lambda: control.snapshot().get(c.pid).blocked_by)
    time.sleep(1.1)  # let the whole-second wait start times advance

    snapshot = control.snapshot()
    waiting = snapshot.get(b.pid)
    assert waiting.blocked_by == (a.pid,)
    assert waiting.wait == "innodb row lock"
    assert waiting.wait_target == f"table {database}.t"
    assert waiting.wait_age_seconds is not None
    assert waiting.wait_age_seconds >= 0
    assert waiting.state == "active"
    assert snapshot.get(c.pid).blocked_by == (b.pid,)
    assert snapshot.get(a.pid).blocked_by == ()
    assert snapshot.blocking(a.pid) == (b.pid,)

    forest = [tree for tree in control.blockers(snapshot) if tree.pid in (a.pid, b.pid, c.pid)]
    assert len(forest) == 1
    root = forest[0]
    assert root.pid == a.pid
    assert [node.pid for node in root.waiters] == [b.pid]
    assert [node.pid for node in root.waiters[0].waiters] == [c.pid]
    assert root_blockers(snapshot, [c.pid]) == (a.pid,)
    assert {s.pid for s in SessionFilter(databases=(database,), blocked=True).select(snapshot)} == {
        b.pid,
        c.pid,
    }

    # Ending the root lets B through; C still waits on B until B ends too.
    assert control.terminate([a.pid])[0].outcome is Outcome.ENDED
    eventually(lambda: not control.snapshot().get(b.pid).blocked_by)
    results = control.terminate([b.pid, c.pid])
    assert [r.outcome for r in results] == [Outcome.ENDED, Outcome.ENDED]


@contextlib.contextmanager
def metadata_lock_plugin(server: Server) -> Iterator[bool]:
    """Make the metadata_lock_info plugin active if it can be; uninstall what we installed."""
    query = (
        "SELECT COUNT(*) FROM information_schema.PLUGINS "
        "WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO' AND PLUGIN_STATUS = 'ACTIVE'"
    )
    if server.execute(query)[0][0]:
        yield True
        return
    try:
        server.execute("INSTALL SONAME 'metadata_lock_info'")
    except pymysql.err.Error:
        yield False
        return
    try:
        yield True
    finally:
        server.execute("UNINSTALL SONAME 'metadata_lock_info'")


def test_metadata_lock_wait(mysql, victims, control):
    if control.backend.server.engine != "mariadb":
        pytest.skip("the metadata_lock_info plugin is MariaDB's")
    database = mysql.create_database()
    user = mysql.create_user()
    make_table(mysql, database)
    reader, alter, query = (victims(mysql, database=database, user=user) for _ in range(3))
    for victim in (reader, alter, query):
        victim.run("SET SESSION lock_wait_timeout = 30")
    reader.run("BEGIN")
    reader.run("SELECT * FROM t")
    alter.start("ALTER TABLE t ADD COLUMN w INT")
    eventually(lambda: control.snapshot().get(alter.pid).wait)
    query.start("SELECT * FROM t")
    eventually(lambda: control.snapshot().get(query.pid).wait)

    installed = mysql.execute(
        "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO'"
    )[0][0]
    if not installed:
        snapshot = control.snapshot()
        assert snapshot.get(alter.pid).wait == "Waiting for table metadata lock"
        assert snapshot.get(alter.pid).blocked_by == ()
        assert any(
            "metadata-lock blockers not shown" in line and "metadata_lock_info" in line
            for line in snapshot.degraded
        )

    with metadata_lock_plugin(mysql) as active:
        if not active:
            pytest.skip("the metadata_lock_info plugin cannot be installed on this server")
        snapshot = control.snapshot()
        assert not any("metadata-lock" in line for line in snapshot.degraded)
        assert snapshot.get(reader.pid).state == "idle in transaction"
        assert snapshot.get(alter.pid).blocked_by == (reader.pid,)
        assert snapshot.get(alter.pid).wait_target == f"metadata lock {database}.t"
        assert snapshot.get(query.pid).blocked_by == (alter.pid,)
        assert root_blockers(snapshot, [query.pid]) == (reader.pid,)
        # Ending the idle transaction lets the ALTER and the query behind it run.
        assert control.terminate([reader.pid])[0].outcome is Outcome.ENDED
        assert alter.result()[1] is None
        rows, error = query.result()
        assert error is None
        assert len(rows) == 3


# --------------------------------------------------------------------------- terminate


def test_terminate_by_filter_ends_exactly_the_matching_sessions(mysql, victims, control):
    target_db, other_db = mysql.create_database(), mysql.create_database()
    target_user, other_user = mysql.create_user(), mysql.create_user()
    doomed = [victims(mysql, database=target_db, user=target_user) for _ in range(2)]
    other_database = victims(mysql, database=other_db, user=target_user)
    other_login = victims(mysql, database=target_db, user=other_user)
    doomed[0].run("SELECT 1")
    doomed[1].start("SELECT SLEEP(30)")
    eventually(lambda: _active(control, doomed[1].pid))

    chosen = control.sessions(SessionFilter(databases=(target_db,), users=(target_user,)))
    assert sorted(s.pid for s in chosen) == sorted(v.pid for v in doomed)
    results = control.terminate([s.pid for s in chosen])
    assert [r.outcome for r in results] == [Outcome.ENDED, Outcome.ENDED]
    for victim in doomed:
        assert not listed(mysql, victim.pid)
    with pytest.raises(pymysql.err.OperationalError) as caught:
        doomed[0].run("SELECT 1")
    assert caught.value.args[0] in LOST
    _, error = doomed[1].result()
    assert isinstance(error, pymysql.err.OperationalError)
    assert error.args[0] in LOST
    assert other_database.run("SELECT 1") == ((1,),)
    assert other_login.run("SELECT 1") == ((1,),)


def test_own_and_unknown_pids(mysql, control):
    unknown = 2**40
    own, gone = control.terminate([control.own_pid, unknown])
    assert own.outcome is Outcome.PROTECTED
    assert gone.outcome is Outcome.ALREADY_GONE
    assert control.backend.terminate(unknown) is False
    assert control.backend.cancel(unknown) is False
    with pytest.raises(SessionwardError, match="own session"):
        control.backend.terminate(control.own_pid)
    assert control.snapshot().server.own_pid == control.own_pid


def test_pid_must_be_a_connection_id(control):
    for bad in ("1; DROP DATABASE x", 0, -3, True, 2**64):
        with pytest.raises(ConfigurationError):
            control.backend.terminate(bad)  # type: ignore[arg-type]
    assert control.backend.probe([]) == {}


def test_killing_another_users_session_needs_connection_admin(mysql, victims):
    database = mysql.create_database()
    target = victims(mysql, database=database, user=mysql.create_user())
    watcher = mysql.create_user(grants="GRANT PROCESS ON *.* TO '{user}'@'%'")
    with sessionward.connect(mysql.url_for(database, watcher)) as control:
        assert target.pid in control.snapshot()
        (result,) = control.terminate([target.pid])
        assert result.outcome is Outcome.NOT_PERMITTED
        engine = control.backend.server.engine
        assert ("CONNECTION ADMIN" if engine == "mariadb" else "CONNECTION_ADMIN") in result.detail
        assert "SUPER" in result.detail
        target.start("SELECT SLEEP(2)")
        eventually(lambda: _active(control, target.pid))
        (cancelled,) = control.cancel([target.pid])
        assert cancelled.outcome is Outcome.NOT_PERMITTED
    # The statement ran to its end (SLEEP gives 0) and the session is still there.
    assert target.result() == (((0,),), None)
    assert listed(mysql, target.pid)
    assert target.run("SELECT 1") == ((1,),)


def test_superuser_session_is_protected_unless_included(mysql, victims, control):
    database = mysql.create_database()
    victim = victims(mysql, database=database, user=mysql.create_user(superuser=True))
    (refused,) = control.terminate([victim.pid])
    assert refused.outcome is Outcome.PROTECTED
    assert listed(mysql, victim.pid)
    (ended,) = control.terminate([victim.pid], safety=Safety(include_superusers=True))
    assert ended.outcome is Outcome.ENDED
    assert not listed(mysql, victim.pid)


def test_dry_run_ends_nothing(mysql, victims, control):
    database = mysql.create_database()
    victim = victims(mysql, database=database, user=mysql.create_user())
    victim.start("SELECT SLEEP(2)")
    eventually(lambda: _active(control, victim.pid))
    (terminated,) = control.terminate([victim.pid], dry_run=True)
    (cancelled,) = control.cancel([victim.pid], dry_run=True)
    assert terminated.outcome is Outcome.WOULD_END
    assert cancelled.outcome is Outcome.WOULD_END
    assert victim.result() == (((0,),), None)  # SLEEP ran to the end: 0
    assert listed(mysql, victim.pid)


# --------------------------------------------------------------------------- cancel


def test_cancel_stops_the_statement_and_keeps_the_session(mysql, victims, control):
    database = mysql.create_database()
    victim = victims(mysql, database=database, user=mysql.create_user())
    victim.start("SELECT SLEEP(30)")
    eventually(lambda: _active(control, victim.pid))
    before = control.backend.probe([victim.pid])[victim.pid]
    assert before is not None
    started = time.monotonic()
    (result,) = control.cancel([victim.pid])
    assert result.outcome is Outcome.ENDED
    rows, error = victim.result()
    assert time.monotonic() - started < 10
    # MariaDB's SLEEP returns 1 when interrupted; a killed query may also raise 1317.
    assert rows == ((1,),) or (isinstance(error, pymysql.err.Error) and error.args[0] == 1317)
    assert victim.run("SELECT 1") == ((1,),)
    assert control.backend.probe([victim.pid]) == {victim.pid: None}


def test_cancel_of_an_idle_session_is_already_gone(mysql, victims, control):
    database = mysql.create_database()
    victim = victims(mysql, database=database, user=mysql.create_user())
    (result,) = control.cancel([victim.pid])
    assert result.outcome is Outcome.ALREADY_GONE
    assert victim.run("SELECT 1") == ((1,),)


def test_probe_token_changes_with_each_statement(mysql, victims, control):
    database = mysql.create_database()
    victim = victims(mysql, database=database, user=mysql.create_user())
    assert control.backend.probe([victim.pid]) == {victim.pid: None}
    tokens = []
    for _ in range(2):
        victim.start("SELECT SLEEP(30)")
        eventually(lambda: _active(control, victim.pid))
        tokens.append(control.backend.probe([victim.pid])[victim.pid])
        control.cancel([victim.pid])
        victim.result()
    assert None not in tokens
    assert tokens[0] != tokens[1]
    assert control.backend.probe([2**40]) == {}


# --------------------------------------------------------------------------- partial snapshots


def test_partial_snapshot_of_a_sleeping_transaction_needs_no_innodb_read(mysql, victims, control):
    database = mysql.create_database()
    make_table(mysql, database)
    victim = victims(mysql, database=database, user=mysql.create_user())
    victim.run("BEGIN")
    victim.run("UPDATE t SET v = v + 1 WHERE id = 1")
    time.sleep(0.3)  # asleep since well before InnoDB's cached view is taken
    whole = control.snapshot()
    innodb_read_at = control.backend._innodb_read_at
    time.sleep(0.05)
    part = control.snapshot([victim.pid, 2**40])

    assert part.partial
    assert not whole.partial
    assert [s.pid for s in part.sessions] == [victim.pid]
    before, after = whole.get(victim.pid), part.get(victim.pid)
    assert after.state == "idle in transaction"
    assert (after.user, after.database, after.client_port) == (
        before.user, before.database, before.client_port)  # fmt: skip
    assert after.state_age_seconds >= before.state_age_seconds + 0.04
    assert after.xact_age_seconds >= before.xact_age_seconds + 0.04
    # Served from the process list: InnoDB's transaction cache was not read again.
    assert control.backend._innodb_read_at == innodb_read_at


@pytest.mark.parametrize("then", ["COMMIT", "BEGIN", "SELECT 1"])
def test_partial_snapshot_sees_a_statement_run_after_the_whole_read(mysql, victims, control, then):
    database = mysql.create_database()
    make_table(mysql, database)
    victim = victims(mysql, database=database, user=mysql.create_user())
    victim.run("BEGIN")
    victim.run("UPDATE t SET v = v + 1 WHERE id = 1")
    time.sleep(0.3)
    assert control.snapshot().get(victim.pid).state == "idle in transaction"
    victim.run(then)  # COMMIT ends it; BEGIN commits it and opens a new, empty one
    seen = control.snapshot([victim.pid]).get(victim.pid)
    expected = "idle in transaction" if then == "SELECT 1" else "idle"
    assert seen.state == expected
    assert seen.state_age_seconds < 0.3


def test_partial_snapshot_leaves_out_sessions_gone_and_not_asked_for(mysql, victims, control):
    database = mysql.create_database()
    one = victims(mysql, database=database)
    other = victims(mysql, database=database)
    part = control.snapshot([one.pid])
    assert part.partial
    assert one.pid in part
    assert other.pid not in part
    one.close()
    eventually(lambda: not listed(mysql, one.pid))
    assert control.snapshot([one.pid]).sessions == ()


def test_transactions_only_lists_just_the_sessions_in_a_transaction(mysql, victims, control):
    database = mysql.create_database()
    make_table(mysql, database)
    busy = victims(mysql, database=database, user=mysql.create_user())
    idle = victims(mysql, database=database, user=mysql.create_user())
    busy.run("BEGIN")
    busy.run("UPDATE t SET v = v + 1 WHERE id = 1")
    idle.run("SELECT 1")
    seen = control.snapshot(transactions_only=True)
    assert seen.partial
    assert busy.pid in seen
    assert idle.pid not in seen
    assert seen.get(busy.pid).state == "idle in transaction"
    assert seen.get(busy.pid).user == busy.run("SELECT CURRENT_USER()")[0][0].split("@")[0]
    busy.run("ROLLBACK")
    assert busy.pid not in control.snapshot(transactions_only=True)
