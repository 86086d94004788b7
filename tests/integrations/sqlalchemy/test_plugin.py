"""The ``sessionward`` SQLAlchemy plugin hardens an engine from its URL or ``create_engine``
arguments; a bad option is one ``ConfigurationError`` and no engine."""

from __future__ import annotations

import warnings
from typing import Any
from unittest import mock

import pytest
import sqlalchemy
from sqlalchemy import pool
from sqlalchemy.engine import Engine, make_url

from sessionward import ConfigurationError
from sessionward.sqlalchemy import FallbackWarning, holders
from tests.integrations.sqlalchemy.conftest import Lab


def _with(url: str, **query: str) -> str:
    return make_url(url).update_query_dict(query).render_as_string(hide_password=False)


def _hardened(engine: Engine) -> bool:
    try:
        holders(engine)
    except ConfigurationError:
        return False
    return True


def _survives_a_kill(lab: Lab, engine: Engine) -> None:
    with engine.connect() as connection:
        first = lab.pid_of(connection)
        connection.rollback()
    lab.terminate(first)
    with engine.connect() as connection:
        assert lab.pid_of(connection) != first


def test_plugin_in_the_url_hardens_and_its_options_never_reach_the_driver(lab: Lab) -> None:
    url = _with(
        lab.url,
        plugin="sessionward",
        sessionward_liveness="ping",
        sessionward_hold_warning="2m",
        sessionward_recycle="1h",
    )
    engine = sqlalchemy.create_engine(url, pool_size=1, max_overflow=0)
    try:
        assert _hardened(engine)
        assert not [name for name in engine.url.query if name.startswith("sessionward")]
        assert "plugin" not in engine.url.query
        _survives_a_kill(lab, engine)
    finally:
        engine.dispose()


def test_plugin_by_argument_applies_timeouts_read_back_from_the_server(lab: Lab) -> None:
    engine = sqlalchemy.create_engine(
        lab.url, plugins=["sessionward"], sessionward_statement_timeout="5s", pool_size=1
    )
    try:
        assert _hardened(engine)
        with engine.connect() as connection:
            if lab.engine_kind == "postgresql":
                assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "5s"
            else:
                assert (
                    float(connection.exec_driver_sql("SELECT @@max_statement_time").scalar()) == 5
                )
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "poolclass",
    [pool.QueuePool, pool.NullPool, pool.StaticPool, pool.AssertionPool, pool.SingletonThreadPool],
)
def test_plugin_works_with_every_pool_class(lab: Lab, poolclass: Any) -> None:
    engine = sqlalchemy.create_engine(_with(lab.url, plugin="sessionward"), poolclass=poolclass)
    try:
        assert _hardened(engine)
        if poolclass is pool.NullPool:  # nothing pooled: every checkout connects
            for _ in range(2):
                with engine.connect() as connection:
                    assert connection.exec_driver_sql("SELECT 1").scalar() == 1
            return
        _survives_a_kill(lab, engine)
    finally:
        engine.dispose()


def test_plugin_on_a_mock_dbapi_fails_open_once() -> None:
    """SQLAlchemy's own reconnect tests run engines on a mocked DB-API: they must keep working."""
    dbapi = mock.Mock(paramstyle="pyformat", __version__="2.9.9")
    engine = sqlalchemy.create_engine(
        "postgresql+psycopg2://?plugin=sessionward", module=dbapi, _initialize=False
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        connections = [engine.connect() for _ in range(3)]
        for connection in connections:
            connection.close()
        with engine.connect():
            pass
    fallbacks = [w for w in caught if issubclass(w.category, FallbackWarning)]
    assert len(fallbacks) == 1, [str(w.message) for w in caught]
    assert dbapi.connect.call_count == 3
    engine.dispose()


def _refused(url: str, **kwargs: Any) -> str:
    with pytest.raises(ConfigurationError) as raised:
        sqlalchemy.create_engine(url, **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("sessionward_liveness", "sometimes", "auto, ping or off"),
        ("sessionward_recycle", "soon", "auto, none or a duration"),
        ("sessionward_hold_warning", "-5", "a duration such as"),
        ("sessionward_ping_after_idle", "0s", "a duration > 0"),
        ("sessionward_recycle", "0", "auto, none or a duration"),
        ("sessionward_track_leaks", "maybe", "true or false"),
        ("sessionward_statement_timeout", "fast", "a duration"),
        ("sessionward_max_keepalive_probes", "0", "whole number"),
        ("sessionward_colour", "blue", "sessionward_liveness"),
    ],
)
def test_a_bad_option_is_one_configuration_error(option: str, value: str, named: str) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    in_url = _refused(_with(url, plugin="sessionward", **{option: value}))
    as_argument = _refused(url, plugins=["sessionward"], **{option: value})
    assert named in in_url
    assert in_url == as_argument


@pytest.mark.parametrize(
    "url", ["mysql+mysqlconnector://u@h/db", "mysql+mariadbconnector://u@h/db", "sqlite://"]
)
def test_an_unsupported_driver_is_one_configuration_error(url: str) -> None:
    message = _refused(url, plugins=["sessionward"])
    assert "psycopg, psycopg2, pymysql, mysqldb (mysqlclient)" in message


def test_an_unsupported_async_driver_is_refused() -> None:
    message = _refused("postgresql+psycopg_async://u@h/db", plugins=["sessionward"])
    assert "synchronous" in message
