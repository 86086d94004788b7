"""A server restart and a dropped network, on servers of our own: ``harden()`` hides them.

The restarts happen on an embedded PostgreSQL and a throwaway ``mariadbd``
started for this module, never on the shared servers.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from sessionward.sqlalchemy import harden
from tests.fix_proxy import Proxy
from tests.integrations.errors._own_servers import OwnMariaDB, OwnPostgres
from tests.integrations.sqlalchemy.conftest import sqlalchemy_url

POOLED = 3


def _fill(engine: Engine) -> None:
    """Leave ``POOLED`` idle connections in the pool."""
    held = [engine.connect() for _ in range(POOLED)]
    for connection in held:
        connection.exec_driver_sql("SELECT 1")
        connection.rollback()
        connection.close()


def _errors_over(engine: Engine, checkouts: int) -> list[BaseException]:
    seen: list[BaseException] = []
    for _ in range(checkouts):
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except DBAPIError as error:
            seen.append(error)
    return seen


def _engines(url: str) -> tuple[Engine, Engine]:
    plain = sqlalchemy.create_engine(url, pool_size=POOLED, max_overflow=0)
    hardened = harden(sqlalchemy.create_engine(url, pool_size=POOLED, max_overflow=0))
    return plain, hardened


def _check_restart(
    url: str, restart: Any, caplog: pytest.LogCaptureFixture, *, is_restart: bool = True
) -> None:
    plain, hardened = _engines(url)
    try:
        _fill(plain)
        _fill(hardened)
        restart()
        with caplog.at_level(logging.WARNING, "sessionward.sqlalchemy"):
            assert _errors_over(hardened, 2 * POOLED) == []
        # The first new connection tells a restart apart from a network drop.
        assert ("the server restarted" in caplog.text) is is_restart
        assert _errors_over(plain, 2 * POOLED), "the plain engine was expected to fail once"
    finally:
        plain.dispose()
        hardened.dispose()


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_a_postgresql_restart_is_hidden(
    own_pg: OwnPostgres, driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    _check_restart(sqlalchemy_url(own_pg.url, driver), own_pg.restart, caplog)


def test_a_mariadb_restart_is_hidden(
    own_mariadb: OwnMariaDB, caplog: pytest.LogCaptureFixture
) -> None:
    _check_restart(sqlalchemy_url(own_mariadb.url, "pymysql"), own_mariadb.restart, caplog)


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_a_dropped_network_is_hidden(
    own_pg: OwnPostgres, driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = Proxy("127.0.0.1", own_pg.embedded.port or 0)
    try:
        url = sqlalchemy_url(
            own_pg.url.replace(f":{own_pg.embedded.port}/", f":{proxy.port}/"), driver
        )
        _check_restart(url, proxy.cut, caplog, is_restart=False)
    finally:
        proxy.close()
