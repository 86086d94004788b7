"""The adapter's SQL, loaded once from ``queries/``, and the one version ladder.

Each ``.sql`` file holds one query; a ``_mariadb`` or ``_mysql`` suffix marks
an engine variant.  ``dialect_for`` is the only place that looks at the
server engine and version: everything else reads the ``Dialect`` it returns.

PyMySQL has no composer like ``psycopg.sql``: the one statement that names a
schema (``drop_database``) holds ``{placeholders}`` that ``compose`` fills in
one pass with ``quote_identifier`` output or fixed keywords, and runs without
bound values; every other query binds ``%(name)s``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib.resources import files

from ...core import ConfigurationError, Engine, SessionwardError

#: Oldest supported releases, as ``major * 10000 + minor * 100 + patch``.
MIN_MARIADB = 100600
MIN_MYSQL = 80000

_PACKAGE = __name__.rpartition(".")[0]

#: The longest schema name either server takes, in characters (NAME_CHAR_LEN).
MAX_SCHEMA_NAME_CHARACTERS = 64

#: Read before the dialect is known, so it has no variant.
GET_SERVER = "get_server"
#: Which managed platform's kill procedures this login can see (``--platform auto``).
LIST_PLATFORM_PROCEDURES = "list_platform_procedures"
#: Where a managed platform withholds ``CONNECTION ADMIN``, its procedures end sessions:
#: ``kill_connection``, ``kill_query`` and the privilege they take, by platform.
PLATFORM_KILLS = {
    "rds": ("kill_connection_rds", "kill_query_rds", "EXECUTE on mysql.rds_kill"),
    "aurora": ("kill_connection_rds", "kill_query_rds", "EXECUTE on mysql.rds_kill"),
    "azure": ("kill_connection_azure", "kill_query_azure", "EXECUTE on mysql.az_kill"),
}


@cache
def load(name: str) -> str:
    """Return the text of ``queries/<name>.sql``."""
    return (files(_PACKAGE) / "queries" / f"{name}.sql").read_text(encoding="utf-8")


def query_names() -> frozenset[str]:
    """The name of every ``.sql`` file shipped with the adapter."""
    folder = files(_PACKAGE) / "queries"
    return frozenset(
        entry.name.removesuffix(".sql") for entry in folder.iterdir() if entry.name.endswith(".sql")
    )


@dataclass(frozen=True, slots=True)
class Dialect:
    """The variant of every query, and the wording that differs, for one server line."""

    engine: Engine
    set_statement_limit: str
    get_sources: str
    list_sessions: str
    list_own_sessions: str
    list_lock_waits: str
    list_metadata_locks: str
    list_applications: str
    probe_sessions: str
    #: Sleeping sessions' idle time in milliseconds; ``None`` where the server has none.
    list_idle_times: str | None
    list_transactions: str
    kill_query: str
    kill_connection: str
    #: For dry runs: whether this login may end other users' sessions.
    get_kill_privilege: str
    get_database: str
    #: Whether this login's own grants allow dropping a schema.
    get_schema_privileges: str
    list_database_sessions: str
    #: Who holds a metadata lock in a schema: the plugin (MariaDB) or performance_schema.
    list_database_locks: str
    set_lock_wait: str
    reset_lock_wait: str
    #: Holds ``{name}`` and ``{if_exists}`` for ``compose``.
    drop_database: str
    #: The reaper's leader lock.
    get_lock: str
    #: The privilege a login needs to end another user's session.
    kill_privilege: str
    #: How to make row-lock blockers visible when they are not.
    lock_waits_hint: str
    #: How to make metadata-lock blockers visible when they are not.
    metadata_locks_hint: str

    def names(self) -> frozenset[str]:
        """Every query file this dialect uses."""
        used = (getattr(self, f) for f in _QUERY_FIELDS)
        return frozenset(name for name in used if name is not None) | {GET_SERVER}


_QUERY_FIELDS = (
    "set_statement_limit",
    "get_sources",
    "list_sessions",
    "list_own_sessions",
    "list_lock_waits",
    "list_metadata_locks",
    "list_applications",
    "probe_sessions",
    "list_idle_times",
    "list_transactions",
    "kill_query",
    "kill_connection",
    "get_kill_privilege",
    "get_database",
    "get_schema_privileges",
    "list_database_sessions",
    "list_database_locks",
    "set_lock_wait",
    "reset_lock_wait",
    "drop_database",
    "get_lock",
)

_SHARED = {
    "list_transactions": "list_transactions",
    "list_applications": "list_applications",
    "kill_query": "kill_query",
    "kill_connection": "kill_connection",
    "get_kill_privilege": "get_kill_privilege",
    "get_database": "get_database",
    "get_schema_privileges": "get_schema_privileges",
    "list_database_sessions": "list_database_sessions",
    "set_lock_wait": "set_lock_wait",
    "reset_lock_wait": "reset_lock_wait",
    "drop_database": "drop_database",
    "get_lock": "get_lock",
}

_MARIADB = Dialect(
    engine="mariadb",
    set_statement_limit="set_statement_limit_mariadb",
    get_sources="get_sources_mariadb",
    list_sessions="list_sessions_mariadb",
    list_own_sessions="list_own_sessions_mariadb",
    list_lock_waits="list_lock_waits_mariadb",
    list_metadata_locks="list_metadata_locks_mariadb",
    list_database_locks="list_database_locks_mariadb",
    probe_sessions="probe_sessions_mariadb",
    list_idle_times="list_idle_times",
    kill_privilege="CONNECTION ADMIN or SUPER",
    lock_waits_hint="grant PROCESS to read information_schema.INNODB_LOCK_WAITS",
    metadata_locks_hint=(
        "install the metadata_lock_info plugin (INSTALL SONAME 'metadata_lock_info')"
    ),
    **_SHARED,
)

_MYSQL = Dialect(
    engine="mysql",
    set_statement_limit="set_statement_limit_mysql",
    get_sources="get_sources_mysql",
    list_sessions="list_sessions_mysql",
    list_own_sessions="list_own_sessions_mysql",
    list_lock_waits="list_lock_waits_mysql",
    list_metadata_locks="list_metadata_locks_mysql",
    list_database_locks="list_database_locks_mysql",
    probe_sessions="probe_sessions_mysql",
    list_idle_times=None,
    kill_privilege=(
        "CONNECTION_ADMIN or SUPER (and SYSTEM_USER to end a SYSTEM_USER account's session)"
    ),
    lock_waits_hint=(
        "enable performance_schema and grant SELECT on performance_schema.data_lock_waits"
    ),
    metadata_locks_hint=(
        "enable performance_schema, its wait/lock/metadata/sql/mdl instrument, "
        "and SELECT on performance_schema.metadata_locks"
    ),
    **_SHARED,
)


def for_platform(dialect: Dialect, platform: str) -> Dialect:
    """``dialect`` ending sessions the way ``platform`` lets a non-super login do it.

    >>> for_platform(_MARIADB, "rds").kill_connection
    'kill_connection_rds'
    >>> for_platform(_MARIADB, "self-managed") is _MARIADB
    True
    """
    if platform not in PLATFORM_KILLS:
        return dialect
    kill_connection, kill_query, privilege = PLATFORM_KILLS[platform]
    return replace(
        dialect, kill_connection=kill_connection, kill_query=kill_query, kill_privilege=privilege
    )


def dialect_for(engine: Engine, version_num: int) -> Dialect:
    """Map a server engine and version to the variant of every query.

    >>> dialect_for("mariadb", 101119).list_sessions
    'list_sessions_mariadb'
    >>> dialect_for("mysql", 80036).probe_sessions
    'probe_sessions_mysql'
    >>> dialect_for("mariadb", 100508)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: MariaDB 10.5.8 is not supported ...
    """
    if engine == "mariadb" and version_num >= MIN_MARIADB:
        return _MARIADB
    if engine == "mysql" and version_num >= MIN_MYSQL:
        return _MYSQL
    name = "MariaDB" if engine == "mariadb" else "MySQL"
    raise ConfigurationError(
        f"{name} {_dotted(version_num)} is not supported "
        f"(sessionward needs MariaDB {_dotted(MIN_MARIADB)}+ or MySQL {_dotted(MIN_MYSQL)}+)"
    )


def parse_version(version: str, comment: str) -> tuple[Engine, int]:
    """Tell MariaDB from MySQL and read ``major * 10000 + minor * 100 + patch``.

    >>> parse_version("10.11.19-MariaDB-0+deb12u1", "Debian 12")
    ('mariadb', 101119)
    >>> parse_version("8.0.36", "MySQL Community Server - GPL")
    ('mysql', 80036)
    >>> parse_version("8.0.mysql_aurora.3.05.2", "Source distribution")
    ('mysql', 80000)
    """
    engine: Engine = "mariadb" if "mariadb" in f"{version} {comment}".lower() else "mysql"
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        raise SessionwardError(f"cannot read the server version {version!r}")
    major, minor, patch = (int(part or 0) for part in match.groups())
    return engine, major * 10000 + minor * 100 + patch


def union_all(names: Sequence[str]) -> str:
    """One statement of the queries ``names``, which share their columns: side reads
    that cost one round trip together however many a snapshot needs.

    >>> print(union_all(["get_server", "get_server"]).count("UNION ALL"))
    1
    """
    return "\nUNION ALL\n".join(load(name).rstrip() for name in names)


def quote_identifier(name: str) -> str:
    """Quote a schema name as MariaDB and MySQL read it: backticks, inner ones doubled.

    >>> quote_identifier("test_app")
    '`test_app`'
    >>> quote_identifier("we`ird {name}")
    '`we``ird {name}`'
    >>> quote_identifier("")
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: not a database name: ''
    """
    if not name or "\x00" in name:
        raise ConfigurationError(f"not a database name: {name!r}")
    return "`" + name.replace("`", "``") + "`"


def check_schema_name(name: str) -> None:
    """Refuse what cannot be a schema name, before any statement carries it.

    >>> check_schema_name("x" * 64)
    >>> check_schema_name("x" * 65)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: database name 'xxx...' is 65 characters long, ...
    """
    quote_identifier(name)
    if len(name) > MAX_SCHEMA_NAME_CHARACTERS:
        raise ConfigurationError(
            f"database name {name!r} is {len(name)} characters long, over the server's limit "
            f"of {MAX_SCHEMA_NAME_CHARACTERS}: no such database can exist; nothing was done"
        )


def compose(text: str, **fragments: str) -> str:
    """Fill every ``{placeholder}`` of ``text`` in one pass, so no filling is read again.

    Only ``quote_identifier`` output and fixed keywords may be passed.

    >>> compose("DROP DATABASE {if_exists}{name}", name="`{if_exists}`", if_exists="")
    'DROP DATABASE `{if_exists}`'
    """
    return re.sub(r"\{([a-z_]+)\}", lambda match: fragments[match.group(1)], text)


def _dotted(version_num: int) -> str:
    major, rest = divmod(version_num, 10000)
    minor, patch = divmod(rest, 100)
    return f"{major}.{minor}" + (f".{patch}" if patch else "")
