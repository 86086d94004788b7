"""The PostgreSQL adapter against real servers (system PostgreSQL and the embedded one).

Every test makes its own database and roles and finds its victims by pid, so
it never touches another session of the server.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

import sessionward
from sessionward import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    Outcome,
    PermissionDenied,
    Safety,
    SessionControl,
    SessionFilter,
    SessionwardError,
)
from sessionward.core import (
    BACKGROUND,
    CLIENT,
    REPLICATION,
    compile_query_regex,
    parse_client,
    parse_target,
    root_blockers,
)
from sessionward.servers.postgresql import PostgresBackend
from sessionward.servers.postgresql._backend import HIDDEN_NOTE
from sessionward.servers.postgresql._queries import queries_for
from tests.fix_servers import ABSENT_PID, Server, Victim, unique, wait_until

pytestmark = pytest.mark.postgresql

MakeVictim = Callable[..., Victim]


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def victim(pg: Server, victims: Any) -> Iterator[MakeVictim]:
    """Make victims on ``pg`` (or ``server=``); end them all before they are closed.

    Ending them first lets the threads of blocked or sleeping victims finish
    at once instead of waiting out their statements.
    """
    made: list[Victim] = []

    def make(*, server: Server | None = None, **kwargs: Any) -> Victim:
        made.append(victims(server or pg, **kwargs))
        return made[-1]

    yield make
    if made:
        pg.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY(%s)",
            ([v.pid for v in made],),
        )


def activity(pg: Server, pid: int) -> tuple[str | None, str | None] | None:
    """(state, wait_event_type) of ``pid`` as the superuser sees it, or None when gone."""
    rows = pg.execute("SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,))
    return rows[0] if rows else None


def wait_active(pg: Server, victim: Victim, *, lock: bool = False) -> None:
    def ready() -> bool:
        seen = activity(pg, victim.pid)
        return seen is not None and seen[0] == "active" and (not lock or seen[1] == "Lock")

    wait_until(ready, what=f"pid {victim.pid} to run{' and wait on a lock' if lock else ''}")


def wait_gone(pg: Server, pid: int) -> None:
    wait_until(lambda: activity(pg, pid) is None, what=f"pid {pid} to exit")


def make_table(pg: Server, database: str, name: str = "accounts") -> None:
    with psycopg.connect(pg.url_for(database), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v int NOT NULL)")
        conn.execute(f"INSERT INTO {name} VALUES (1, 0), (2, 0)")
        conn.execute(f"GRANT ALL ON {name} TO PUBLIC")


def socket_server(pg: Server) -> Server:
    """The same server reached over its Unix socket, for ``local`` clients."""
    directory = pg.execute("SHOW unix_socket_directories")[0][0].split(",")[0].strip()
    if not directory.startswith("/"):
        pytest.skip(f"{pg.name} listens on no Unix socket directory ({directory!r})")
    port = pg.execute("SHOW port")[0][0]
    user = parse_target(pg.url).user or "postgres"
    return Server(
        "pg-socket", "postgresql", f"postgresql://{user}@/postgres?host={directory}&port={port}"
    )


def pids(sessions: Any) -> set[int]:
    return {s.pid for s in sessions}


def open_backend(url: str, *, statement_timeout_seconds: float = 5.0) -> PostgresBackend:
    return PostgresBackend.connect(
        parse_target(url), statement_timeout_seconds=statement_timeout_seconds
    )


# --------------------------------------------------------------------------- snapshot


def test_server_info_names_version_and_own_pid(pg):
    with sessionward.connect(pg.url) as sw:
        server = sw.backend.server
        (version, version_num, application) = pg.execute(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int,"
            " application_name FROM pg_stat_activity WHERE pid = %s",
            (server.own_pid,),
        )[0]
        assert server.engine == "postgresql"
        assert (server.version, server.version_num) == (version, version_num)
        assert 130000 <= server.version_num < 190000
        assert application == "sessionward"
        assert isinstance(sw.backend, PostgresBackend)
        # Timeouts are per session: read them through our own connection.
        rows = sw.backend._fetch(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')"
        )
        assert rows == [("5s", "2500ms")]


def test_idle_and_idle_in_transaction_sessions_are_listed_with_their_ages(pg, victim):
    database, user = pg.create_database(), pg.create_user()
    idle = victim(database=database, user=user)
    idle.run("SELECT 1")
    in_tx = victim(database=database, user=user)
    in_tx.run("BEGIN ISOLATION LEVEL REPEATABLE READ")
    in_tx.run("SELECT 1")
    began = time.monotonic()
    time.sleep(1.2)
    with sessionward.connect(pg.url) as sw:
        snapshot = sw.snapshot()
        slept = time.monotonic() - began

    assert sw.own_pid not in snapshot
    assert sw.own_pid == snapshot.server.own_pid
    now = dt.datetime.now(dt.timezone.utc)
    assert snapshot.taken_at.tzinfo is not None
    assert abs((now - snapshot.taken_at).total_seconds()) < 5

    tx = snapshot.get(in_tx.pid)
    assert tx is not None
    assert tx.state == "idle in transaction"
    assert tx.xact_age_seconds is not None
    assert abs(tx.xact_age_seconds - slept) < 1
    assert tx.state_age_seconds is not None
    assert abs(tx.state_age_seconds - slept) < 1
    assert tx.idle_age_seconds == tx.state_age_seconds
    assert tx.session_age_seconds is not None
    assert tx.session_age_seconds >= tx.xact_age_seconds
    assert tx.query == "SELECT 1"
    assert tx.xmin_age is not None
    assert tx.xmin_age >= 0
    assert (tx.database, tx.user, tx.application) == (database, user, in_tx.application)
    assert (tx.backend_kind, tx.backend_type, tx.is_superuser) == (CLIENT, "client backend", False)
    assert tx.client_addr == "127.0.0.1"
    assert tx.client_port == in_tx.conn.execute("SELECT inet_client_port()").fetchone()[0]
    assert tx.wait == "Client:ClientRead"
    assert (tx.blocked_by, tx.wait_target, tx.wait_age_seconds) == ((), None, None)

    listed = snapshot.get(idle.pid)
    assert listed is not None
    assert listed.state == "idle"
    assert listed.xact_age_seconds is None
    assert listed.running_age_seconds is None
    assert listed.xmin_age is None

    background = [s for s in snapshot.sessions if s.backend_type == "checkpointer"]
    assert len(background) == 1
    assert background[0].backend_kind == BACKGROUND
    assert not background[0].is_client
    assert all(s.backend_kind == BACKGROUND for s in snapshot.sessions if s.user is None)
    assert background[0].pid not in pids(SessionFilter().select(snapshot))
    assert background[0].pid in pids(SessionFilter(include_background=True).select(snapshot))


def test_snapshot_is_one_row_per_session(pg, victim):
    database = pg.create_database()
    made = [victim(database=database, user=pg.create_user()) for _ in range(3)]
    with sessionward.connect(pg.url) as sw:
        snapshot = sw.snapshot()
    listed = [s.pid for s in snapshot.sessions]
    assert len(listed) == len(set(listed))
    assert {v.pid for v in made} <= set(listed)
    assert all(isinstance(s.session_age_seconds, float) for s in snapshot.sessions)


def test_every_filter_field_selects_exactly_the_expected_sessions(pg, victim):
    db1, db2 = pg.create_database(), pg.create_database()
    u1, u2 = pg.create_user(), pg.create_user()
    make_table(pg, db1)
    tag = unique("swf")

    old_idle = victim(database=db1, user=u1, application=f"{tag}-old-idle")
    old_idle.run("SELECT 1")
    old_tx = victim(database=db1, user=u1, application=f"{tag}-old-tx")
    old_tx.run("BEGIN")
    old_tx.run("SELECT 1")
    holder = victim(database=db1, user=u2, application=f"{tag}-old-holder")
    holder.run("BEGIN")
    holder.run("UPDATE accounts SET v = v + 1 WHERE id = 1")
    old_sleeper = victim(database=db2, user=u1, application=f"{tag}-old-sleeper")
    old_sleeper.start("SELECT pg_sleep(60) /* old-sleeper */")
    time.sleep(2.0)

    waiter = victim(database=db1, user=u1, application=f"{tag}-new-waiter")
    waiter.start("UPDATE accounts SET v = v + 1 WHERE id = 1")
    fresh_idle = victim(database=db2, user=u2, application=f"{tag}-new-idle")
    fresh_idle.run("SELECT 2")
    aborted = victim(database=db2, user=u2, application=f"{tag}-new-aborted")
    aborted.run("BEGIN")
    with pytest.raises(psycopg.errors.DivisionByZero):
        aborted.run("SELECT 1 / 0")
    local = victim(server=socket_server(pg), database=db2, user=u1, application=f"{tag}-new-local")
    local.run("SELECT 3")
    new_sleeper = victim(database=db1, user=u2, application=f"{tag}-new-sleeper")
    new_sleeper.start("SELECT pg_sleep(60) /* new-sleeper */")
    wait_active(pg, waiter, lock=True)
    wait_active(pg, new_sleeper)
    wait_active(pg, old_sleeper)

    with sessionward.connect(pg.url) as sw:
        snapshot = sw.snapshot()
    everyone = {
        v.pid
        for v in (old_idle, old_tx, holder, old_sleeper, waiter, fresh_idle, aborted, local,
                  new_sleeper)
    }  # fmt: skip
    assert everyone <= pids(snapshot.sessions)

    def pick(**fields: Any) -> set[int]:
        return pids(SessionFilter(**fields).select(snapshot)) & everyone

    assert pick() == everyone
    assert pick(databases=(db1,)) == {old_idle.pid, old_tx.pid, holder.pid, waiter.pid,
                                      new_sleeper.pid}  # fmt: skip
    assert pick(databases=(db1, db2)) == everyone
    assert pick(databases=("sw_*",)) == everyone
    assert pick(users=(u2,)) == {holder.pid, fresh_idle.pid, aborted.pid, new_sleeper.pid}
    assert pick(applications=(f"{tag}-old-*",)) == {
        old_idle.pid, old_tx.pid, holder.pid, old_sleeper.pid
    }  # fmt: skip
    assert pick(applications=(f"{tag}-new-idle", f"{tag}-*-tx")) == {fresh_idle.pid, old_tx.pid}
    assert pick(clients=(parse_client("local"),)) == {local.pid}
    assert pick(clients=(parse_client("127.0.0.0/8"),)) == everyone - {local.pid}
    assert pick(clients=(parse_client("127.0.0.1"),)) == everyone - {local.pid}
    assert pick(clients=(parse_client("10.0.0.0/8"),)) == set()
    assert pick(states=("idle",)) == {old_idle.pid, fresh_idle.pid, local.pid}
    assert pick(states=("idle in transaction",)) == {old_tx.pid, holder.pid}
    assert pick(states=("idle in transaction (aborted)",)) == {aborted.pid}
    assert pick(states=("active",)) == {old_sleeper.pid, new_sleeper.pid, waiter.pid}
    assert pick(query=compile_query_regex(r"old-sleeper")) == {old_sleeper.pid}
    assert pick(query=compile_query_regex(r"^update accounts")) == {holder.pid, waiter.pid}
    assert pick(idle_over_seconds=1.0) == {old_idle.pid, old_tx.pid, holder.pid}
    assert pick(xact_over_seconds=1.0) == {old_tx.pid, holder.pid, old_sleeper.pid}
    assert pick(query_over_seconds=1.0) == {old_sleeper.pid}
    assert pick(blocking=True) == {holder.pid}
    assert pick(blocked=True) == {waiter.pid}
    assert pick(databases=(db1,), states=("active",)) == {waiter.pid, new_sleeper.pid}

    seen_local = snapshot.get(local.pid)
    assert seen_local is not None
    assert (seen_local.client_addr, seen_local.client_port, seen_local.client) == (
        None, None, "local"
    )  # fmt: skip
    assert snapshot.get(aborted.pid).state == "idle in transaction (aborted)"


# --------------------------------------------------------------------------- lock waits


def test_partial_snapshot_reads_only_the_sessions_asked_for_as_a_whole_one_does(pg, victim):
    database, user = pg.create_database(), pg.create_user()
    make_table(pg, database)
    holder = victim(database=database, user=user)
    holder.run("BEGIN")
    holder.run("UPDATE accounts SET v = v + 1 WHERE id = 1")
    waiter = victim(database=database, user=user)
    waiter.start("UPDATE accounts SET v = v + 1 WHERE id = 1")
    wait_active(pg, waiter, lock=True)
    bystander = victim(database=database, user=user)
    with sessionward.connect(pg.url_for(database)) as sw:
        whole = sw.snapshot()
        part = sw.snapshot([holder.pid, waiter.pid, ABSENT_PID])
    assert not whole.partial
    assert part.partial
    assert pids(part.sessions) == {holder.pid, waiter.pid}
    assert bystander.pid in whole
    assert bystander.pid not in part
    for pid in (holder.pid, waiter.pid):
        seen, also = whole.get(pid), part.get(pid)
        same = ("state", "user", "database", "application", "client_port", "started_at",
                "blocked_by", "wait", "wait_target", "query", "is_superuser")  # fmt: skip
        assert {f: getattr(also, f) for f in same} == {f: getattr(seen, f) for f in same}
        assert also.state_age_seconds >= seen.state_age_seconds
    assert part.get(waiter.pid).blocked_by == (holder.pid,)


def test_transactions_only_lists_sessions_in_a_transaction_or_a_statement(pg, victim):
    database = pg.create_database()
    in_transaction = victim(database=database)
    in_transaction.run("BEGIN")
    in_transaction.run("SELECT 1")
    running = victim(database=database)
    running.start("SELECT pg_sleep(30)")
    wait_active(pg, running)
    idle = victim(database=database)
    with sessionward.connect(pg.url) as sw:
        seen = sw.snapshot(transactions_only=True)
        assert seen.partial
        assert in_transaction.pid in seen
        assert running.pid in seen
        assert idle.pid not in seen
        in_transaction.run("COMMIT")
        assert in_transaction.pid not in sw.snapshot(transactions_only=True)


def test_lock_forest_shows_the_chain_and_what_each_waits_on(pg, victim):
    database, user = pg.create_database(), pg.create_user()
    make_table(pg, database)
    a = victim(database=database, user=user)
    a.run("BEGIN")
    a.run("UPDATE accounts SET v = v + 1 WHERE id = 1")
    xid = a.run("SELECT pg_current_xact_id()::text")[0][0]
    b = victim(database=database, user=user)
    b.start("UPDATE accounts SET v = v + 1 WHERE id = 1")
    wait_active(pg, b, lock=True)
    c = victim(database=database, user=user)
    c.start("UPDATE accounts SET v = v + 1 WHERE id = 1")
    wait_active(pg, c, lock=True)
    d = victim(database=database, user=user)
    d.start("BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
    wait_active(pg, d, lock=True)

    # Connected to the victims' database, relation names resolve.
    with sessionward.connect(pg.url_for(database)) as sw:
        snapshot = sw.snapshot()
        forest = sw.blockers(snapshot)
    version_num = snapshot.server.version_num
    sb, sc, sd = snapshot.get(b.pid), snapshot.get(c.pid), snapshot.get(d.pid)
    assert sb.blocked_by == (a.pid,)
    assert (sb.wait, sb.wait_target) == ("Lock:transactionid", f"transactionid {xid}")
    assert sc.blocked_by == (b.pid,)
    assert (sc.wait, sc.wait_target) == ("Lock:tuple", "tuple public.accounts")
    assert (sd.wait, sd.wait_target) == ("Lock:relation", "relation public.accounts")
    assert a.pid in sd.blocked_by
    assert list(sd.blocked_by) == sorted(sd.blocked_by)
    assert snapshot.get(a.pid).blocked_by == ()
    for waiting in (sb, sc, sd):
        if version_num >= 140000:
            assert waiting.wait_age_seconds is not None
            assert 0 <= waiting.wait_age_seconds < 30
        else:
            assert waiting.wait_age_seconds is None

    ours = [tree for tree in forest if tree.pid in {a.pid, b.pid, c.pid, d.pid}]
    assert [tree.pid for tree in ours] == [a.pid]
    root = ours[0]
    under_a = {node.pid: node for node in root.waiters}
    assert b.pid in under_a
    assert c.pid in {node.pid for node in under_a[b.pid].waiters}
    assert root.descendants() == {b.pid, c.pid, d.pid}
    assert root_blockers(snapshot, [c.pid]) == (a.pid,)
    assert root_blockers(snapshot, [d.pid, b.pid]) == (a.pid,)

    # From another database the relation is named by oid and database.
    with sessionward.connect(pg.url) as sw:
        far = sw.snapshot().get(d.pid)
    assert far.wait_target is not None
    assert far.wait_target.startswith("relation #")
    assert far.wait_target.endswith(f" in database {database}")


def test_advisory_lock_wait_names_the_key(pg, victim):
    database, user = pg.create_database(), pg.create_user()
    holder = victim(database=database, user=user)
    holder.run("SELECT pg_advisory_lock(4242)")
    pair_holder = victim(database=database, user=user)
    pair_holder.run("SELECT pg_advisory_lock(7, 9)")
    waiter = victim(database=database, user=user)
    waiter.start("SELECT pg_advisory_lock(4242)")
    pair_waiter = victim(database=database, user=user)
    pair_waiter.start("SELECT pg_advisory_lock(7, 9)")
    wait_active(pg, waiter, lock=True)
    wait_active(pg, pair_waiter, lock=True)
    with sessionward.connect(pg.url) as sw:
        snapshot = sw.snapshot()
    assert snapshot.get(waiter.pid).wait_target == "advisory 4242"
    assert snapshot.get(waiter.pid).blocked_by == (holder.pid,)
    assert snapshot.get(pair_waiter.pid).wait_target == "advisory 7,9"


# --------------------------------------------------------------------------- ending sessions


def test_terminate_by_filter_ends_exactly_the_matching_sessions(pg, victim):
    database, other_database = pg.create_database(), pg.create_database()
    user, other_user = pg.create_user(), pg.create_user()
    doomed = [victim(database=database, user=user) for _ in range(3)]
    doomed[0].run("BEGIN")
    doomed[0].run("SELECT 1")
    doomed[1].start("SELECT pg_sleep(60)")
    wait_active(pg, doomed[1])
    same_user_elsewhere = victim(database=other_database, user=user)
    other_user_here = victim(database=database, user=other_user)

    with sessionward.connect(pg.url) as sw:
        chosen = sw.sessions(SessionFilter(databases=(database,), users=(user,)))
        assert pids(chosen) == {v.pid for v in doomed}
        started = time.monotonic()
        results = sw.terminate([s.pid for s in chosen])
        elapsed = time.monotonic() - started
        after = sw.snapshot()

    assert {r.pid: r.outcome for r in results} == {v.pid: Outcome.ENDED for v in doomed}
    assert all(r.ok and r.session is not None for r in results)
    assert elapsed < 5
    for v in doomed:
        assert v.pid not in after
        assert activity(pg, v.pid) is None
    _, error = doomed[1].result()
    assert isinstance(error, psycopg.OperationalError)
    with pytest.raises(psycopg.OperationalError) as seen:
        doomed[0].run("SELECT 1")
    assert isinstance(seen.value, (psycopg.errors.AdminShutdown, psycopg.OperationalError))
    for survivor in (same_user_elsewhere, other_user_here):
        assert survivor.run("SELECT 1") == [(1,)]
        assert survivor.pid in after


def test_terminate_refuses_own_unknown_and_superuser_sessions(pg, victim):
    database = pg.create_database()
    superuser_victim = victim(database=database)  # the fixture's superuser
    with sessionward.connect(pg.url) as sw:
        own, unknown, superuser = sw.terminate([sw.own_pid, ABSENT_PID, superuser_victim.pid])
        assert (own.outcome, unknown.outcome) == (Outcome.PROTECTED, Outcome.ALREADY_GONE)
        assert superuser.outcome is Outcome.PROTECTED
        assert "superuser" in superuser.detail
        assert superuser_victim.run("SELECT 1") == [(1,)]
        assert sw.snapshot().get(superuser_victim.pid).is_superuser is True

        (allowed,) = sw.terminate([superuser_victim.pid], safety=Safety(include_superusers=True))
    assert allowed.outcome is Outcome.ENDED
    wait_gone(pg, superuser_victim.pid)
    with pytest.raises(psycopg.OperationalError):
        superuser_victim.run("SELECT 1")


def test_terminate_without_privilege_is_not_permitted_and_names_pg_signal_backend(pg, victim):
    database = pg.create_database()
    target_role, weak = pg.create_user(), pg.create_user()
    signaller = pg.create_user(grants="GRANT pg_signal_backend TO {user}")
    target = victim(database=database, user=target_role)

    with sessionward.connect(pg.url_for(database, weak)) as sw:
        (refused,) = sw.terminate([target.pid])
    assert refused.outcome is Outcome.NOT_PERMITTED
    assert refused.detail == (
        f"not permitted to terminate pid {target.pid} (user {target_role}): requires superuser, "
        f'membership in role "{target_role}", or pg_signal_backend '
        "(never enough for a superuser's session)"
    )
    # Hidden from this role, the session still counts as a client, state unknown.
    assert refused.session is not None
    assert refused.session.state is None
    assert target.run("SELECT 1") == [(1,)]

    with sessionward.connect(pg.url_for(database, signaller)) as sw:
        (ended,) = sw.terminate([target.pid])
    assert ended.outcome is Outcome.ENDED
    assert activity(pg, target.pid) is None
    with pytest.raises(psycopg.OperationalError):
        target.run("SELECT 1")


def test_permission_denied_on_a_superuser_session_says_why(pg, victim):
    database, weak = pg.create_database(), pg.create_user()
    signaller = pg.create_user(grants="GRANT pg_signal_backend TO {user}")
    superuser_victim = victim(database=database)
    for role in (weak, signaller):
        backend = open_backend(pg.url_for(database, role))
        try:
            with pytest.raises(PermissionDenied) as denied:
                backend.terminate(superuser_victim.pid)
        finally:
            backend.close()
        assert str(denied.value) == (
            f"not permitted to terminate pid {superuser_victim.pid} "
            f"(user {parse_target(pg.url).user}): it is a superuser's session, "
            "which only a superuser may signal"
        )
        assert isinstance(denied.value.__cause__, psycopg.errors.InsufficientPrivilege)
    assert superuser_victim.run("SELECT 1") == [(1,)]


def test_cancel_stops_the_statement_and_keeps_the_session(pg, victim):
    database, user = pg.create_database(), pg.create_user()
    sleeper = victim(database=database, user=user)
    bystander = victim(database=database, user=user)
    bystander.start("SELECT pg_sleep(60)")
    sleeper.start("SELECT pg_sleep(30)")
    wait_active(pg, sleeper)
    wait_active(pg, bystander)
    with sessionward.connect(pg.url) as sw:
        started = time.monotonic()
        (result,) = sw.cancel([sleeper.pid])
        elapsed = time.monotonic() - started
        after = sw.snapshot()
    assert result.outcome is Outcome.ENDED
    assert elapsed < 1.5
    _, error = sleeper.result()
    assert isinstance(error, psycopg.errors.QueryCanceled)
    assert sleeper.pid in after
    assert after.get(sleeper.pid).state == "idle"
    assert sleeper.run("SELECT 1") == [(1,)]
    assert activity(pg, bystander.pid) == ("active", "Timeout")


def test_dry_run_ends_nothing(pg, victim):
    database, user = pg.create_database(), pg.create_user()
    target = victim(database=database, user=user)
    with sessionward.connect(pg.url) as sw:
        (would,) = sw.terminate([target.pid], dry_run=True)
        assert would.outcome is Outcome.WOULD_END
        assert target.pid in sw.snapshot()
    assert target.run("SELECT 1") == [(1,)]


def test_replication_sender_is_listed_as_replication_and_protected(pg):
    url = pg.url_for("postgres") + "?replication=database"
    sender = psycopg.connect(url, autocommit=True)
    try:
        with sessionward.connect(pg.url) as sw:
            seen = sw.snapshot().get(sender.info.backend_pid)
            assert seen is not None
            assert (seen.backend_kind, seen.backend_type) == (REPLICATION, "walsender")
            (result,) = sw.terminate([sender.info.backend_pid])
            assert result.outcome is Outcome.PROTECTED
            (ended,) = sw.terminate(
                [sender.info.backend_pid],
                safety=Safety(include_replication=True, include_superusers=True),
            )
            assert ended.outcome is Outcome.ENDED
    finally:
        sender.close()


def test_parallel_workers_are_background_and_never_ended(pg, victim):
    database, user = pg.create_database(), pg.create_user()
    with psycopg.connect(pg.url_for(database), autocommit=True) as conn:
        conn.execute("CREATE TABLE rows AS SELECT g AS id FROM generate_series(1, 4000) AS g")
        conn.execute("GRANT SELECT ON rows TO PUBLIC")
    leader = victim(database=database, user=user)
    for setting in (
        "parallel_setup_cost = 0",
        "parallel_tuple_cost = 0",
        "min_parallel_table_scan_size = 0",
        "max_parallel_workers_per_gather = 2",
    ):
        leader.run(f"SET {setting}")
    leader.start("SELECT count(*) FROM rows WHERE pg_sleep(0.005) IS NOT NULL")
    wait_active(pg, leader)

    def workers() -> list[int]:
        rows = pg.execute(
            "SELECT pid FROM pg_stat_activity WHERE leader_pid = %s AND pid <> %s",
            (leader.pid, leader.pid),
        )
        return [pid for (pid,) in rows]

    worker_pids = wait_until(workers, what="parallel workers to start")
    with sessionward.connect(pg.url) as sw:
        snapshot = sw.snapshot()
        seen = snapshot.get(worker_pids[0])
        assert seen is not None
        assert (seen.backend_kind, seen.backend_type) == (BACKGROUND, "parallel worker")
        assert worker_pids[0] not in pids(SessionFilter().select(snapshot))
        (refused,) = sw.terminate(
            [worker_pids[0]], safety=Safety(include_superusers=True, include_replication=True)
        )
        assert refused.outcome is Outcome.PROTECTED
        (cancelled,) = sw.cancel([leader.pid])
    assert cancelled.outcome is Outcome.ENDED
    _, error = leader.result()
    assert isinstance(error, psycopg.errors.QueryCanceled)


def test_signalling_a_gone_pid_is_false_and_quiet(pg, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    backend = open_backend(pg.url)
    try:
        assert backend.terminate(ABSENT_PID) is False
        assert backend.cancel(ABSENT_PID) is False
        assert backend.probe([ABSENT_PID]) == {}
        assert backend.probe([]) == {}
        started = time.monotonic()
        backend.wait_for_exit(ABSENT_PID, timeout_seconds=2)
        assert time.monotonic() - started < 1
    finally:
        backend.close()
    assert caplog.records == []
    assert capfd.readouterr().err == ""


def test_probe_tokens_change_with_each_statement(pg, victim):
    database, user = pg.create_database(), pg.create_user()
    worker = victim(database=database, user=user)
    idle = victim(database=database, user=user)
    backend = open_backend(pg.url)
    try:
        worker.start("SELECT pg_sleep(30)")
        wait_active(pg, worker)
        first = backend.probe([worker.pid, idle.pid, ABSENT_PID])
        assert set(first) == {worker.pid, idle.pid}
        assert first[idle.pid] is None
        assert first[worker.pid] is not None
        assert backend.probe([worker.pid]) == {worker.pid: first[worker.pid]}
        assert backend.cancel(worker.pid) is True
        worker.result()
        worker.start("SELECT pg_sleep(30)")
        wait_active(pg, worker)
        second = backend.probe([worker.pid])
        assert second[worker.pid] not in (None, first[worker.pid])
    finally:
        backend.close()


def test_wait_for_exit_returns_once_the_backend_is_gone(pg, victim):
    database, user = pg.create_database(), pg.create_user()
    target = victim(database=database, user=user)
    target.start("SELECT pg_sleep(60)")
    wait_active(pg, target)
    backend = open_backend(pg.url)
    try:
        assert backend.terminate(target.pid) is True
        started = time.monotonic()
        backend.wait_for_exit(target.pid, timeout_seconds=3)
        waited = time.monotonic() - started
        if backend.server.version_num >= 140000:
            # The server waited: the backend is gone when the call returns.
            assert backend.probe([target.pid]) == {}
        assert waited < 2
        wait_until(lambda: backend.probe([target.pid]) == {}, what="the exit")
    finally:
        backend.close()


def test_postgresql_13_queries_work_and_poll_for_exit(pg, victim):
    """The PostgreSQL 13 variants, run on a newer server: no wait age, a polling wait."""
    database, user = pg.create_database(), pg.create_user()
    make_table(pg, database)
    holder = victim(database=database, user=user)
    holder.run("BEGIN")
    holder.run("UPDATE accounts SET v = 1 WHERE id = 2")
    waiter = victim(database=database, user=user)
    waiter.start("UPDATE accounts SET v = 2 WHERE id = 2")
    wait_active(pg, waiter, lock=True)
    backend = open_backend(pg.url_for(database))
    backend._queries = queries_for(130016)
    try:
        snapshot = backend.snapshot()
        seen = snapshot.get(waiter.pid)
        assert seen.blocked_by == (holder.pid,)
        assert seen.wait_target.startswith("transactionid ")
        assert seen.wait_age_seconds is None

        started = time.monotonic()
        backend.wait_for_exit(holder.pid, timeout_seconds=3)
        assert time.monotonic() - started < 0.5  # a poll interval, no server-side wait
        assert activity(pg, holder.pid) is not None

        (ended,) = SessionControl(backend).terminate([holder.pid])
        assert ended.outcome is Outcome.ENDED
        assert activity(pg, holder.pid) is None
    finally:
        backend.close()


# --------------------------------------------------------------------------- privileges


def test_role_without_read_all_stats_gets_a_degraded_but_parsed_snapshot(pg, victim):
    database = pg.create_database()
    other, weak = pg.create_user(), pg.create_user()
    reader = pg.create_user(grants="GRANT pg_read_all_stats TO {user}")
    hidden = victim(database=database, user=other)
    hidden.run("BEGIN")
    hidden.run("SELECT 1")
    mine = victim(database=database, user=weak)
    mine.run("SELECT 42")

    with sessionward.connect(pg.url_for(database, weak)) as sw:
        snapshot = sw.snapshot()
        again = sw.snapshot()
    assert snapshot.degraded == (HIDDEN_NOTE,)
    assert again.degraded == (HIDDEN_NOTE,)
    assert "pg_read_all_stats" in HIDDEN_NOTE
    seen = snapshot.get(hidden.pid)
    assert seen is not None
    assert (seen.user, seen.database, seen.backend_kind) == (other, database, CLIENT)
    assert (seen.state, seen.query, seen.xact_age_seconds, seen.is_superuser) == (
        None, None, None, False
    )  # fmt: skip
    own = snapshot.get(mine.pid)
    assert (own.state, own.query) == ("idle", "SELECT 42")
    assert not SessionFilter(states=("idle in transaction",)).matches(seen, snapshot)

    with sessionward.connect(pg.url_for(database, reader)) as sw:
        full = sw.snapshot()
    assert full.degraded == ()
    assert full.get(hidden.pid).state == "idle in transaction"


# --------------------------------------------------------------------------- errors


def test_connect_to_a_closed_port_fails_without_the_password(pg):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://app:Sekr1t-pass@127.0.0.1:{port}/shop"
    with pytest.raises(ConnectionFailed) as failed:
        sessionward.connect(url)
    assert not isinstance(failed.value, AuthenticationFailed)
    assert str(failed.value) == (
        f"cannot connect to postgresql://app:***@127.0.0.1:{port}/shop: connection refused"
    )
    assert "Sekr1t" not in str(failed.value)
    assert isinstance(failed.value.__cause__, psycopg.OperationalError)


def test_a_url_libpq_rejects_is_a_configuration_error_without_the_password():
    with pytest.raises(ConfigurationError) as rejected:
        sessionward.connect("postgresql://app:Sekr1t@127.0.0.1:5432/shop?Password=Sekr1t")
    assert "Sekr1t" not in str(rejected.value)
    assert str(rejected.value) == (
        "invalid PostgreSQL URL postgresql://app:***@127.0.0.1:5432/shop?Password=***: "
        'invalid URI query parameter: "Password"'
    )
    # A URL libpq would read differently from sessionward never reaches it.
    with pytest.raises(ConfigurationError, match="not followed by two hex digits") as refused:
        sessionward.connect("postgresql://app:p%zzSekr1t@127.0.0.1:5432/shop")
    assert "Sekr1t" not in str(refused.value)


def test_connect_to_a_missing_database_is_a_connection_failure(pg):
    missing = unique("sw_missing")
    with pytest.raises(ConnectionFailed) as failed:
        sessionward.connect(pg.url_for(missing))
    assert not isinstance(failed.value, AuthenticationFailed)
    assert f'database "{missing}" does not exist' in str(failed.value)
    assert "\n" not in str(failed.value)


def test_connect_accepts_driver_suffix_and_libpq_environment(pg, monkeypatch):
    target = parse_target(pg.url)
    scheme, rest = pg.url.split("://", 1)
    with sessionward.connect(f"{scheme}+psycopg://{rest}") as sw:
        assert sw.own_pid > 0
    monkeypatch.setenv("PGHOST", target.host or "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(target.port or 5432))
    monkeypatch.setenv("PGUSER", target.user or "postgres")
    monkeypatch.setenv("PGDATABASE", target.database or "postgres")
    with sessionward.connect("postgresql://") as sw:
        assert sw.snapshot().server.own_pid == sw.own_pid


def test_connect_timeout_defaults_to_5s_unless_the_url_sets_one(pg):
    with sessionward.connect(pg.url) as sw:
        assert sw.backend._conn.info.get_parameters()["connect_timeout"] == "5"
    with sessionward.connect(pg.url_for("postgres") + "?connect_timeout=3") as sw:
        assert sw.backend._conn.info.get_parameters()["connect_timeout"] == "3"


def test_losing_the_connection_is_reported_and_close_is_idempotent(pg):
    sw = sessionward.connect(pg.url)
    pg.execute("SELECT pg_terminate_backend(%s)", (sw.own_pid,))
    wait_gone(pg, sw.own_pid)
    with pytest.raises(ConnectionFailed, match=r"^lost the connection to postgresql://"):
        sw.snapshot()
    sw.close()
    sw.close()
    with pytest.raises(ConnectionFailed, match="lost the connection"):
        sw.snapshot()


def test_catalog_statement_timeout_is_reported(pg):
    backend = open_backend(pg.url, statement_timeout_seconds=0.2)
    try:
        with pytest.raises(SessionwardError, match=r"exceeded the 0\.2s statement timeout"):
            backend._fetch("SELECT pg_sleep(2)")
        # The connection survives its own timeout.
        assert backend.snapshot().server is backend.server
    finally:
        backend.close()


def test_catalog_lock_wait_gives_up_at_the_lock_timeout(pg):
    database = pg.create_database()
    backend = open_backend(pg.url_for(database), statement_timeout_seconds=1.0)
    locker = psycopg.connect(pg.url_for(database))  # in a transaction until rollback
    try:
        locker.execute("LOCK TABLE pg_class IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(SessionwardError, match=r"waited over 0\.5s for a lock"):
            backend.snapshot()
        assert time.monotonic() - started < 1.0
        locker.rollback()
        assert backend.snapshot().sessions
    finally:
        locker.close()
        backend.close()


@pytest.fixture(scope="module")
def password_server() -> Iterator[Server]:
    """A throwaway embedded PostgreSQL that asks every role but postgres for a password."""
    import os
    import tempfile

    from sessionward.embedded import EmbeddedPostgres
    from tests.fix_servers import missing_server

    folder = tempfile.mkdtemp(prefix="sessionward-hba-")
    os.chmod(folder, 0o755)  # the server may run as another OS user
    hba = os.path.join(folder, "pg_hba.conf")
    with open(hba, "w") as file:
        file.write(
            "local all all trust\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
    os.chmod(hba, 0o644)
    # scram-sha-256 is the default only from PostgreSQL 14; 13 stores md5 otherwise.
    settings = {"hba_file": hba, "password_encryption": "scram-sha-256"}
    server = EmbeddedPostgres(max_connections=20, settings=settings)
    try:
        server.start()
    except SessionwardError as error:
        missing_server(f"embedded PostgreSQL could not start: {error}")
    try:
        yield Server("pg-password", "postgresql", server.url)
    finally:
        server.stop()
        os.remove(hba)
        os.rmdir(folder)


@pytest.mark.slow
def test_wrong_or_missing_password_is_an_authentication_failure(password_server, monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")
    role, secret = unique("swu"), "Right-Pa55word"
    password_server.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{secret}'")
    port = parse_target(password_server.url).port

    wrong = f"postgresql://{role}:Wr0ng-Pa55word@127.0.0.1:{port}/postgres"
    with pytest.raises(AuthenticationFailed) as failed:
        sessionward.connect(wrong)
    message = str(failed.value)
    assert message.startswith(
        f"cannot connect to postgresql://{role}:***@127.0.0.1:{port}/postgres: "
    )
    assert f'password authentication failed for user "{role}"' in message
    assert "Wr0ng" not in message
    assert "\n" not in message

    with pytest.raises(AuthenticationFailed, match="no password supplied"):
        sessionward.connect(f"postgresql://{role}@127.0.0.1:{port}/postgres")

    right = f"postgresql://{role}:{secret}@127.0.0.1:{port}/postgres"
    with sessionward.connect(right) as sw:
        assert sw.snapshot().server.own_pid == sw.own_pid
        assert secret not in repr(sw.backend.server)

    # A password in a query parameter is scrubbed too.
    with pytest.raises(AuthenticationFailed) as failed:
        sessionward.connect(
            f"postgresql://{role}@127.0.0.1:{port}/postgres?password=Wr0ng-Pa55word"
        )
    assert "Wr0ng" not in str(failed.value)
    assert "password=***" in str(failed.value)
