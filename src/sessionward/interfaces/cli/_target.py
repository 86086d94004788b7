"""Which server the command line talks to: ``--dsn``, else ``DATABASE_URL``, else libpq."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

LIBPQ_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE")


@dataclass(frozen=True, slots=True)
class ResolvedURL:
    url: str
    #: Where the URL came from, for error messages: ``--dsn``, ``DATABASE_URL``, ``libpq``.
    source: str


def resolve_url(dsn: str | None, environ: Mapping[str, str] | None = None) -> ResolvedURL:
    """Pick the server URL the way the README documents it.

    >>> resolve_url("mysql://root@db/x", {}).source
    '--dsn'
    >>> resolve_url(None, {"DATABASE_URL": "postgresql://app@db/shop"}).source
    'DATABASE_URL'
    >>> resolve_url(None, {"PGHOST": "db"})
    ResolvedURL(url='postgresql://', source='libpq')
    """
    environ = os.environ if environ is None else environ
    if dsn:
        return ResolvedURL(dsn, "--dsn")
    if environ.get("DATABASE_URL"):
        return ResolvedURL(environ["DATABASE_URL"], "DATABASE_URL")
    # libpq reads PGHOST, PGUSER, … itself; an empty URL hands it those.
    return ResolvedURL("postgresql://", "libpq")
