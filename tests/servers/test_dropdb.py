"""``SessionControl.drop_database`` against every real server (each PostgreSQL, then MariaDB).

Each test drops only databases it created, and checks the outcome from the
outside: the database is gone or still there, the victims' connections are
gone or still answer, new connections are refused or accepted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pymysql
import pytest

import sessionward
from sessionward import (
    ConfigurationError,
    DatabaseInUse,
    Outcome,
    PermissionDenied,
    SessionControl,
)
from sessionward.core import ACTIVE
from sessionward.servers.mysql._errors import LOST
from tests.fix_servers import Server, Victim, unique, wait_until
from tests.servers.test_mysql import metadata_lock_plugin


def pg_flags(pg: Server, database: str) -> tuple[bool, bool]:
    """(datallowconn, datistemplate) of a PostgreSQL database."""
    rows = pg.execute(
        "SELECT datallowconn, datistemplate FROM pg_database WHERE datname = %s", (database,)
    )
    return rows[0][0], rows[0][1]


def make_table(server: Server, database: str) -> None:
    """A table ``t`` anyone may read: an InnoDB read is what opens a MariaDB transaction."""
    if server.engine == "postgresql":
        Server(server.name, server.engine, server.url_for(database)).execute(
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1); "
            "GRANT ALL ON t TO PUBLIC"
        )
    else:
        server.execute(f"CREATE TABLE `{database}`.t (id INT PRIMARY KEY) ENGINE=InnoDB")
        server.execute(f"INSERT INTO `{database}`.t VALUES (1)")


def open_transaction(victim: Victim, table: str = "t") -> None:
    victim.run("BEGIN")
    victim.run(f"SELECT * FROM {table}")


def saw_its_session_end(server: Server, error: BaseException | None) -> bool:
    """Whether a client error says its connection was ended under it."""
    if server.engine == "postgresql":
        return isinstance(error, psycopg.OperationalError)
    if isinstance(error, pymysql.err.InterfaceError):
        return True
    return isinstance(error, pymysql.err.OperationalError) and error.args[0] in LOST


def connection_is_gone(server: Server, victim: Victim) -> bool:
    try:
        victim.run("SELECT 1")
    except Exception as error:
        return saw_its_session_end(server, error)
    return False


def answers(victim: Victim) -> bool:
    return victim.run("SELECT 1") is not None


@pytest.fixture
def control(server: Server) -> Iterator[SessionControl]:
    with sessionward.connect(server.url) as control:
        yield control


@pytest.fixture
def make_template() -> Iterator[Callable[[Server, str], None]]:
    """Turn PostgreSQL databases into templates; clear the flag after, so cleanup drops them."""
    made: list[tuple[Server, str]] = []

    def make(pg: Server, database: str) -> None:
        pg.execute(f'ALTER DATABASE "{database}" IS_TEMPLATE true')
        made.append((pg, database))

    yield make
    for pg, database in made:
        if pg.database_exists(database):
            pg.execute(f'ALTER DATABASE "{database}" IS_TEMPLATE false')


@pytest.fixture
def mysql_control(mysql: Server) -> Iterator[SessionControl]:
    with sessionward.connect(mysql.url) as control:
        yield control


def states(control: SessionControl, pids: list[int]) -> dict[int, str | None]:
    snapshot = control.snapshot()
    return {pid: (s.state if (s := snapshot.get(pid)) else None) for pid in pids}


# --------------------------------------------------------------------------- force


def test_force_drops_a_database_with_20_sessions_each_reported_ended(server, victims, control):
    database, other = server.create_database(), server.create_database()
    make_table(server, database)
    user, superuser = server.create_user(), server.create_user(superuser=True)
    sleepers = [victims(server, database=database, user=user) for _ in range(6)]
    in_transaction = [victims(server, database=database, user=user) for _ in range(6)]
    idle = [victims(server, database=database, user=user) for _ in range(7)]
    boss = victims(server, database=database, user=superuser)
    survivor = victims(server, database=other, user=user)
    for victim in sleepers:
        victim.start(server.sleep_sql(60))
    for victim in [*in_transaction, boss]:
        open_transaction(victim)
    for victim in idle:
        victim.run("SELECT 1")
    doomed = [*sleepers, *in_transaction, *idle, boss]
    assert len(doomed) == 20
    wait_until(lambda: set(states(control, [v.pid for v in sleepers]).values()) == {ACTIVE})

    result = control.drop_database(database)

    assert result.dropped
    assert result.existed
    assert not server.database_exists(database)
    outcomes = {r.pid: r.outcome for r in result.ended}
    assert outcomes == {v.pid: Outcome.ENDED for v in doomed}
    by_pid = {r.pid: r.session for r in result.ended}
    assert by_pid[boss.pid].user == superuser
    assert by_pid[boss.pid].is_superuser
    for victim in [*sleepers, *in_transaction, *idle]:
        assert by_pid[victim.pid].user == user
        assert by_pid[victim.pid].client_addr is not None
    for victim in [*in_transaction, *idle]:
        assert by_pid[victim.pid].idle_age_seconds is not None
    if server.engine == "postgresql":  # MariaDB shows applications only with performance_schema
        assert {by_pid[v.pid].application for v in doomed} == {v.application for v in doomed}
    # Every victim saw its connection go: the sleepers mid-statement, the others at next use.
    for victim in sleepers:
        assert saw_its_session_end(server, victim.result()[1])
    for victim in [*in_transaction, *idle, boss]:
        assert connection_is_gone(server, victim)
    assert answers(survivor)
    assert server.database_exists(other)


def test_a_template_database_with_sessions_is_dropped(pg, victims, make_template):
    database = pg.create_database()
    make_template(pg, database)
    victim = victims(pg, database=database)
    with sessionward.connect(pg.url) as control:
        result = control.drop_database(database)
    assert result.dropped
    assert [r.outcome for r in result.ended] == [Outcome.ENDED]
    assert not pg.database_exists(database)
    assert connection_is_gone(pg, victim)


def test_new_connections_are_refused_while_blocked_and_allowed_after_undo(pg, make_template):
    database = pg.create_database()
    make_template(pg, database)
    with sessionward.connect(pg.url) as control:
        restore = control.backend.block_connections(database)
        assert pg_flags(pg, database) == (False, False)
        with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
            psycopg.connect(pg.url_for(database)).close()
        restore()
    assert pg_flags(pg, database) == (True, True)
    psycopg.connect(pg.url_for(database)).close()


# --------------------------------------------------------------------------- dry run


def test_dry_run_changes_nothing(server, victims, control):
    database = server.create_database()
    user = server.create_user()
    sleeper = victims(server, database=database, user=user)
    sleeper.start(server.sleep_sql(2))
    idle = victims(server, database=database, user=user)
    idle.run("SELECT 1")
    wait_until(lambda: states(control, [sleeper.pid])[sleeper.pid] == ACTIVE)

    result = control.drop_database(database, dry_run=True)

    assert not result.dropped
    assert result.existed
    assert {r.pid: r.outcome for r in result.ended} == {
        sleeper.pid: Outcome.WOULD_END,
        idle.pid: Outcome.WOULD_END,
    }
    assert server.database_exists(database)
    assert answers(idle)
    _rows, error = sleeper.result()
    assert error is None  # the statement ran to its end
    if server.engine == "postgresql":
        assert pg_flags(server, database) == (True, False)
        psycopg.connect(server.url_for(database)).close()


# --------------------------------------------------------------------------- without force


def test_without_force_sessions_make_it_refuse_and_connections_come_back(
    server, victims, control, make_template
):
    database = server.create_database()
    if server.engine == "postgresql":
        make_template(server, database)
    victim = victims(server, database=database)
    victim.run("SELECT 1")

    with pytest.raises(DatabaseInUse, match=r"in use by 1 session: pid \d+") as caught:
        control.drop_database(database, force=False)

    assert [s.pid for s in caught.value.sessions] == [victim.pid]
    assert server.database_exists(database)
    assert answers(victim)
    if server.engine == "postgresql":
        # ALLOW_CONNECTIONS and the template flag are as they were.
        assert pg_flags(server, database) == (True, True)
        psycopg.connect(server.url_for(database)).close()
    else:
        victims(server, database=database).run("SELECT 1")


def test_without_force_and_without_sessions_it_drops(server, control):
    database = server.create_database()
    result = control.drop_database(database, force=False)
    assert result.dropped
    assert result.ended == ()
    assert not server.database_exists(database)


def test_dry_run_without_force_refuses_as_the_real_run_would(server, victims, control):
    database = server.create_database()
    victim = victims(server, database=database)
    with pytest.raises(DatabaseInUse):
        control.drop_database(database, force=False, dry_run=True)
    assert server.database_exists(database)
    assert answers(victim)


# --------------------------------------------------------------------------- refusals


def test_a_missing_database(server, control):
    missing = unique()
    result = control.drop_database(missing, if_exists=True)
    assert (result.dropped, result.existed, result.ended) == (False, False, ())
    with pytest.raises(ConfigurationError, match=f"database '{missing}' does not exist"):
        control.drop_database(missing)


def test_the_database_we_are_connected_to_is_refused(server, victims):
    database = server.create_database()
    victim = victims(server, database=database)
    with (
        sessionward.connect(server.url_for(database)) as control,
        pytest.raises(ConfigurationError, match="connect") as caught,
    ):
        control.drop_database(database)
    assert database in str(caught.value)
    assert server.database_exists(database)
    assert answers(victim)


@pytest.mark.parametrize("name", ["template0", "template1"])
def test_postgresql_template_databases_are_refused(pg, name):
    with sessionward.connect(pg.url) as control, pytest.raises(ConfigurationError) as caught:
        control.drop_database(name)
    assert f"refusing to drop {name}: PostgreSQL needs it" in str(caught.value)
    assert pg.database_exists(name)
    assert pg_flags(pg, name)[1]  # still a template


@pytest.mark.parametrize("name", ["mysql", "information_schema", "performance_schema", "sys"])
def test_mariadb_system_schemas_are_refused(mysql, name):
    with sessionward.connect(mysql.url) as control, pytest.raises(ConfigurationError) as caught:
        control.drop_database(name)
    assert f"refusing to drop {name}: the server itself needs it" in str(caught.value)


def test_a_role_that_may_not_drop_it_is_told_which_privilege(server, victims):
    database = server.create_database()
    if server.engine == "postgresql":
        role = server.create_user()  # not the owner, not a superuser
        url = server.url_for("postgres", role)
    else:
        role = unique("swu")  # may read the schema, not drop it
        server.execute(f"CREATE USER '{role}'@'%'")
        server.created_users.append(role)
        server.execute(f"GRANT SELECT ON `{database}`.* TO '{role}'@'%'")
        url = server.url_for("", role)
    bystander = victims(server, database=database)
    bystander.run("SELECT 1")

    with sessionward.connect(url) as control, pytest.raises(PermissionDenied) as caught:
        control.drop_database(database)

    message = str(caught.value)
    assert role in message
    assert ("owner" in message and "superuser" in message) or "DROP privilege" in message
    assert server.database_exists(database)
    assert answers(bystander)


def test_an_owner_that_may_not_end_a_superusers_session_leaves_it_all_in_place(pg, victims):
    database = pg.create_database()
    owner, superuser = pg.create_user(), pg.create_user(superuser=True)
    pg.execute(f'ALTER DATABASE "{database}" OWNER TO "{owner}"')
    boss = victims(pg, database=database, user=superuser)
    mine = victims(pg, database=database, user=owner)

    with sessionward.connect(pg.url_for("postgres", owner)) as control:
        result = control.drop_database(database)

    assert not result.dropped
    outcomes = {r.pid: r.outcome for r in result.ended}
    assert outcomes == {boss.pid: Outcome.NOT_PERMITTED, mine.pid: Outcome.ENDED}
    assert "superuser" in next(r.detail for r in result.ended if r.pid == boss.pid)
    assert [r.pid for r in result.not_ended] == [boss.pid]
    assert pg.database_exists(database)
    assert answers(boss)
    assert pg_flags(pg, database) == (True, False)
    psycopg.connect(pg.url_for(database)).close()


# --------------------------------------------------------------------------- names


def create_named_database(server: Server, name: str) -> None:
    quoted = f'"{name}"' if server.engine == "postgresql" else f"`{name}`"
    server.execute(f"CREATE DATABASE {quoted}")
    server.created_databases.append(name)


def name_limit(server: Server) -> int:
    """PostgreSQL: bytes (max_identifier_length); MariaDB/MySQL: characters."""
    return 63 if server.engine == "postgresql" else 64


@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize("if_exists", [False, True])
def test_a_name_over_the_limit_is_refused_and_the_one_it_starts_with_is_kept(
    server, victims, control, dry_run, if_exists
):
    """PostgreSQL would cut the name to its first 63 bytes: an existing database's name."""
    kept = unique() + "_"
    kept += "k" * (name_limit(server) - len(kept))
    create_named_database(server, kept)
    victim = victims(server, database=kept)
    victim.run("SELECT 1")

    with pytest.raises(ConfigurationError) as caught:
        control.drop_database(kept + "x" * 7, if_exists=if_exists, dry_run=dry_run)

    unit = "bytes" if server.engine == "postgresql" else "characters"
    assert f"is {len(kept) + 7} {unit} long" in str(caught.value)
    assert server.database_exists(kept)
    assert answers(victim)


def test_a_name_at_the_limit_is_dropped(server, control):
    name = unique() + "_"
    name += "k" * (name_limit(server) - len(name))
    create_named_database(server, name)
    assert control.drop_database(name).dropped
    assert not server.database_exists(name)


def test_postgresql_measures_a_name_in_bytes(pg):
    base = unique() + "_"
    kept = base + "é" * ((62 - len(base)) // 2)  # 62 bytes: one more é is 64
    at_limit = kept + "a" * (63 - len(kept.encode()))
    too_long = kept + "é"
    assert (len(at_limit.encode()), len(too_long.encode())) == (63, 64)
    assert len(too_long) < 63  # short in characters: only bytes show it is too long
    create_named_database(pg, kept)
    create_named_database(pg, at_limit)

    with (
        sessionward.connect(pg.url) as control,
        pytest.raises(ConfigurationError, match="is 64 bytes long, over PostgreSQL's limit of 63"),
    ):
        control.drop_database(too_long, if_exists=True)
    assert pg.database_exists(kept)

    with sessionward.connect(pg.url) as control:
        assert control.drop_database(at_limit).dropped
    assert not pg.database_exists(at_limit)
    assert pg.database_exists(kept)


def test_mariadb_measures_a_name_in_characters(mysql, mysql_control):
    name = unique() + "_"
    name += "é" * (64 - len(name))  # 64 characters, 115 bytes
    create_named_database(mysql, name)
    with pytest.raises(ConfigurationError, match="is 65 characters long"):
        mysql_control.drop_database(name + "é", if_exists=True)
    assert mysql_control.drop_database(name).dropped
    assert not mysql.database_exists(name)


def test_mariadb_refuses_a_leader_lock_name_over_its_limit(mysql_control):
    """``GET_LOCK`` takes 64 characters; a longer name is refused, never shortened."""
    name = unique("sessionward.test")
    name += "l" * (64 - len(name))
    assert mysql_control.backend.try_leader_lock(name)
    with pytest.raises(ConfigurationError, match="is 65 characters long"):
        mysql_control.backend.try_leader_lock(name + "l")


# --------------------------------------------------------------------------- MariaDB locks


def _lock_holder(mysql: Server, victims: Any) -> tuple[str, str, Victim]:
    """A schema with a table, and a session in ANOTHER schema holding a metadata lock on it."""
    database, elsewhere = mysql.create_database(), mysql.create_database()
    make_table(mysql, database)
    holder = victims(mysql, database=elsewhere)
    open_transaction(holder, f"`{database}`.t")
    return database, elsewhere, holder


def test_a_metadata_lock_holder_in_another_schema_is_ended(mysql, victims, mysql_control):
    control = mysql_control
    if control.backend.server.engine != "mariadb":
        pytest.skip("the metadata_lock_info plugin is MariaDB's")
    with metadata_lock_plugin(mysql) as active:
        if not active:
            pytest.skip("the metadata_lock_info plugin cannot be installed on this server")
        database, elsewhere, holder = _lock_holder(mysql, victims)
        on_it = victims(mysql, database=database)

        result = control.drop_database(database)

    assert result.dropped
    assert {r.pid: r.outcome for r in result.ended} == {
        holder.pid: Outcome.ENDED,
        on_it.pid: Outcome.ENDED,
    }
    assert next(r.session for r in result.ended if r.pid == holder.pid).database == elsewhere
    assert result.notes == ()
    assert not mysql.database_exists(database)
    assert connection_is_gone(mysql, holder)


def test_without_the_plugin_an_unseen_lock_holder_fails_the_drop_fast(
    mysql, victims, mysql_control
):
    control = mysql_control
    if control.backend.server.engine != "mariadb":
        pytest.skip("MySQL shows metadata locks in performance_schema")
    active = mysql.execute(
        "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO'"
    )[0][0]
    if active:
        pytest.skip("the metadata_lock_info plugin is installed here, and not by this test")
    database, _elsewhere, holder = _lock_holder(mysql, victims)

    started = time.monotonic()
    with pytest.raises(DatabaseInUse) as caught:
        control.drop_database(database)
    elapsed = time.monotonic() - started

    assert elapsed < 5
    message = str(caught.value)
    assert "lock wait ran out" in message
    assert f"pid {holder.pid}" in message
    assert "metadata_lock_info" in message
    assert holder.pid in {s.pid for s in caught.value.sessions}
    assert mysql.database_exists(database)
    assert answers(holder)
