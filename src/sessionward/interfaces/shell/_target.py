"""Which server the command line talks to: ``--dsn``, else ``DATABASE_URL``, else libpq."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...core import ConfigurationError, ConnectionFailed, DriverNotInstalled, Target, parse_target

if TYPE_CHECKING:
    from ..._control import SessionControl

LIBPQ_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE")

#: The managed platform every connection of this command uses (``sessionward --platform``).
_platform = ["auto"]


def choose_platform(name: str) -> None:
    """Set the platform for the connections the command line opens from now on."""
    _platform[0] = name


@dataclass(frozen=True, slots=True)
class ResolvedURL:
    url: str
    #: Where the URL came from, for error messages: ``--dsn``, ``$DATABASE_URL``, ``libpq``.
    source: str

    def target(self) -> Target:
        """The parsed URL; a bad one is refused in one line naming its source.

        >>> ResolvedURL("postgresql://u:p@w@db/x", "--dsn").target()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        sessionward.core._errors.ConfigurationError: --dsn: the host part of the URL ...
        """
        try:
            return parse_target(self.url)
        except ConfigurationError as error:
            raise ConfigurationError(f"{self.source}: {error}") from None


def resolve_url(dsn: str | None, environ: Mapping[str, str] | None = None) -> ResolvedURL:
    """Pick the server URL the way the README documents it.

    >>> resolve_url("mysql://root@db/x", {}).source
    '--dsn'
    >>> resolve_url(None, {"DATABASE_URL": "postgresql://app@db/shop"}).source
    '$DATABASE_URL'
    >>> resolve_url(None, {"PGHOST": "db"})
    ResolvedURL(url='postgresql://', source='libpq')
    """
    environ = os.environ if environ is None else environ
    if dsn is not None:
        if not dsn.strip():
            raise ConfigurationError("--dsn: empty (give a URL such as postgresql://user@host/db)")
        return ResolvedURL(dsn, "--dsn")
    if environ.get("DATABASE_URL", "").strip():
        return ResolvedURL(environ["DATABASE_URL"], "$DATABASE_URL")
    # libpq reads PGHOST, PGUSER, … itself; an empty URL hands it those.
    return ResolvedURL("postgresql://", "libpq")


def connect_resolved(resolved: ResolvedURL) -> SessionControl:
    """Connect to the resolved URL; errors in it name where it came from."""
    from ..._control import connect

    target = resolved.target()
    try:
        return connect(target, platform=_platform[0])
    except DriverNotInstalled:
        raise
    except ConfigurationError as error:
        # Refused before any login: an option of the URL, so say whose URL.
        raise ConfigurationError(f"{resolved.source}: {error}") from None
    except ConnectionFailed as error:
        if resolved.source == "libpq":
            raise ConnectionFailed(
                f"{error} (no --dsn or DATABASE_URL given, so libpq defaults and PG* "
                "variables were used)"
            ) from None
        raise


def open_control(dsn: str | None) -> SessionControl:
    """Connect to the server ``--dsn``, ``DATABASE_URL`` or libpq's variables name."""
    return connect_resolved(resolve_url(dsn))
