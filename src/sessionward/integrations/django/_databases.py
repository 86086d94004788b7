"""Read Django's ``DATABASES`` settings: which server, which test databases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote, urlencode

from ...core import ConfigurationError

Vendor = Literal["postgresql", "mysql"]

#: Engines whose server sessionward can read, by the last part of their module path.
_VENDOR_BY_ENGINE_TAIL: dict[str, Vendor] = {
    "postgresql": "postgresql",
    "postgresql_psycopg2": "postgresql",
    "postgis": "postgresql",
    "mysql": "mysql",
}
#: Where a PostgreSQL role connects when the configured database is not the one to use.
PG_MAINTENANCE_DATABASE = "postgres"


def vendor_of(settings_dict: Mapping[str, Any]) -> Vendor | None:
    """The server kind behind an ``ENGINE``, or ``None`` for one sessionward cannot read.

    >>> vendor_of({"ENGINE": "django.db.backends.postgresql"})
    'postgresql'
    >>> vendor_of({"ENGINE": "django.contrib.gis.db.backends.mysql"})
    'mysql'
    >>> vendor_of({"ENGINE": "django.db.backends.sqlite3"}) is None
    True
    """
    engine = str(settings_dict.get("ENGINE") or "")
    return _VENDOR_BY_ENGINE_TAIL.get(engine.rstrip(".").rsplit(".", 1)[-1])


def server_url(settings_dict: Mapping[str, Any], *, database: str | None = None) -> str:
    """A sessionward URL for the server of one ``DATABASES`` entry.

    ``database`` overrides the database to connect to; by default it is the
    entry's ``NAME`` (for PostgreSQL, ``postgres`` when ``NAME`` is empty).

    >>> server_url({"ENGINE": "django.db.backends.postgresql", "NAME": "shop",
    ...             "USER": "app", "PASSWORD": "p@ss", "HOST": "db", "PORT": "5432"})
    'postgresql://app:p%40ss@db:5432/shop'
    >>> server_url({"ENGINE": "django.db.backends.postgresql", "NAME": "shop",
    ...             "HOST": "/var/run/postgresql"}, database="postgres")
    'postgresql:///postgres?host=%2Fvar%2Frun%2Fpostgresql'
    >>> server_url({"ENGINE": "django.db.backends.mysql", "NAME": "shop", "USER": "root"})
    'mysql://root@localhost/shop'
    """
    vendor = vendor_of(settings_dict)
    if vendor is None:
        raise ConfigurationError(
            f"sessionward cannot read sessions of ENGINE {settings_dict.get('ENGINE')!r} "
            "(PostgreSQL and MySQL/MariaDB only)"
        )
    options: Mapping[str, Any] = settings_dict.get("OPTIONS") or {}
    host = str(settings_dict.get("HOST") or "")
    port = str(settings_dict.get("PORT") or "")
    user = str(settings_dict.get("USER") or "")
    password = str(settings_dict.get("PASSWORD") or "")
    name = database if database is not None else str(settings_dict.get("NAME") or "")
    params: dict[str, str] = {}
    if vendor == "postgresql":
        name = name or PG_MAINTENANCE_DATABASE
        if host.startswith("/"):
            params["host"], host = host, ""
        for key in ("sslmode", "sslrootcert", "sslcert", "sslkey", "passfile", "service"):
            if key in options:
                params[key] = str(options[key])
    else:
        if host.startswith("/"):
            params["unix_socket"], host = host, "localhost"
        elif "unix_socket" in options:
            params["unix_socket"] = str(options["unix_socket"])
        host = host or "localhost"
    auth = ""
    if user:
        auth = quote(user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        auth += "@"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    netloc = auth + host + (f":{port}" if port else "")
    query = f"?{urlencode(params, quote_via=quote)}" if params else ""
    return f"{vendor}://{netloc}/{quote(name, safe='')}{query}"


def name_of_test_database(settings_dict: Mapping[str, Any]) -> str:
    """The test database Django creates for an entry: ``TEST['NAME']`` or ``test_`` + ``NAME``.

    >>> name_of_test_database({"NAME": "shop"})
    'test_shop'
    >>> name_of_test_database({"NAME": "shop", "TEST": {"NAME": "ci_shop"}})
    'ci_shop'
    """
    test = settings_dict.get("TEST") or {}
    if test.get("NAME"):
        return str(test["NAME"])
    return "test_" + str(settings_dict.get("NAME") or "")


def names_of_test_databases(
    settings_dict: Mapping[str, Any], *, parallel: int = 0
) -> tuple[str, ...]:
    """The test database and the clones ``--parallel N`` makes of it (``test_shop_1``, …).

    >>> names_of_test_databases({"NAME": "shop"}, parallel=2)
    ('test_shop', 'test_shop_1', 'test_shop_2')
    """
    name = name_of_test_database(settings_dict)
    return (name, *(f"{name}_{index}" for index in range(1, parallel + 1)))
