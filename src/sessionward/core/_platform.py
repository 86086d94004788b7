"""Managed servers: the platform a server runs on, its own logins, how sessions end there.

On RDS, Aurora, Azure and Cloud SQL the login you get is not a superuser
(``rds_superuser`` is a role, not ``SUPERUSER``; MySQL's ``SUPER`` and
``CONNECTION ADMIN`` are withheld), and the platform runs sessions of its own
for monitoring, backups and replication.  Those sessions are never ended: a
platform refuses it at best, and a stopped agent or replica is an outage at
worst.  MySQL and MariaDB there end other users' sessions through the
platform's stored procedures (``mysql.rds_kill``, ``mysql.az_kill``), which
run with the platform's rights; PostgreSQL needs no such thing: membership of
``pg_signal_backend`` lets ``pg_terminate_backend`` end any session that is
not a superuser's.

Sources: the RDS user guide ("Ending a session or query", "Master user account
privileges"), Azure Database for MySQL ("az_kill"), Cloud SQL ("About users":
``cloudsqladmin``, ``cloudsqlagent``, …).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from ._errors import ConfigurationError

#: What ``--platform`` / ``SESSIONWARD_PLATFORM`` accepts; ``auto`` asks the server.
PLATFORMS = ("auto", "self-managed", "rds", "aurora", "azure", "cloudsql")
SELF_MANAGED = "self-managed"

#: Each platform's own logins, on PostgreSQL and MySQL alike.
PLATFORM_LOGINS: Mapping[str, str] = {
    "rdsadmin": "rds",
    "rdsrepladmin": "rds",
    "rdsproxyadmin": "rds",
    "rdstopmgr": "rds",
    "cloudsqladmin": "cloudsql",
    "cloudsqlagent": "cloudsql",
    "cloudsqlreplica": "cloudsql",
    "cloudsqlimportexport": "cloudsql",
    "cloudsqlexport": "cloudsql",
    "cloudsqlimport": "cloudsql",
    "cloudsqloneshot": "cloudsql",
    "cloudsqlapplier": "cloudsql",
    "azure_superuser": "azure",
    "azuresu": "azure",
    "azure_pg_admin": "azure",
    "replication": "azure",
}

#: MySQL/MariaDB: the procedures that end a session and a statement, by platform.
MYSQL_KILL_PROCEDURES: Mapping[str, tuple[str, str]] = {
    "rds": ("mysql.rds_kill", "mysql.rds_kill_query"),
    "aurora": ("mysql.rds_kill", "mysql.rds_kill_query"),
    "azure": ("mysql.az_kill", "mysql.az_kill_query"),
}


def checked_platform(name: str) -> str:
    """``name`` if it is a platform sessionward knows, else ``ConfigurationError``.

    >>> checked_platform("RDS")
    'rds'
    """
    wanted = name.strip().lower()
    if wanted not in PLATFORMS:
        raise ConfigurationError(f"unknown platform {name!r}: choose one of {', '.join(PLATFORMS)}")
    return wanted


def platform_of_login(user: str | None) -> str | None:
    """The platform whose own login ``user`` is, or ``None`` for everyone else.

    >>> platform_of_login("rdsadmin"), platform_of_login("app")
    ('rds', None)
    """
    return PLATFORM_LOGINS.get(user) if user else None


def mysql_platform(procedures: Collection[str]) -> str:
    """The platform a MySQL/MariaDB server runs on, from the ``mysql`` schema's routines.

    >>> mysql_platform({"rds_kill", "rds_kill_query"}), mysql_platform(set())
    ('rds', 'self-managed')
    """
    if "rds_kill" in procedures:
        return "rds"
    if "az_kill" in procedures:
        return "azure"
    return SELF_MANAGED


def postgres_platform(roles: Collection[str]) -> str:
    """The platform a PostgreSQL server runs on, from the roles it has.

    >>> postgres_platform({"rds_superuser"}), postgres_platform({"cloudsqlsuperuser"})
    ('rds', 'cloudsql')
    """
    if "rds_superuser" in roles:
        return "rds"
    if "cloudsqlsuperuser" in roles:
        return "cloudsql"
    if "azure_pg_admin" in roles:
        return "azure"
    return SELF_MANAGED
