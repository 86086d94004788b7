"""``EmbeddedPostgres(standby_of=...)``: what the cluster fixture relies on, and its bad input."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from sessionward.core import SessionwardError
from sessionward.embedded import EmbeddedPostgres
from tests.integrations.failover.conftest import Cluster, server_sql


def test_a_standby_of_a_server_not_started_is_refused_before_anything_is_made() -> None:
    base = Path(tempfile.mkdtemp(prefix="sw-standby-"))
    try:
        replica = EmbeddedPostgres(standby_of=EmbeddedPostgres(), base_dir=base)
        with pytest.raises(SessionwardError, match="to replicate is not started"):
            replica.start()
        assert list(base.iterdir()) == []
        assert replica.port is None
    finally:
        base.rmdir()


def test_the_replica_streams_is_read_only_and_has_the_primary_s_data(cluster: Cluster) -> None:
    assert cluster.replica is not None
    server_sql(cluster.primary.url, "CREATE TABLE sw_seen (n int)")
    server_sql(cluster.primary.url, "INSERT INTO sw_seen VALUES (7)")
    # Synchronous: the COMMIT returned once the replica had flushed it; promotion replays it.
    rows = server_sql(cluster.replica.url, "SELECT pg_is_in_recovery(), inet_server_port()")
    assert rows == [(True, cluster.ports[1])]
    ((sync_state,),) = server_sql(cluster.primary.url, "SELECT sync_state FROM pg_stat_replication")
    assert sync_state == "sync"
    promoted_at = cluster.promote()
    assert promoted_at > 0
    assert server_sql(cluster.replica.url, "SELECT n, pg_is_in_recovery() FROM sw_seen") == [
        (7, False)
    ]
