"""A PostgreSQL primary and its streaming replica on loopback, for failover tests.

Both are ``EmbeddedPostgres`` servers (the binaries the rest of the suite
uses, run as an unprivileged user under root): the primary from ``initdb``,
the replica from ``pg_basebackup -R`` of it (``standby_of=``).  initdb's own
``pg_hba.conf`` already trusts replication from 127.0.0.1 under
``--auth=trust``, and ``wal_level=replica`` is the default; both are set
explicitly anyway, so the fixture does not lean on defaults.

Replication is *synchronous* (``synchronous_standby_names='*'``,
``synchronous_commit=on``): a COMMIT returns only once the replica has the
WAL.  With asynchronous replication the last commits a client was told about
may never reach the replica, and no client can get them back after a
failover; that is a property of the servers, not of the client under test.
The replica has ``synchronous_standby_names=''``, so once promoted it commits
alone.

Both servers are stopped and their directories removed on teardown, whatever
the test did (stopping a server already stopped does nothing).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from sessionward.embedded import EmbeddedPostgres
from tests.fix_servers import missing_server

#: How long the replica may take to stream, or to be promoted.
WAIT_SECONDS = 30.0


class Cluster:
    """A primary and its streaming replica: ``kill_primary()`` or ``fence_primary()``,
    then ``promote()`` the replica."""

    def __init__(self) -> None:
        self.primary = EmbeddedPostgres(
            max_connections=60,
            settings={
                "wal_level": "replica",
                "max_wal_senders": "4",
                "hot_standby": "on",
                "synchronous_commit": "on",
                "synchronous_standby_names": "*",
            },
        )
        self.replica: EmbeddedPostgres | None = None

    def start(self) -> None:
        self.primary.start()
        self._add_hba_line(self.primary)
        self.replica = EmbeddedPostgres(
            max_connections=60,
            standby_of=self.primary,
            settings={"synchronous_standby_names": "", "hot_standby": "on"},
        )
        self.replica.start()
        self.wait_streaming()

    @staticmethod
    def _add_hba_line(server: EmbeddedPostgres) -> None:
        """Trust replication connections from 127.0.0.1 explicitly (initdb's trust has it too)."""
        hba = server.data_dir / "pg_hba.conf"
        text = hba.read_text()
        line = "host replication all 127.0.0.1/32 trust\n"
        if line not in text:
            hba.write_text(line + text)
            server_sql(server.url, "SELECT pg_reload_conf()")

    def wait_streaming(self) -> None:
        """Until the primary shows its replica streaming, synchronously."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            rows = server_sql(self.primary.url, "SELECT state, sync_state FROM pg_stat_replication")
            if rows == [("streaming", "sync")]:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the replica is not streaming: pg_stat_replication {rows}")
            time.sleep(0.05)

    @property
    def ports(self) -> tuple[int, int]:
        assert self.primary.port is not None
        assert self.replica is not None
        assert self.replica.port is not None
        return self.primary.port, self.replica.port

    def kill_primary(self) -> None:
        """Immediate shutdown (SIGQUIT, no checkpoint), as a crash; the directory goes too."""
        self.primary.stop()

    def fence_primary(self) -> None:
        """Stop the primary taking writes, as a switchover does first; it stays up.

        It stops waiting for its replica too, so no COMMIT can wait for it once it is
        promoted; ``wait_caught_up()`` before promoting makes sure nothing is lost.
        """
        server_sql(self.primary.url, "ALTER SYSTEM SET default_transaction_read_only = on")
        server_sql(self.primary.url, "ALTER SYSTEM SET synchronous_standby_names = ''")
        server_sql(self.primary.url, "SELECT pg_reload_conf()")

    def wait_caught_up(self) -> None:
        """Until no write transaction is open on the primary and the replica has replayed
        all its WAL: promoting earlier would leave a COMMIT waiting for a standby gone."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            ((writers, behind),) = server_sql(
                self.primary.url,
                "SELECT (SELECT count(*) FROM pg_stat_activity"
                "        WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()),"
                "       (SELECT count(*) FROM pg_stat_replication"
                "        WHERE replay_lsn IS DISTINCT FROM pg_current_wal_lsn())",
            )
            if writers == 0 and behind == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{writers} writers open, {behind} replicas behind")
            time.sleep(0.02)

    def promote(self) -> float:
        """Promote the replica, wait until it takes writes; return ``time.monotonic()`` then."""
        assert self.replica is not None
        ((promoted,),) = server_sql(self.replica.url, "SELECT pg_promote(true, 30)")
        assert promoted is True
        return time.monotonic()

    @property
    def new_primary_url(self) -> str:
        """The replica's URL: after ``promote()``, the new primary's."""
        assert self.replica is not None
        return self.replica.url

    def stop(self) -> None:
        if self.replica is not None:
            self.replica.stop()
        self.primary.stop()


ACCOUNTS = 50
OPENING_BALANCE = 1000


def prepare_accounts(url: str) -> None:
    """``sw_accounts`` (id, balance) and ``sw_transfers`` (id, amount, port) on ``url``."""
    server_sql(url, "CREATE TABLE sw_accounts (id int PRIMARY KEY, balance bigint NOT NULL)")
    # No unique key on purpose: a transfer applied twice must show up, not fail.  The
    # port says which server committed it.
    server_sql(
        url,
        "CREATE TABLE sw_transfers (id bigint NOT NULL, amount int NOT NULL,"
        " port int NOT NULL DEFAULT inet_server_port())",
    )
    values = ", ".join(f"({n}, {OPENING_BALANCE})" for n in range(1, ACCOUNTS + 1))
    server_sql(url, f"INSERT INTO sw_accounts VALUES {values}")


def applied_transfers(url: str) -> dict[int, tuple[int, int]]:
    """Each transfer id applied on ``url``: how many times, and the port that committed it."""
    return {
        int(transfer_id): (int(times), int(port))
        for transfer_id, times, port in server_sql(
            url, "SELECT id, count(*), max(port) FROM sw_transfers WHERE id > 0 GROUP BY id"
        )
    }


def server_sql(url: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement in autocommit on a fresh connection; its rows, if any."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(statement, params)
        return list(cursor.fetchall()) if cursor.description else []


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A fresh primary and streaming replica for one test (it may destroy either)."""
    made = Cluster()
    try:
        made.start()
    except Exception as error:
        with contextlib.suppress(Exception):
            made.stop()
        missing_server(f"no embedded PostgreSQL primary and replica: {error}")
    try:
        yield made
    finally:
        made.stop()
