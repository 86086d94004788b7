"""The MariaDB/MySQL adapter's parts that need no server: SQL files, ladder, rows, errors."""

from __future__ import annotations

import pickle
import re
import socket
import sys

import pymysql
import pytest

import sessionward.servers.mysql
from sessionward.core import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    DriverNotInstalled,
    PermissionDenied,
    SessionwardError,
    parse_target,
)
from sessionward.servers.mysql import MySQLBackend
from sessionward.servers.mysql._backend import CLOCK, GRANTEE, SESSION
from sessionward.servers.mysql._errors import connect_error, translate
from sessionward.servers.mysql._queries import (
    GET_SERVER,
    LIST_PLATFORM_PROCEDURES,
    MIN_MARIADB,
    MIN_MYSQL,
    PLATFORM_KILLS,
    dialect_for,
    load,
    parse_version,
    query_names,
)
from sessionward.servers.mysql._rows import MetadataLock, build_session, metadata_lock_blockers

SUPPORTED = [
    ("mariadb", 100600),
    ("mariadb", 100621),
    ("mariadb", 101119),
    ("mariadb", 110405),
    ("mariadb", 110802),
    ("mariadb", 120001),
    ("mysql", 80000),
    ("mysql", 80036),
    ("mysql", 80405),
    ("mysql", 90300),
]
UNSUPPORTED = [("mariadb", 100508), ("mariadb", 100432), ("mysql", 50744), ("mysql", 50600)]

TARGET = parse_target("mysql://app:pw-secret-9@db.example:3306/shop")


def test_public_names_are_pinned():
    assert sessionward.servers.mysql.__all__ == ["MySQLBackend"]


# --------------------------------------------------------------------------- SQL and ladder


@pytest.mark.parametrize(("engine", "version_num"), SUPPORTED)
def test_every_supported_version_resolves(engine, version_num):
    dialect = dialect_for(engine, version_num)
    assert dialect.engine == engine
    for name in dialect.names():
        assert load(name).strip()


@pytest.mark.parametrize(("engine", "version_num"), UNSUPPORTED)
def test_older_versions_are_refused(engine, version_num):
    with pytest.raises(ConfigurationError, match="is not supported"):
        dialect_for(engine, version_num)


def test_oldest_supported_versions_are_the_ladder_floor():
    assert dialect_for("mariadb", MIN_MARIADB).engine == "mariadb"
    assert dialect_for("mysql", MIN_MYSQL).engine == "mysql"
    with pytest.raises(ConfigurationError):
        dialect_for("mariadb", MIN_MARIADB - 1)


def test_every_sql_file_is_used():
    used = set().union(*(dialect_for(e, v).names() for e, v in SUPPORTED))
    used |= {name for kills in PLATFORM_KILLS.values() for name in kills[:2]}
    used.add(LIST_PLATFORM_PROCEDURES)
    assert used == query_names()
    assert GET_SERVER in used


@pytest.mark.parametrize("name", sorted(query_names()))
def test_sql_file_shape(name):
    text = load(name)
    assert text.startswith("-- "), "the first line says what the query is for"
    assert re.fullmatch(r"[a-z]+_[a-z_]+", name)
    # Values are bound as %(name)s; a bare % would break PyMySQL's formatting.
    assert re.findall(r"%(?!\(\w+\)s)", text) == []
    assert name.endswith(("_mariadb", "_mysql")) == (name != _shared_name(name))


def _shared_name(name):
    return re.sub(r"_(mariadb|mysql)$", "", name)


def test_variants_come_in_pairs():
    names = query_names()
    for name in names:
        if name.endswith("_mariadb"):
            assert _shared_name(name) + "_mysql" in names
        if name.endswith("_mysql"):
            assert _shared_name(name) + "_mariadb" in names


@pytest.mark.parametrize(
    ("version", "comment", "expected"),
    [
        ("10.11.19-MariaDB-0+deb12u1", "Debian 12", ("mariadb", 101119)),
        ("11.4.5-MariaDB", "mariadb.org binary distribution", ("mariadb", 110405)),
        ("10.6.21", "MariaDB Server", ("mariadb", 100621)),
        ("8.0.36", "MySQL Community Server - GPL", ("mysql", 80036)),
        ("8.4.5-5", "Percona Server (GPL), Release 5", ("mysql", 80405)),
        ("9.3.0", "MySQL Community Server - GPL", ("mysql", 90300)),
    ],
)
def test_parse_version(version, comment, expected):
    assert parse_version(version, comment) == expected


def test_unreadable_version_is_an_error():
    with pytest.raises(SessionwardError, match="cannot read the server version"):
        parse_version("unknown", "")


# --------------------------------------------------------------------------- rows


def _row(**changes):
    row = {
        "pid": 7,
        "user": "app",
        "host": "10.0.0.7:40000",
        "db": "shop",
        "command": "Sleep",
        "stage": "",
        "query": None,
        "state_age": 3,
        "trx_state": None,
        "xact_age": None,
        "wait_age": None,
    }
    row.update(changes)
    return build_session(row, is_superuser=False, application=None, blocked_by=(), wait_target=None)


def test_rows_become_sessions():
    idle = _row()
    assert (idle.state, idle.client, idle.query_age_seconds) == ("idle", "10.0.0.7:40000", None)
    assert idle.idle_age_seconds == 3.0
    in_transaction = _row(trx_state="RUNNING", xact_age=5)
    assert in_transaction.state == "idle in transaction"
    assert in_transaction.xact_age_seconds == 5.0
    waiting = _row(command="Query", trx_state="LOCK WAIT", wait_age=2, query="UPDATE t SET v = 1")
    assert (waiting.state, waiting.wait, waiting.wait_age_seconds) == (
        "active",
        "innodb row lock",
        2.0,
    )
    assert waiting.running_age_seconds == 3.0
    killed = _row(command="Killed")
    assert (killed.state, killed.wait) == ("active", "killed")
    local = _row(host="localhost")
    assert local.client == "local"


def test_background_and_replication_rows():
    scheduler = _row(user="event_scheduler", command="Daemon", host="localhost")
    assert (scheduler.backend_kind, scheduler.backend_type) == ("background", "event scheduler")
    assert scheduler.state is None
    assert scheduler.is_superuser is None
    replica = _row(user="system user", command="Slave_IO", host="")
    assert (replica.backend_kind, replica.backend_type) == ("background", "replica I/O thread")
    dump = _row(user="repl", command="Binlog Dump GTID")
    assert (dump.backend_kind, dump.state) == ("replication", "active")


def test_metadata_lock_waits_from_pending_locks():
    # MySQL: performance_schema says what each waiter waits for.
    locks = [
        MetadataLock(1, "s", "t", granted=True),
        MetadataLock(2, "s", "t", granted=True),
        MetadataLock(2, "s", "t", granted=False),
        MetadataLock(3, "s", "t", granted=False),
    ]
    waiters = {2: ("s", None), 3: ("x", None)}
    assert metadata_lock_blockers(waiters, locks) == {
        2: ((1,), "metadata lock s.t"),
        3: ((2,), "metadata lock s.t"),
    }


def test_metadata_lock_waits_inferred_from_names():
    # MariaDB: granted locks only; a DROP holds nothing on the table it waits for.
    locks = [MetadataLock(1, "s", "orders", True), MetadataLock(1, "s", "order_lines", True)]
    assert metadata_lock_blockers({2: ("s", "DROP TABLE orders")}, locks) == {
        2: ((1,), "metadata lock s.orders")
    }
    assert metadata_lock_blockers({2: ("other", "TRUNCATE `s`.`orders`")}, locks) == {
        2: ((1,), "metadata lock s.orders")
    }
    # Another schema's table of the same name, a mere prefix, or no query: no blocker.
    assert metadata_lock_blockers({2: ("other", "DROP TABLE orders")}, locks) == {}
    assert metadata_lock_blockers({2: ("s", "DROP TABLE orders_old")}, locks) == {}
    assert metadata_lock_blockers({2: ("s", None)}, locks) == {}


# --------------------------------------------------------------------------- errors


def _error(errno, cls=pymysql.err.OperationalError):
    return cls(errno, f"server says {errno}")


@pytest.mark.parametrize(
    ("errno", "expected", "words"),
    [
        (1969, SessionwardError, "exceeded the 5s statement limit"),
        (3024, SessionwardError, "exceeded the 5s statement limit"),
        (2006, ConnectionFailed, "lost the connection"),
        (2013, ConnectionFailed, "lost the connection"),
        (1927, ConnectionFailed, "lost the connection"),
        (1227, PermissionDenied, "server says 1227"),
        (1142, PermissionDenied, "server says 1142"),
        (1064, SessionwardError, "server error 1064"),
    ],
)
def test_translate_maps_by_errno(errno, expected, words):
    mapped = translate(_error(errno), TARGET, statement_limit_seconds=5)
    assert type(mapped) is expected
    assert words in str(mapped)
    assert "pw-secret-9" not in str(mapped)
    assert type(pickle.loads(pickle.dumps(mapped))) is expected


def test_closed_connection_is_connection_failed():
    mapped = translate(pymysql.err.InterfaceError(0, ""), TARGET, statement_limit_seconds=5)
    assert isinstance(mapped, ConnectionFailed)


@pytest.mark.parametrize(
    ("errno", "cause", "expected", "words"),
    [
        (1045, None, AuthenticationFailed, "access denied for user 'app'"),
        (1698, None, AuthenticationFailed, "access denied"),
        (2003, ConnectionRefusedError(111, "Connection refused"), ConnectionFailed, "refused"),
        (2003, TimeoutError("timed out"), ConnectionFailed, "no answer within 5s"),
        (2003, socket.gaierror(-2, "Name or service not known"), ConnectionFailed, "unknown host"),
        (1049, None, ConnectionFailed, "database 'shop' does not exist"),
        (1040, None, ConnectionFailed, "too many connections"),
        (2013, None, ConnectionFailed, "closed the connection during login"),
    ],
)
def test_connect_errors_are_one_line_without_password(errno, cause, expected, words):
    error = _error(errno)
    if cause is not None:
        error.original_exception = cause  # as PyMySQL sets it
    mapped = connect_error(error, TARGET, connect_timeout_seconds=5)
    assert type(mapped) is expected
    message = str(mapped)
    assert message.startswith("cannot connect to mysql://app:***@db.example:3306/shop: ")
    assert words in message
    assert "pw-secret-9" not in message
    assert "\n" not in message


def test_missing_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymysql", None)
    with pytest.raises(DriverNotInstalled, match=r"pip install 'sessionward\[mysql\]'"):
        MySQLBackend.connect(TARGET, statement_timeout_seconds=5)


def test_statement_timeout_must_be_positive():
    with pytest.raises(ConfigurationError, match="must be positive"):
        MySQLBackend.connect(TARGET, statement_timeout_seconds=0)


#: The whole read's files: one statement, ``UNION ALL`` of its ``kind`` branches.
WHOLE_READS = (
    "list_sessions_mariadb",
    "list_sessions_mysql",
    "list_own_sessions_mariadb",
    "list_own_sessions_mysql",
)


def _top_level_split(text, separator):
    """``text`` cut at ``separator`` outside brackets, quotes and ``--`` comments."""
    text = re.sub(r"--[^\n]*", "", text)
    parts, depth, start, quoted = [], 0, 0, None
    index = 0
    while index < len(text):
        char = text[index]
        if quoted:
            quoted = None if char == quoted else quoted
        elif char in "'\"`":
            quoted = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and text.startswith(separator, index):
            parts.append(text[start:index])
            start = index = index + len(separator)
            continue
        index += 1
    parts.append(text[start:])
    return parts


def _branches(name):
    """Per ``UNION ALL`` branch of a whole read: its select list, item by item."""
    branches = []
    for branch in _top_level_split(load(name), "UNION ALL"):
        select = re.search(r"SELECT\s(.*?)\sFROM\s", branch + " FROM ", re.S)
        assert select, f"{name}: a branch without SELECT"
        # The clock branch has a FROM inside an EXISTS: cut at the first top-level one.
        body = _top_level_split(branch.split("SELECT", 1)[1], "\nFROM ")[0]
        branches.append([item.strip() for item in _top_level_split(body, ",")])
    return branches


def _alias(item):
    match = re.search(r"\sAS\s+(\w+)$", item, re.S)
    return match.group(1) if match else None


@pytest.mark.parametrize("name", WHOLE_READS)
def test_whole_read_branches_have_one_shape(name):
    """Each branch of a whole read lines up with the clock branch's named columns,
    and its ``kind`` is one the reader knows: a column added to one branch only, or
    to one file of the four, would shift every value after it."""
    clock, *others = _branches(name)
    columns = [_alias(item) for item in clock]
    assert None not in columns, f"{name}: every column of the first branch is named"
    assert columns[0] == "kind"
    assert clock[0] == f"'{CLOCK}' AS kind"
    for branch in others:
        assert len(branch) == len(columns), f"{name}: {branch[0]} has {len(branch)} columns"
        assert branch[0] in (f"'{SESSION}'", f"'{GRANTEE}'")


def test_whole_reads_agree_on_columns():
    """The four whole reads (MariaDB and MySQL, all sessions or one's own) name the same
    columns in the same order, the ones the row reader takes."""
    shapes = {name: [_alias(item) for item in _branches(name)[0]] for name in WHOLE_READS}
    first = shapes[WHOLE_READS[0]]
    assert all(shape == first for shape in shapes.values()), shapes
    assert {"pid", "user", "host", "db", "command", "stage", "query", "state_age"} <= set(first)
    assert {"trx_state", "xact_age", "wait_age", "taken_at", "is_superuser"} <= set(first)
