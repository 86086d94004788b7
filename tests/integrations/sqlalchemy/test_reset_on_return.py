"""Through the ``sessionward`` plugin with ``sessionward_skip_rollback_after_commit=true``,
PyMySQL and mysqlclient engines leave out the ``ROLLBACK`` SQLAlchemy sends on every return
after a commit, and only then: a connection returned with anything sent since its commit (or
never committed) is still rolled back.

Counted on the server: ``Com_rollback`` of the session itself; what is left open, from the
locks another session waits on.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import socket
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
import sqlalchemy
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from sessionward import ConfigurationError
from sessionward.integrations.sqlalchemy import _liveness, _reset
from sessionward.sqlalchemy import harden
from tests.fix_servers import _mysql_server, mysql_connect
from tests.integrations.errors._own_servers import OwnMariaDB
from tests.integrations.sqlalchemy.conftest import Lab, need_mysqlclient, sqlalchemy_url

TRANSACTIONS = 10
#: ER_LOCK_WAIT_TIMEOUT.
LOCK_WAIT_TIMEOUT = 1205
#: Item ids of this module: far from the other tests' in the shared table.
_ids = itertools.count(random.randrange(1, 2**30) * 1000 + 500)


@pytest.fixture(params=["pymysql", "mysqldb"])
def mysql_lab(request: pytest.FixtureRequest, sqla_databases: Any) -> Iterator[Lab]:
    if request.param == "mysqldb":
        need_mysqlclient()
    server = _mysql_server()
    made = Lab(server, sqla_databases.on(server), request.param)
    yield made
    made.close()


def _plugged(lab: Lab, **kwargs: Any) -> Engine:
    return lab.engine(
        plugins=["sessionward"],
        sessionward_skip_rollback_after_commit=True,
        pool_size=1,
        max_overflow=0,
        **kwargs,
    )


def _rollbacks_sent(engine: Engine) -> int:
    """ROLLBACKs the server received so far on the engine's one pooled connection, not
    counting the one that returning this very checkout may send."""
    with engine.connect() as connection:
        row = connection.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_rollback'").one()
    return int(row[1])


def _rollbacks_during(engine: Engine, work: Any) -> int:
    _rollbacks_sent(engine)  # connected, and its start-up statements done
    before = _rollbacks_sent(engine)
    work()
    return _rollbacks_sent(engine) - before - 1  # less the first count's own return


def _insert_and_commit(engine: Engine, ids: list[int]) -> None:
    for _ in range(TRANSACTIONS):
        ids.append(next(_ids))
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO sw_items (id, note) VALUES (:id, 'reset')"), {"id": ids[-1]}
            )


def _count(lab: Lab, ids: list[int]) -> int:
    marks = ", ".join(str(i) for i in ids)
    return int(lab.sql(f"SELECT COUNT(*) FROM sw_items WHERE id IN ({marks})")[0][0])


def _row_is_free(lab: Lab, item: int) -> bool:
    """Whether another session can update the row at once: no transaction holds its lock.
    (``information_schema.INNODB_TRX`` would tell too, but it is a cache that other
    sessions reading it keep stale.)"""
    other = mysql_connect(lab.server.url_for(lab.database))
    try:
        with other.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
            try:
                cursor.execute("UPDATE sw_items SET note = 'free' WHERE id = %s", (item,))
            except pymysql.err.OperationalError as error:
                if error.args[0] == LOCK_WAIT_TIMEOUT:
                    return False
                raise
            return True
    finally:
        other.close()


def test_no_rollback_is_sent_after_a_commit_and_the_rows_are_kept(mysql_lab: Lab) -> None:
    plain = mysql_lab.engine(pool_size=1, max_overflow=0)
    plugged = _plugged(mysql_lab)
    assert _reset.supported()  # Linux 4.19+: where the tests run, the saving is made
    plain_ids: list[int] = []
    plugged_ids: list[int] = []

    by_plain = _rollbacks_during(plain, lambda: _insert_and_commit(plain, plain_ids))
    by_plugged = _rollbacks_during(plugged, lambda: _insert_and_commit(plugged, plugged_ids))

    assert by_plain == TRANSACTIONS  # what SQLAlchemy sends without us
    assert by_plugged == 0
    assert _count(mysql_lab, plain_ids) == TRANSACTIONS
    assert _count(mysql_lab, plugged_ids) == TRANSACTIONS


def test_an_explicit_rollback_is_not_followed_by_another(mysql_lab: Lab) -> None:
    engine = _plugged(mysql_lab)

    def work() -> None:
        for _ in range(TRANSACTIONS):
            with engine.connect() as connection:
                connection.execute(text("SELECT COUNT(*) FROM sw_items"))
                connection.rollback()

    assert _rollbacks_during(engine, work) == TRANSACTIONS  # only the application's own


def test_a_connection_returned_in_a_transaction_is_rolled_back_and_its_locks_released(
    mysql_lab: Lab,
) -> None:
    engine = _plugged(mysql_lab)
    item = next(_ids)
    mysql_lab.sql("INSERT INTO sw_items (id, note) VALUES (%s, 'locked')", (item,))
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
        connection.commit()  # noted, and then...
    raw = engine.raw_connection()  # ...a checkout with no SQLAlchemy transaction at all
    cursor = raw.cursor()
    cursor.execute("UPDATE sw_items SET note = 'held' WHERE id = %s", (item,))
    cursor.execute("INSERT INTO sw_items (id, note) VALUES (%s, 'uncommitted')", (item + 1,))
    cursor.close()
    assert not _row_is_free(mysql_lab, item)  # the transaction holds the row
    raw.close()  # returned without a commit

    assert _row_is_free(mysql_lab, item)
    assert _count(mysql_lab, [item + 1]) == 0


def test_raw_statements_after_a_sqlalchemy_commit_are_rolled_back(mysql_lab: Lab) -> None:
    engine = _plugged(mysql_lab)
    item = next(_ids)

    def work() -> None:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
            connection.commit()  # noted: only a ROLLBACK-free return would follow
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.execute("INSERT INTO sw_items (id, note) VALUES (%s, 'raw')", (item,))
            cursor.close()

    assert _rollbacks_during(engine, work) == 1
    assert _count(mysql_lab, [item]) == 0


def test_a_read_view_opened_after_a_commit_does_not_outlive_the_checkout(mysql_lab: Lab) -> None:
    engine = _plugged(mysql_lab)
    with engine.connect() as connection:
        session = mysql_lab.pid_of(connection)
        connection.commit()
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute("SELECT COUNT(*) FROM sw_items")  # a result set: no status comes back
        cursor.fetchall()
        cursor.close()

    item = next(_ids)
    mysql_lab.sql("INSERT INTO sw_items (id, note) VALUES (%s, 'later')", (item,))
    with engine.connect() as connection:
        assert mysql_lab.pid_of(connection) == session  # the same connection, kept
        seen = connection.exec_driver_sql(f"SELECT COUNT(*) FROM sw_items WHERE id = {item}")
        assert seen.scalar() == 1


def test_a_metadata_lock_taken_after_a_commit_is_released(mysql_lab: Lab) -> None:
    """MariaDB keeps an Aria table's metadata lock until the transaction ends, while its
    "in transaction" status flag stays off: only the ROLLBACK releases it."""
    table = f"sw_aria_{next(_ids)}"
    mysql_lab.sql(f"CREATE TABLE {table} (id int) ENGINE=Aria")
    engine = _plugged(mysql_lab)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
            connection.commit()  # noted: only a ROLLBACK-free return would follow
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.execute(f"SELECT * FROM {table}")
            cursor.fetchall()
            cursor.close()

        other = mysql_connect(mysql_lab.server.url_for(mysql_lab.database))
        try:
            with other.cursor() as cur:
                cur.execute("SET SESSION lock_wait_timeout = 2")
                cur.execute(f"ALTER TABLE {table} ADD COLUMN v int")  # blocks if still held
        finally:
            other.close()
    finally:
        engine.dispose()  # a lock still held goes with its session, so the DROP never waits
        mysql_lab.sql(f"DROP TABLE IF EXISTS {table}")


def test_a_commit_that_never_reached_the_server_is_rolled_back(mysql_lab: Lab) -> None:
    """A ``commit`` listener of the application that raises after ours: no COMMIT is
    sent, so the byte count noted for it is never reached."""
    engine = _plugged(mysql_lab)
    item = next(_ids)
    mysql_lab.sql("INSERT INTO sw_items (id, note) VALUES (%s, 'locked')", (item,))

    def refuse(conn: Any) -> None:
        raise RuntimeError("refused by the application")

    event.listen(engine, "commit", refuse)
    with pytest.raises(RuntimeError), engine.begin() as connection:
        connection.execute(text("UPDATE sw_items SET note = 'held' WHERE id = :id"), {"id": item})

    assert mysql_lab.sql("SELECT note FROM sw_items WHERE id = %s", (item,))[0][0] == "locked"
    assert _row_is_free(mysql_lab, item)  # rolled back, not left holding the row


def test_a_pool_reset_the_user_chose_is_kept(mysql_lab: Lab) -> None:
    engine = _plugged(mysql_lab, pool_reset_on_return="rollback")
    assert _rollbacks_during(engine, lambda: _insert_and_commit(engine, [])) == TRANSACTIONS


def test_the_plugin_keeps_sqlalchemys_reset_unless_asked(mysql_lab: Lab) -> None:
    engine = mysql_lab.engine(plugins=["sessionward"], pool_size=1, max_overflow=0)
    assert _rollbacks_during(engine, lambda: _insert_and_commit(engine, [])) == TRANSACTIONS
    url = f"{mysql_lab.url}?plugin=sessionward&sessionward_skip_rollback_after_commit=false"
    by_url = sqlalchemy.create_engine(url, pool_size=1, max_overflow=0)
    try:
        assert _rollbacks_during(by_url, lambda: _insert_and_commit(by_url, [])) == TRANSACTIONS
    finally:
        by_url.dispose()


def test_a_bad_value_is_one_configuration_error(mysql_lab: Lab) -> None:
    with pytest.raises(ConfigurationError, match="skip_rollback_after_commit is true or false"):
        mysql_lab.engine(plugins=["sessionward"], sessionward_skip_rollback_after_commit="often")


def test_harden_alone_keeps_sqlalchemys_reset(mysql_lab: Lab) -> None:
    engine = harden(mysql_lab.engine(pool_size=1, max_overflow=0))
    assert _rollbacks_during(engine, lambda: _insert_and_commit(engine, [])) == TRANSACTIONS


def test_reset_listeners_of_the_application_run_before_the_rollback(mysql_lab: Lab) -> None:
    """As with the pool's own reset: what an application's ``reset`` listener leaves open
    is rolled back after it."""
    engine = _plugged(mysql_lab)
    seen: list[Any] = []
    item = next(_ids)

    def on_reset(dbapi_connection: Any, record: Any, state: Any) -> None:
        seen.append(state)
        if len(seen) == TRANSACTIONS:  # the last return: leave a row uncommitted
            cursor = dbapi_connection.cursor()
            cursor.execute("INSERT INTO sw_items (id, note) VALUES (%s, 'by reset')", (item,))
            cursor.close()

    event.listen(engine, "reset", on_reset)
    _insert_and_commit(engine, [])
    assert len(seen) == TRANSACTIONS
    assert _count(mysql_lab, [item]) == 0
    assert _row_is_free(mysql_lab, item)  # no lock left on the key either


# --------------------------------------------------------------------------- localhost


def test_find_socket_takes_localhost_for_the_loopback_address() -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as client,
    ):
        accepted, _ = server.accept()
        with accepted:
            local_port = client.getsockname()[1]
            server_port = server.getsockname()[1]
            assert _liveness.find_socket(f"localhost:{local_port}", server_port) == (
                client.fileno()
            )
            # Another client port: none of ours (the accepted end's peer port is the client's).
            assert _liveness.find_socket(f"localhost:{local_port + 1}", server_port) is None


def test_pymysql_on_a_server_that_names_clients_localhost_finds_its_socket(
    own_mariadb: OwnMariaDB,
) -> None:
    url = sqlalchemy_url(own_mariadb.url, "pymysql")
    engine = harden(sqlalchemy.create_engine(url, pool_size=1, max_overflow=0))
    try:
        with engine.connect() as connection:
            session = connection.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
            fd = connection.connection.info.get("sessionward.fd")
        admin = pymysql.connect(host="127.0.0.1", port=own_mariadb.port, user="root")
        try:
            with admin.cursor() as cursor:
                cursor.execute(
                    "SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = %s", (session,)
                )
                row = cursor.fetchone()
                assert row is not None
                host = str(row[0])
        finally:
            admin.close()
        assert host.startswith("localhost:")  # what this test is about
        assert fd is not None
        with contextlib.closing(socket.socket(fileno=os.dup(fd))) as sock:
            assert sock.getsockname()[1] == int(host.rpartition(":")[2])
            assert sock.getpeername()[1] == own_mariadb.port
    finally:
        engine.dispose()
