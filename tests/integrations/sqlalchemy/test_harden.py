"""``harden()`` replaces every kind of dead pooled connection at checkout; a plain engine fails."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from sessionward import Timeouts
from sessionward.sqlalchemy import harden
from tests.integrations.sqlalchemy.conftest import Lab, wait_until


def _park(lab: Lab, engine: Engine) -> int:
    """Use one connection and return it to the pool; its server pid."""
    with engine.connect() as connection:
        pid = lab.pid_of(connection)
        connection.rollback()
    return pid


def _next_use(lab: Lab, engine: Engine) -> tuple[int | None, BaseException | None]:
    """The pid the next checkout runs on, or the error the application saw."""
    try:
        with engine.connect() as connection:
            return lab.pid_of(connection), None
    except DBAPIError as error:
        return None, error


def _plain_and_hardened(lab: Lab, **harden_args: Any) -> tuple[Engine, Engine]:
    plain = lab.engine(pool_size=1, max_overflow=0)
    hardened = harden(lab.engine(pool_size=1, max_overflow=0), **harden_args)
    return plain, hardened


def test_a_terminated_idle_connection_is_replaced_at_checkout(lab: Lab) -> None:
    plain, hardened = _plain_and_hardened(lab)
    pids = [_park(lab, plain), _park(lab, hardened)]
    for pid in pids:
        lab.terminate(pid)

    pid, error = _next_use(lab, hardened)
    assert error is None, f"harden() let the application see: {error}"
    assert pid not in pids

    _, error = _next_use(lab, plain)
    assert error is not None, "the plain engine was expected to hand out the dead connection"


def test_an_idle_timeout_is_caught_at_checkout(lab: Lab) -> None:
    limit = 1.0  # MariaDB counts wait_timeout in whole seconds
    timeouts = Timeouts(idle_session_seconds=limit)
    plain, hardened = _plain_and_hardened(lab, timeouts=timeouts, recycle=None)
    from sessionward.sqlalchemy import apply_timeouts

    apply_timeouts(plain, timeouts)
    pids = [_park(lab, plain), _park(lab, hardened)]
    for pid in pids:
        wait_until(f"the server ends idle pid {pid}", lambda pid=pid: not _alive(lab, pid))

    pid, error = _next_use(lab, hardened)
    assert error is None, f"harden() let the application see: {error}"
    assert pid not in pids

    _, error = _next_use(lab, plain)
    assert error is not None


def test_recycle_auto_retires_a_connection_before_the_server_idle_limit(lab: Lab) -> None:
    hardened = harden(
        lab.engine(pool_size=1, max_overflow=0), timeouts=Timeouts(idle_session_seconds=2.0)
    )
    first = _park(lab, hardened)
    time.sleep(1.7)  # past 80 % of the limit, still before it
    assert _alive(lab, first), "the server ended the session before the test looked"
    pid, error = _next_use(lab, hardened)
    assert error is None
    assert pid != first


def test_a_recent_live_connection_is_reused_without_a_ping(lab: Lab) -> None:
    hardened = harden(lab.engine(pool_size=1, max_overflow=0))
    first = _park(lab, hardened)
    pid, error = _next_use(lab, hardened)
    assert (pid, error) == (first, None)


def _alive(lab: Lab, pid: int) -> bool:
    if lab.engine_kind == "postgresql":
        return bool(lab.sql("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)))
    return bool(lab.sql("SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = %s", (pid,)))


@pytest.mark.parametrize("liveness", ["auto", "ping"])
def test_liveness_modes_serve_live_connections(lab: Lab, liveness: Any) -> None:
    hardened = harden(lab.engine(pool_size=1, max_overflow=0), liveness=liveness)
    _park(lab, hardened)
    assert _next_use(lab, hardened)[1] is None
