"""``Timeouts`` in each server's names and units: libpq parameters, MariaDB/MySQL variables.

Every driver adapter goes through here, so PostgreSQL versions and MariaDB/MySQL
flavours are decided in one place.  Rounding never shortens a limit: values
are rounded up to the server's unit, and a positive value never becomes 0
(which servers read as "off").
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from ..core import ConfigurationError, Timeouts, UnsupportedSetting

Flavor = Literal["mariadb", "mysql", "auto"]
#: A MariaDB/MySQL session variable and its value in the server's unit.
Assignment = tuple[str, int | float]
Assignments = tuple[Assignment, ...]

#: libpq's smallest connect_timeout: it reads 1 as 2.
LIBPQ_MIN_CONNECT_TIMEOUT = 2
PG_MAX_MILLISECONDS = 2**31 - 1


@dataclass(frozen=True, slots=True)
class PgSetting:
    field: str
    name: str
    #: The first server_version_num that knows the setting.
    since: int


PG_SETTINGS = (
    PgSetting("statement_seconds", "statement_timeout", 0),
    PgSetting("lock_seconds", "lock_timeout", 0),
    PgSetting("idle_in_transaction_seconds", "idle_in_transaction_session_timeout", 0),
    PgSetting("idle_session_seconds", "idle_session_timeout", 140000),
    PgSetting("transaction_seconds", "transaction_timeout", 170000),
)


def pg_version_num(server_version: int) -> int:
    """libpq's number for a version; a bare major version is accepted too.

    >>> pg_version_num(150020), pg_version_num(17)
    (150020, 170000)
    """
    if server_version <= 0:
        raise ConfigurationError(f"not a PostgreSQL server version: {server_version!r}")
    return server_version * 10000 if server_version < 100 else server_version


def pg_version_name(server_version: int) -> str:
    """
    >>> pg_version_name(150020), pg_version_name(170000)
    ('PostgreSQL 15.20', 'PostgreSQL 17.0')
    """
    number = pg_version_num(server_version)
    return f"PostgreSQL {number // 10000}.{number % 10000}"


def pg_settings(timeouts: Timeouts, *, server_version: int | None) -> dict[str, int]:
    """The server settings to apply, in milliseconds, checked against the version if known.

    >>> pg_settings(Timeouts(statement_seconds=0.1, lock_seconds=0), server_version=None)
    {'statement_timeout': 100, 'lock_timeout': 0}
    >>> try:
    ...     pg_settings(Timeouts(transaction_seconds=5), server_version=150020)
    ... except UnsupportedSetting as error:
    ...     print(error)
    transaction_timeout needs PostgreSQL 17 or later; the server is PostgreSQL 15.20
    """
    settings: dict[str, int] = {}
    for setting in PG_SETTINGS:
        seconds = getattr(timeouts, setting.field)
        if seconds is None:
            continue
        if server_version is not None and pg_version_num(server_version) < setting.since:
            server = pg_version_name(server_version)
            raise UnsupportedSetting(
                f"{setting.name} needs PostgreSQL {setting.since // 10000} or later; "
                f"the server is {server}",
                setting=setting.name,
                server=server,
            )
        milliseconds = round_up(seconds * 1000)
        if milliseconds > PG_MAX_MILLISECONDS:
            raise ConfigurationError(
                f"Timeouts.{setting.field} is too long for PostgreSQL's {setting.name} "
                f"(at most {PG_MAX_MILLISECONDS // 1000} s; 0 turns it off)"
            )
        settings[setting.name] = milliseconds
    return settings


def libpq_params(
    timeouts: Timeouts, *, server_version: int | None = None, options: str | None = None
) -> dict[str, Any]:
    """Connection parameters for libpq (psycopg 3, psycopg2, Django's OPTIONS).

    >>> libpq_params(Timeouts(statement_seconds=30, connect_seconds=1))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'options': '-c statement_timeout=30000', 'connect_timeout': 2, 'keepalives': 1,
     'keepalives_idle': 30, 'keepalives_interval': 10, 'keepalives_count': 3,
     'tcp_user_timeout': 60000}
    """
    params: dict[str, Any] = {}
    parts = [options.strip()] if options and options.strip() else []
    settings = pg_settings(timeouts, server_version=server_version)
    parts += [f"-c {name}={value}" for name, value in settings.items()]
    if parts:
        params["options"] = " ".join(parts)
    params.update(libpq_client_params(timeouts))
    return params


def libpq_client_params(timeouts: Timeouts) -> dict[str, int]:
    """The client-side part: connect timeout, keepalives, TCP user timeout.

    >>> no_keepalives = Timeouts(keepalive_idle_seconds=None, keepalive_interval_seconds=None,
    ...                          max_keepalive_probes=None, tcp_user_timeout_seconds=None)
    >>> libpq_client_params(no_keepalives.evolve(connect_seconds=0))
    {'connect_timeout': 0}
    """
    params: dict[str, int] = {}
    if timeouts.connect_seconds is not None:
        seconds = round_up(timeouts.connect_seconds)
        params["connect_timeout"] = max(seconds, LIBPQ_MIN_CONNECT_TIMEOUT) if seconds else 0
    if timeouts.keepalives:
        params["keepalives"] = 1
    if timeouts.keepalive_idle_seconds is not None:
        params["keepalives_idle"] = round_up(timeouts.keepalive_idle_seconds)
    if timeouts.keepalive_interval_seconds is not None:
        params["keepalives_interval"] = round_up(timeouts.keepalive_interval_seconds)
    if timeouts.max_keepalive_probes is not None:
        params["keepalives_count"] = timeouts.max_keepalive_probes
    if timeouts.tcp_user_timeout_seconds is not None:
        params["tcp_user_timeout"] = round_up(timeouts.tcp_user_timeout_seconds * 1000)
    return params


# --------------------------------------------------------------------------- MariaDB / MySQL


@dataclass(frozen=True, slots=True)
class MySQLServer:
    flavor: Literal["mariadb", "mysql"]
    version: tuple[int, ...]

    @property
    def name(self) -> str:
        label = "MariaDB" if self.flavor == "mariadb" else "MySQL"
        return f"{label} {'.'.join(map(str, self.version))}".strip()


_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
#: MariaDB before 11 prefixes its handshake version for old MySQL clients.
_MARIADB_HANDSHAKE_PREFIX = "5.5.5-"


def mysql_server(version: str) -> MySQLServer:
    """The flavour and version in a server version string.

    >>> mysql_server("5.5.5-10.11.19-MariaDB-0+deb12u1")
    MySQLServer(flavor='mariadb', version=(10, 11, 19))
    >>> mysql_server("8.0.36").name
    'MySQL 8.0.36'
    """
    text = version.removeprefix(_MARIADB_HANDSHAKE_PREFIX)
    match = _VERSION.match(text)
    numbers = tuple(int(part) for part in match.groups() if part) if match else ()
    flavor: Literal["mariadb", "mysql"] = "mariadb" if "mariadb" in text.lower() else "mysql"
    return MySQLServer(flavor, numbers)


#: MariaDB/MySQL take whole seconds here, and read 0 as "do not wait" or reject it,
#: so "no limit" (0) becomes each variable's largest value.
_MYSQL_UNLIMITED = {
    "innodb_lock_wait_timeout": 100000000,  # MariaDB 10.11's largest; MySQL allows more
    "lock_wait_timeout": 31536000,
    "wait_timeout": 31536000,
}


@dataclass(frozen=True, slots=True)
class MySQLAssignments:
    """``SET SESSION`` assignments: for both flavours, MariaDB only, MySQL only."""

    common: Assignments = ()
    mariadb: Assignments = ()
    mysql: Assignments = ()

    def for_flavor(self, flavor: Literal["mariadb", "mysql"]) -> Assignments:
        return self.common + (self.mariadb if flavor == "mariadb" else self.mysql)

    def init_command(self) -> str | None:
        """One ``SET SESSION`` statement; flavour parts sit in executable comments.

        MariaDB runs ``/*M! … */`` and skips ``/*!80000 … */``; MySQL 8 does the reverse.

        >>> command = MySQLAssignments(common=(("wait_timeout", 60),),
        ...                            mariadb=(("max_statement_time", 0.5),),
        ...                            mysql=(("max_execution_time", 500),)).init_command()
        >>> for part in command.split(" /*"):
        ...     print(part)
        SET SESSION wait_timeout=60
        M!, max_statement_time=0.5 */
        !80000 , max_execution_time=500 */
        """
        if not (self.common or self.mariadb or self.mysql):
            return None
        command = "SET SESSION " + _assign(self.common)
        separator = ", " if self.common else ""
        if self.mariadb:
            command += f" /*M!{separator or ' '}{_assign(self.mariadb)} */"
        if self.mysql:
            command += f" /*!80000 {separator}{_assign(self.mysql)} */"
        return command.replace("SET SESSION  /*", "SET SESSION /*")


def mysql_assignments(
    timeouts: Timeouts,
    *,
    flavor: Flavor,
    allow_partial: bool = False,
    server: MySQLServer | None = None,
) -> MySQLAssignments:
    """The session variables for ``timeouts`` on MariaDB, MySQL, or either (``auto``).

    ``allow_partial`` accepts MySQL's ``max_execution_time``, which limits only
    read-only ``SELECT`` statements.
    """
    if server is not None:
        flavor = server.flavor
    where = server.name if server is not None else _flavor_name(flavor)
    common: list[Assignment] = []
    mariadb: list[Assignment] = []
    mysql: list[Assignment] = []
    if timeouts.transaction_seconds is not None:
        raise UnsupportedSetting(
            f"MariaDB and MySQL have no transaction timeout ({where})",
            setting="transaction_timeout",
            server=where,
        )
    if timeouts.statement_seconds is not None:
        if flavor != "mariadb" and not allow_partial:
            raise UnsupportedSetting(
                _statement_refusal(flavor, where), setting="max_execution_time", server=where
            )
        mariadb.append(("max_statement_time", _round_up_micro(timeouts.statement_seconds)))
        mysql.append(("max_execution_time", round_up(timeouts.statement_seconds * 1000)))
    if timeouts.lock_seconds is not None:
        common.append(_whole_seconds("innodb_lock_wait_timeout", timeouts.lock_seconds))
        common.append(_whole_seconds("lock_wait_timeout", timeouts.lock_seconds))
    if timeouts.idle_in_transaction_seconds is not None:
        if flavor != "mariadb":
            raise UnsupportedSetting(
                "MySQL has no idle-in-transaction timeout (MariaDB's is idle_transaction_timeout)"
                + ("; state flavor='mariadb' if the server is MariaDB" if flavor == "auto" else "")
                + f" ({where})",
                setting="idle_transaction_timeout",
                server=where,
            )
        mariadb.append(("idle_transaction_timeout", round_up(timeouts.idle_in_transaction_seconds)))
    if timeouts.idle_session_seconds is not None:
        common.append(_whole_seconds("wait_timeout", timeouts.idle_session_seconds))
    if flavor == "mariadb":
        return MySQLAssignments(common=tuple(common + mariadb))
    if flavor == "mysql":
        return MySQLAssignments(common=tuple(common + mysql))
    return MySQLAssignments(common=tuple(common), mariadb=tuple(mariadb), mysql=tuple(mysql))


def merge_init_command(ours: str | None, theirs: str | None) -> str | None:
    """Join the caller's ``init_command`` with ours as one ``SET`` statement.

    Drivers run a single statement there, so only a plain ``SET`` can be joined.

    >>> merge_init_command("SET SESSION wait_timeout=60", "SET NAMES utf8mb4")
    'SET NAMES utf8mb4, SESSION wait_timeout=60'
    """
    if not theirs or not theirs.strip():
        return ours
    if ours is None:
        return theirs
    theirs = theirs.strip().rstrip(";").rstrip()
    if not _PLAIN_SET.match(theirs):
        raise ConfigurationError(
            f"cannot add the timeouts to init_command {theirs!r}: only a SET statement can be "
            "joined with them; run that statement after connecting instead"
        )
    return f"{theirs}, {ours.removeprefix('SET ')}"


_PLAIN_SET = re.compile(
    r"^SET\s+(?!(?:SESSION\s+|GLOBAL\s+)?TRANSACTION\b|PASSWORD\b|ROLE\b|DEFAULT\s+ROLE\b"
    r"|STATEMENT\b)",
    re.IGNORECASE,
)


def mysql_connect_timeout(timeouts: Timeouts) -> dict[str, Any]:
    """PyMySQL's ``connect_timeout`` (float seconds; ``None`` waits forever)."""
    if timeouts.connect_seconds is None:
        return {}
    return {"connect_timeout": timeouts.connect_seconds or None}


def mysqlclient_connect_timeout(timeouts: Timeouts) -> dict[str, Any]:
    """mysqlclient's ``connect_timeout``: whole seconds, rounded up.

    0 ("wait forever") leaves it out: mysqlclient then waits as long as the
    operating system does.

    >>> mysqlclient_connect_timeout(Timeouts(connect_seconds=0.2))
    {'connect_timeout': 1}
    >>> mysqlclient_connect_timeout(Timeouts(connect_seconds=0))
    {}
    """
    if not timeouts.connect_seconds:
        return {}
    return {"connect_timeout": round_up(timeouts.connect_seconds)}


def mysql_init_command(
    timeouts: Timeouts,
    *,
    flavor: Flavor,
    allow_partial: bool,
    server_version: str | None,
    init_command: str | None,
) -> dict[str, Any]:
    """``init_command`` for PyMySQL or mysqlclient: the limits, joined with the caller's own."""
    server = mysql_server(server_version) if server_version else None
    assignments = mysql_assignments(
        timeouts, flavor=flavor, allow_partial=allow_partial, server=server
    )
    command = merge_init_command(assignments.init_command(), init_command)
    return {"init_command": command} if command else {}


def apply_mysql_timeouts(connection: Any, timeouts: Timeouts, *, allow_partial: bool) -> None:
    """Set the server limits on an open PyMySQL or mysqlclient connection.

    The flavour and version come from the server's handshake.
    """
    server = mysql_server(connection.get_server_info())
    assignments = mysql_assignments(
        timeouts, flavor=server.flavor, allow_partial=allow_partial, server=server
    )
    set_mysql_variables(connection, assignments.for_flavor(server.flavor))


def _statement_refusal(flavor: Flavor, where: str) -> str:
    if flavor == "auto":
        return (
            "flavor='auto' cannot tell MariaDB (max_statement_time, every statement) from "
            "MySQL (max_execution_time, read-only SELECT only): state flavor='mariadb', or pass "
            "allow_partial=True to accept SELECT-only limits on MySQL"
        )
    return (
        f"MySQL's only statement limit, max_execution_time, covers read-only SELECT statements "
        f"only ({where}); pass allow_partial=True to accept that"
    )


def _flavor_name(flavor: Flavor) -> str:
    return {"mariadb": "MariaDB", "mysql": "MySQL", "auto": "MariaDB or MySQL"}[flavor]


def _whole_seconds(name: str, seconds: float) -> tuple[str, int]:
    if seconds == 0:
        return name, _MYSQL_UNLIMITED[name]
    value = round_up(seconds)
    if value > _MYSQL_UNLIMITED[name]:
        raise ConfigurationError(
            f"{seconds:g} s is longer than {name} allows ({_MYSQL_UNLIMITED[name]} s; 0 means no "
            "limit)"
        )
    return name, value


def _assign(pairs: Assignments) -> str:
    return ", ".join(f"{name}={_literal(value)}" for name, value in pairs)


def _literal(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def round_up(value: float) -> int:
    """Whole units, rounded up; a positive value stays positive.

    >>> round_up(0.0001), round_up(2.0), round_up(2.000000001), round_up(0)
    (1, 2, 2, 0)
    """
    # Float products such as 0.1 * 1000 = 100.00000000000001 must not become 101.
    rounded = math.ceil(round(value, 6))
    return max(rounded, 1) if value > 0 else 0


def _round_up_micro(seconds: float) -> float:
    """Seconds with MariaDB's microsecond precision, rounded up, never 0 for a positive value."""
    micro = round_up(seconds * 1_000_000)
    return micro / 1_000_000


# --------------------------------------------------------------------------- live connections


@functools.cache
def load(name: str) -> str:
    """Read ``queries/<name>.sql`` from the installed package, once."""
    return (resources.files(__package__) / "queries" / f"{name}.sql").read_text(encoding="utf-8")


def set_pg_settings(connection: Any, settings: Mapping[str, int], *, in_transaction: bool) -> None:
    """Set session settings on an open psycopg or psycopg2 connection.

    A connection that is not in autocommit mode gets the settings committed,
    so a later rollback does not undo them; one already inside a transaction
    is refused, since committing would commit the caller's work too.
    """
    if not settings:
        return
    if in_transaction:
        raise ConfigurationError(
            "cannot apply timeouts to a connection inside a transaction: "
            "commit or roll back first (or apply them right after connecting)"
        )
    cursor = connection.cursor()
    try:
        cursor.execute(
            load("set_session_timeouts"),
            {"names": list(settings), "values": [str(value) for value in settings.values()]},
        )
    finally:
        cursor.close()
    if not connection.autocommit:
        connection.commit()


def set_pg_transaction_settings(
    connection: Any,
    settings: Mapping[str, int],
    *,
    execute_options: Mapping[str, Any] | None = None,
) -> None:
    """Set ``settings`` for the current (or, with autocommit off, the next) transaction only.

    ``set_config(…, is_local => true)``: the limits end with the transaction, so
    behind a transaction-mode pooler they never reach the next client of the
    server connection.  ``execute_options`` go to ``cursor.execute`` (psycopg 3:
    ``prepare=False``, since a prepared statement outlives the pooled transaction).
    """
    if not settings:
        return
    cursor = connection.cursor()
    try:
        cursor.execute(
            load("set_transaction_timeouts"),
            {"names": list(settings), "values": [str(value) for value in settings.values()]},
            **(execute_options or {}),
        )
    finally:
        cursor.close()


def set_mysql_variables(connection: Any, assignments: Assignments) -> None:
    """``SET SESSION`` on an open PyMySQL (or mysqlclient) connection; not transactional."""
    if not assignments:
        return
    # Variable names come from our own table, never from the caller; values are bound.
    statement = "SET SESSION " + ", ".join(f"{name} = %s" for name, _ in assignments)
    cursor = connection.cursor()
    try:
        cursor.execute(statement, [value for _, value in assignments])
    finally:
        cursor.close()
