"""Connection targets: which server to talk to, parsed from a URL."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from ._errors import ConfigurationError

Kind = Literal["postgresql", "mysql"]

_SCHEMES: dict[str, Kind] = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}
#: Query parameters that carry a secret (libpq's ``sslpassword`` included).
_SECRET_PARAMS = frozenset({"password", "passwd", "sslpassword"})
_SECRET_PARAM = re.compile(r"([?&](?:password|passwd|sslpassword)=)[^&#]*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed server URL.  ``repr`` and ``redacted`` never show the password."""

    kind: Kind
    url: str = field(repr=False)
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        params = tuple(
            (key, "***" if key.lower() in _SECRET_PARAMS else value) for key, value in self.params
        )
        return (
            f"Target(kind={self.kind!r}, host={self.host!r}, port={self.port!r}, "
            f"user={self.user!r}, database={self.database!r}, params={params!r})"
        )

    def scrub(self, text: str) -> str:
        """Replace every password of this target found in ``text`` with ``***``.

        Drivers may quote the URL as written when they cannot parse it, so the
        password is hidden both decoded and as written.

        >>> parse_target("postgresql://u:p%zz%41@h/db").scrub('bad token: "p%zz%41"')
        'bad token: "***"'
        """
        secrets = [self.password or ""]
        secrets += [value for key, value in self.params if key.lower() in _SECRET_PARAMS]
        after_scheme = self.url.partition("://")[2]
        userinfo = after_scheme.partition("/")[0].rpartition("@")[0]
        secrets.append(userinfo.partition(":")[2])
        secrets += [m.group(0).partition("=")[2] for m in _SECRET_PARAM.finditer(after_scheme)]
        for secret in sorted(filter(None, secrets), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def redacted(self) -> str:
        """The URL as it is safe to print.

        >>> parse_target("postgresql://app:s3cret@db:6432/shop").redacted()
        'postgresql://app:***@db:6432/shop'
        """
        return redact_url(self.url)


def parse_target(url: str) -> Target:
    """Parse ``postgresql://``, ``postgres://``, ``mysql://`` or ``mariadb://`` URLs.

    A SQLAlchemy driver suffix such as ``postgresql+psycopg://`` is accepted.

    >>> t = parse_target("mariadb://root@127.0.0.1:3306/test")
    >>> t.kind, t.host, t.port, t.user, t.database
    ('mysql', '127.0.0.1', 3306, 'root', 'test')
    >>> parse_target("oracle://x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: unsupported URL scheme 'oracle' in oracle://x ...
    """
    text = url.strip()
    if "://" not in text:
        # Not echoed: it may be a key=value connection string holding a password.
        raise ConfigurationError("not a server URL (expected postgresql://… or mysql://…)")
    scheme = text.split("://", 1)[0].lower().split("+", 1)[0]
    kind = _SCHEMES.get(scheme)
    if kind is None:
        raise ConfigurationError(
            f"unsupported URL scheme {scheme!r} in {redact_url(text)} "
            "(use postgresql://, mysql:// or mariadb://)"
        )
    try:
        parts = urlsplit(text)
    except ValueError as error:
        raise ConfigurationError(f"malformed URL {redact_url(text)}: {error}") from None
    if "@" in _authority(text.split("://", 1)[1]) and "@" not in parts.netloc:
        # A raw '?' or '#' in the password cut the user part off: urlsplit would
        # take the start of the password for a host or a port, so say nothing more.
        raise ConfigurationError(
            f"ambiguous URL {redact_url(text)}: percent-encode '?', '#', '/' and '@' "
            "in the user name and password (%3F, %23, %2F, %40)"
        )
    try:
        port = parts.port
    except ValueError as error:
        raise ConfigurationError(f"malformed URL {redact_url(text)}: {error}") from None
    database = unquote(parts.path.lstrip("/")) or None
    return Target(
        kind=kind,
        url=text,
        host=unquote(parts.hostname) if parts.hostname else None,
        port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        database=database,
        params=tuple(parse_qsl(parts.query)),
    )


def redact_url(url: str) -> str:
    """Hide the password of a URL, and of a ``password=`` query parameter.

    >>> redact_url("mysql://u:p%40ss@h/db?password=x&ssl=1")
    'mysql://u:***@h/db?password=***&ssl=1'
    >>> redact_url("postgresql:///db")
    'postgresql:///db'
    >>> redact_url("app:s3cret@db/shop")
    'app:***@db/shop'
    """
    head, sep, rest = url.partition("://")
    if not sep:
        # A URL without its scheme still shows its password.
        head, rest = "", url
    rest = _SECRET_PARAM.sub(r"\1***", rest)
    # Like libpq, the user part ends at the last '@' before the first '/', so a
    # raw '@', '?', '#' or ':' inside the password stays hidden.
    at = _authority(rest).rfind("@")
    if at != -1:
        user, colon, _ = rest[:at].partition(":")
        if colon:
            rest = f"{user}:***{rest[at:]}"
    return f"{head}{sep}{rest}"


def _authority(after_scheme: str) -> str:
    """The URL after ``scheme://`` up to the first ``/``: user, password, host and port."""
    return after_scheme.partition("/")[0]
