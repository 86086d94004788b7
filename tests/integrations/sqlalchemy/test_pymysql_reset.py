"""On PyMySQL, ``harden()`` leaves SQLAlchemy's reset on return as it is: every returned
connection is rolled back as on a plain engine, so nothing is left open for the next checkout.

(An earlier ``harden()`` replaced PyMySQL's connection class to skip the ``ROLLBACK`` after a
commit; that made connections behind the engine's back, and PyMySQL offers no public hook
to know that no statement ran since a commit: see the README.)

Counted on the server: ``Com_rollback`` of the session itself.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import pymysql.cursors
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from sessionward.sqlalchemy import harden
from tests.fix_servers import _mysql_server
from tests.integrations.sqlalchemy.conftest import Lab

TRANSACTIONS = 20
#: Item ids of this module: far from the other tests' in the shared table.
_ids = itertools.count(random.randrange(1, 2**30) * 1000)


def unique_int() -> int:
    return next(_ids)


@pytest.fixture
def mysql_lab(sqla_databases: Any) -> Iterator[Lab]:
    server = _mysql_server()
    made = Lab(server, sqla_databases.on(server), "pymysql")
    yield made
    made.close()


def _rollbacks_sent(engine: Engine) -> int:
    """ROLLBACKs the server received on the engine's one pooled connection."""
    with engine.connect() as connection:
        row = connection.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_rollback'").one()
    return int(row[1])


def _insert_and_commit(engine: Engine) -> list[int]:
    ids = []
    for _ in range(TRANSACTIONS):
        ids.append(unique_int())
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO sw_items (id, note) VALUES (:id, 'reset')"), {"id": ids[-1]}
            )
    return ids


def _count(lab: Lab, ids: list[int]) -> int:
    marks = ", ".join(str(i) for i in ids)
    return int(lab.sql(f"SELECT COUNT(*) FROM sw_items WHERE id IN ({marks})")[0][0])


def _assert_next_checkout_sees_a_new_row(lab: Lab, engine: Engine, session: int) -> None:
    """Commit a row elsewhere: the engine's next checkout, on the same session, must see it,
    which it would not from inside a snapshot left open since."""
    item = unique_int()
    lab.sql("INSERT INTO sw_items (id, note) VALUES (%s, 'later')", (item,))
    with engine.connect() as connection:
        assert lab.pid_of(connection) == session  # the same connection, kept
        seen = connection.exec_driver_sql(f"SELECT COUNT(*) FROM sw_items WHERE id = {item}")
        assert seen.scalar() == 1


def test_a_hardened_engine_resets_returned_connections_like_a_plain_one(mysql_lab: Lab) -> None:
    plain = mysql_lab.engine(pool_size=1, max_overflow=0)
    hardened = harden(mysql_lab.engine(pool_size=1, max_overflow=0))
    for engine in (plain, hardened):
        _rollbacks_sent(engine)  # connected, and its start-up statements rolled back
    before = {"plain": _rollbacks_sent(plain), "harden": _rollbacks_sent(hardened)}

    plain_ids = _insert_and_commit(plain)
    hardened_ids = _insert_and_commit(hardened)

    sent = {
        "plain": _rollbacks_sent(plain) - before["plain"],
        "harden": _rollbacks_sent(hardened) - before["harden"],
    }
    assert sent["plain"] >= TRANSACTIONS
    assert sent["harden"] == sent["plain"]
    assert _count(mysql_lab, plain_ids) == TRANSACTIONS
    assert _count(mysql_lab, hardened_ids) == TRANSACTIONS


def test_a_transaction_opened_by_raw_dbapi_use_after_a_commit_is_rolled_back(
    mysql_lab: Lab,
) -> None:
    engine = harden(mysql_lab.engine(pool_size=1, max_overflow=0))
    item = unique_int()
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
        connection.commit()  # SQLAlchemy holds no transaction now, the driver none either
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute("INSERT INTO sw_items (id, note) VALUES (%s, 'raw')", (item,))
        cursor.close()

    assert _count(mysql_lab, [item]) == 0  # rolled back on return, not left open
    with engine.connect() as connection:
        still_there = connection.exec_driver_sql(f"SELECT COUNT(*) FROM sw_items WHERE id = {item}")
        assert still_there.scalar() == 0


def test_a_read_view_opened_after_a_commit_does_not_outlive_the_checkout(mysql_lab: Lab) -> None:
    """A bare SELECT opens a REPEATABLE READ snapshot; the next checkout must not inherit it."""
    engine = harden(mysql_lab.engine(pool_size=1, max_overflow=0))
    with engine.connect() as connection:
        session = mysql_lab.pid_of(connection)
        connection.commit()
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute("SELECT COUNT(*) FROM sw_items")  # a result set: no status comes back
        cursor.fetchall()
        cursor.close()

    _assert_next_checkout_sees_a_new_row(mysql_lab, engine, session)


# PyMySQL warns when the reset's ROLLBACK has to read the rest of the rows first.
@pytest.mark.filterwarnings("ignore:Previous unbuffered result was left incomplete")
def test_a_read_view_opened_by_a_streaming_cursor_does_not_outlive_the_checkout(
    mysql_lab: Lab,
) -> None:
    engine = harden(mysql_lab.engine(pool_size=1, max_overflow=0))
    with engine.connect() as connection:
        session = mysql_lab.pid_of(connection)
        connection.commit()
        raw = connection.connection.dbapi_connection
        cursor = raw.cursor(pymysql.cursors.SSCursor)  # type: ignore[union-attr]
        cursor.execute("SELECT id FROM sw_items")  # unbuffered: left half read
        cursor.fetchone()
    cursor.close()  # after the return: the reset's ROLLBACK read the rest already

    _assert_next_checkout_sees_a_new_row(mysql_lab, engine, session)


def test_a_connection_closed_after_a_commit_is_discarded_not_pooled(mysql_lab: Lab) -> None:
    engine = harden(mysql_lab.engine(pool_size=1, max_overflow=0), liveness="off")
    with engine.connect() as connection:
        first = mysql_lab.pid_of(connection)
        connection.commit()
        connection.connection.dbapi_connection.close()  # type: ignore[union-attr]

    with engine.connect() as connection:  # liveness off: only the reset can catch it
        assert mysql_lab.pid_of(connection) != first
