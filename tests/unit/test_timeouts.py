"""``Timeouts`` and its adapters, without a server: values, units, rounding, refusals."""

import dataclasses
import math
import pickle

import pytest

from sessionward import ConfigurationError, Timeouts, UnsupportedSetting
from sessionward.integrations.django._timeouts import database_options
from sessionward.psycopg import psycopg_kwargs
from sessionward.psycopg2 import psycopg2_kwargs
from sessionward.pymysql import pymysql_kwargs

NO_TCP = Timeouts(
    keepalive_idle_seconds=None,
    keepalive_interval_seconds=None,
    max_keepalive_probes=None,
    tcp_user_timeout_seconds=None,
)

# --------------------------------------------------------------------------- the value


def test_defaults_leave_the_server_alone_and_set_keepalives():
    timeouts = Timeouts()
    for name in (
        "statement_seconds",
        "lock_seconds",
        "idle_in_transaction_seconds",
        "idle_session_seconds",
        "transaction_seconds",
        "connect_seconds",
    ):
        assert getattr(timeouts, name) is None
    assert (
        timeouts.keepalive_idle_seconds,
        timeouts.keepalive_interval_seconds,
        timeouts.max_keepalive_probes,
        timeouts.tcp_user_timeout_seconds,
    ) == (30.0, 10.0, 3, 60.0)


def test_frozen_and_slotted():
    timeouts = Timeouts(statement_seconds=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        timeouts.statement_seconds = 2  # type: ignore[misc]
    assert not hasattr(timeouts, "__dict__")
    assert hash(timeouts) == hash(Timeouts(statement_seconds=1.0))


def test_whole_numbers_become_float_seconds():
    assert Timeouts(lock_seconds=5).lock_seconds == 5.0
    assert isinstance(Timeouts(lock_seconds=5).lock_seconds, float)


def test_evolve_returns_a_new_value_and_validates():
    base = Timeouts(statement_seconds=1)
    changed = base.evolve(statement_seconds=2, lock_seconds=3)
    assert (base.statement_seconds, changed.statement_seconds, changed.lock_seconds) == (1, 2, 3)
    with pytest.raises(ConfigurationError):
        base.evolve(lock_seconds=-1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("statement_seconds", -0.1),
        ("statement_seconds", math.nan),
        ("lock_seconds", math.inf),
        ("connect_seconds", "5"),
        ("idle_session_seconds", True),
        ("keepalive_idle_seconds", 0),
        ("tcp_user_timeout_seconds", -1),
        ("max_keepalive_probes", 0),
        ("max_keepalive_probes", 1.5),
        ("max_keepalive_probes", True),
    ],
)
def test_invalid_values_are_refused(field, value):
    with pytest.raises(ConfigurationError, match=field):
        Timeouts(**{field: value})


def test_zero_is_allowed_for_server_limits():
    assert Timeouts(statement_seconds=0, connect_seconds=0).statement_seconds == 0


# --------------------------------------------------------------------------- libpq


@pytest.mark.parametrize("kwargs", [psycopg_kwargs, psycopg2_kwargs])
def test_libpq_units(kwargs):
    params = kwargs(
        Timeouts(
            statement_seconds=0.1,
            lock_seconds=0.0001,
            idle_in_transaction_seconds=60,
            idle_session_seconds=0,
            connect_seconds=2.2,
            tcp_user_timeout_seconds=0.5,
            keepalive_idle_seconds=0.5,
        )
    )
    assert params == {
        "options": "-c statement_timeout=100 -c lock_timeout=1 "
        "-c idle_in_transaction_session_timeout=60000 -c idle_session_timeout=0",
        "connect_timeout": 3,
        "keepalives": 1,
        "keepalives_idle": 1,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": 500,
    }


@pytest.mark.parametrize(("seconds", "expected"), [(0.5, 2), (1, 2), (2, 2), (2.01, 3), (0, 0)])
def test_libpq_connect_timeout_floor(seconds, expected):
    assert psycopg_kwargs(NO_TCP.evolve(connect_seconds=seconds)) == {"connect_timeout": expected}


def test_libpq_nothing_to_set():
    assert psycopg_kwargs(NO_TCP) == {}


def test_libpq_own_options_come_first():
    params = psycopg_kwargs(NO_TCP.evolve(lock_seconds=2), options="  -c search_path=app ")
    assert params == {"options": "-c search_path=app -c lock_timeout=2000"}
    assert psycopg_kwargs(NO_TCP, options="-c search_path=app") == {"options": "-c search_path=app"}


@pytest.mark.parametrize(
    ("field", "setting", "last_unsupported", "first_supported"),
    [
        ("idle_session_seconds", "idle_session_timeout", 130011, 140000),
        ("transaction_seconds", "transaction_timeout", 160004, 170000),
    ],
)
def test_libpq_version_gates(field, setting, last_unsupported, first_supported):
    timeouts = NO_TCP.evolve(**{field: 5})
    with pytest.raises(UnsupportedSetting) as refused:
        psycopg_kwargs(timeouts, server_version=last_unsupported)
    assert refused.value.setting == setting
    major, minor = divmod(last_unsupported, 10000)
    assert refused.value.server == f"PostgreSQL {major}.{minor}"
    assert f"the server is PostgreSQL {major}.{minor}" in str(refused.value)
    assert setting in psycopg_kwargs(timeouts, server_version=first_supported)["options"]
    assert setting in psycopg_kwargs(timeouts, server_version=first_supported // 10000)["options"]
    # Without a version nothing is refused: an older server refuses the login itself.
    assert setting in psycopg_kwargs(timeouts)["options"]


def test_libpq_refuses_a_limit_too_long_for_the_server():
    with pytest.raises(ConfigurationError, match="too long"):
        psycopg_kwargs(NO_TCP.evolve(statement_seconds=30 * 86400))


def test_libpq_refuses_a_nonsense_version():
    with pytest.raises(ConfigurationError, match="not a PostgreSQL server version"):
        psycopg_kwargs(NO_TCP.evolve(statement_seconds=1), server_version=0)


# --------------------------------------------------------------------------- MariaDB / MySQL


def test_mariadb_units_and_rounding():
    kwargs = pymysql_kwargs(
        NO_TCP.evolve(
            statement_seconds=0.0000001,
            lock_seconds=1.2,
            idle_in_transaction_seconds=0.2,
            idle_session_seconds=59.5,
            connect_seconds=2.5,
        ),
        flavor="mariadb",
    )
    assert kwargs == {
        "init_command": "SET SESSION innodb_lock_wait_timeout=2, lock_wait_timeout=2, "
        "wait_timeout=60, max_statement_time=0.000001, idle_transaction_timeout=1",
        "connect_timeout": 2.5,
    }


def test_mariadb_zero_means_no_limit():
    kwargs = pymysql_kwargs(
        Timeouts(statement_seconds=0, lock_seconds=0, idle_session_seconds=0, connect_seconds=0),
        flavor="mariadb",
    )
    assert kwargs == {
        "init_command": "SET SESSION innodb_lock_wait_timeout=100000000, "
        "lock_wait_timeout=31536000, wait_timeout=31536000, max_statement_time=0",
        "connect_timeout": None,
    }


def test_mysql_statement_limit_is_partial():
    timeouts = Timeouts(statement_seconds=1.5)
    with pytest.raises(UnsupportedSetting, match="allow_partial=True") as refused:
        pymysql_kwargs(timeouts, flavor="mysql")
    assert refused.value.setting == "max_execution_time"
    assert pymysql_kwargs(timeouts, flavor="mysql", allow_partial=True) == {
        "init_command": "SET SESSION max_execution_time=1500"
    }


def test_auto_flavor_cannot_promise_a_statement_limit():
    with pytest.raises(UnsupportedSetting, match="flavor='mariadb'"):
        pymysql_kwargs(Timeouts(statement_seconds=1))
    command = pymysql_kwargs(Timeouts(statement_seconds=1), allow_partial=True)["init_command"]
    assert command == (
        "SET SESSION /*M! max_statement_time=1 */ /*!80000 max_execution_time=1000 */"
    )


def test_auto_flavor_sets_what_both_servers_share():
    assert pymysql_kwargs(Timeouts(lock_seconds=3, idle_session_seconds=60)) == {
        "init_command": "SET SESSION innodb_lock_wait_timeout=3, lock_wait_timeout=3, "
        "wait_timeout=60"
    }


@pytest.mark.parametrize("flavor", ["mysql", "auto"])
def test_mysql_has_no_idle_in_transaction_timeout(flavor):
    with pytest.raises(UnsupportedSetting) as refused:
        pymysql_kwargs(Timeouts(idle_in_transaction_seconds=5), flavor=flavor)
    assert refused.value.setting == "idle_transaction_timeout"


@pytest.mark.parametrize("flavor", ["mariadb", "mysql", "auto"])
def test_no_transaction_timeout_on_mariadb_or_mysql(flavor):
    with pytest.raises(UnsupportedSetting) as refused:
        pymysql_kwargs(Timeouts(transaction_seconds=5), flavor=flavor)
    assert refused.value.setting == "transaction_timeout"


def test_server_version_decides_the_flavor():
    mysql = pymysql_kwargs(
        Timeouts(statement_seconds=1), server_version="8.0.36", allow_partial=True
    )
    assert mysql["init_command"] == "SET SESSION max_execution_time=1000"
    with pytest.raises(UnsupportedSetting) as refused:
        pymysql_kwargs(Timeouts(statement_seconds=1), server_version="8.0.36")
    assert refused.value.server == "MySQL 8.0.36"
    mariadb = pymysql_kwargs(
        Timeouts(statement_seconds=1), server_version="5.5.5-10.11.19-MariaDB-0+deb12u1"
    )
    assert mariadb["init_command"] == "SET SESSION max_statement_time=1"


def test_a_lock_wait_too_long_for_mariadb_is_refused():
    with pytest.raises(ConfigurationError, match="lock_wait_timeout"):
        pymysql_kwargs(Timeouts(lock_seconds=40_000_000), flavor="mariadb")


def test_own_set_statement_is_joined():
    kwargs = pymysql_kwargs(
        NO_TCP.evolve(lock_seconds=2), flavor="mariadb", init_command="SET NAMES utf8mb4;"
    )
    assert kwargs["init_command"] == (
        "SET NAMES utf8mb4, SESSION innodb_lock_wait_timeout=2, lock_wait_timeout=2"
    )
    assert pymysql_kwargs(NO_TCP, init_command="SET NAMES utf8mb4") == {
        "init_command": "SET NAMES utf8mb4"
    }


@pytest.mark.parametrize(
    "statement",
    ["SELECT 1", "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", "SET ROLE app"],
)
def test_own_statement_that_cannot_be_joined_is_refused(statement):
    with pytest.raises(ConfigurationError, match="only a SET statement"):
        pymysql_kwargs(Timeouts(lock_seconds=2), flavor="mariadb", init_command=statement)


# --------------------------------------------------------------------------- Django OPTIONS


def test_django_postgresql_options_keep_yours():
    options = database_options(
        NO_TCP.evolve(statement_seconds=5, connect_seconds=10),
        "postgresql",
        options={"sslmode": "require", "options": "-c search_path=app"},
        server_version=150020,
    )
    assert options == {
        "sslmode": "require",
        "options": "-c search_path=app -c statement_timeout=5000",
        "connect_timeout": 10,
    }


def test_django_postgresql_checks_the_version():
    with pytest.raises(UnsupportedSetting, match="transaction_timeout"):
        database_options(Timeouts(transaction_seconds=1), "postgresql", server_version=15)
    with pytest.raises(ConfigurationError, match="150020 or 15"):
        database_options(Timeouts(), "postgresql", server_version="15.2")


def test_django_mysql_options():
    options = database_options(
        Timeouts(statement_seconds=2, idle_in_transaction_seconds=30, connect_seconds=2.5),
        "mysql",
        flavor="mariadb",
        options={"charset": "utf8mb4", "init_command": "SET sql_mode='STRICT_TRANS_TABLES'"},
    )
    assert options == {
        "charset": "utf8mb4",
        "init_command": "SET sql_mode='STRICT_TRANS_TABLES', SESSION max_statement_time=2, "
        "idle_transaction_timeout=30",
        "connect_timeout": 3,  # mysqlclient takes whole seconds
    }


def test_django_unknown_vendor():
    with pytest.raises(ConfigurationError, match="sqlite"):
        database_options(Timeouts(), "sqlite")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- SQLAlchemy


def test_sqlalchemy_refuses_a_driver_it_cannot_serve():
    import sqlalchemy

    from sessionward.sqlalchemy import apply_timeouts

    engine = sqlalchemy.create_engine("sqlite://")
    with pytest.raises(ConfigurationError, match="'pysqlite' driver"):
        apply_timeouts(engine, Timeouts(statement_seconds=1))


# --------------------------------------------------------------------------- the error


def test_unsupported_setting_pickles_with_what_it_names():
    error = UnsupportedSetting("no", setting="transaction_timeout", server="PostgreSQL 15.2")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.setting, copy.server) == (
        UnsupportedSetting,
        "no",
        "transaction_timeout",
        "PostgreSQL 15.2",
    )
    assert isinstance(copy, ConfigurationError)
