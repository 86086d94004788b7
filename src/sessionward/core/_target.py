"""Connection targets: which server to talk to, parsed from a URL.

Parsing is strict on purpose.  libpq ends the user part at the *first* '@',
Python's ``urlsplit`` at the *last*, and both stop at a raw '/' or '?': a
password holding one of those characters is read differently by each, and the
leftover is taken for a host name (looked up in DNS) or printed in an error.
So a URL whose parts could be read two ways is refused before anything
connects, and the error says what is wrong without quoting the URL.  A parsed
target is handed to drivers rebuilt from its parts (``to_url``), every part
percent-encoded, so they read exactly what was parsed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, quote_plus, unquote

from ._errors import ConfigurationError

Kind = Literal["postgresql", "mysql"]

_SCHEMES: dict[str, Kind] = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}
#: What a scheme may look like to be named in an error (RFC 3986, plus a leading '+').
_SCHEME_TEXT = re.compile(r"[A-Za-z0-9+.-]{1,40}")
#: Any name containing one of these holds a secret, however it is spelled:
#: libpq's ``password`` and ``sslpassword``, PyMySQL's ``passwd`` and
#: ``ssl_key_password``, MySQL Connector's ``password1``…``password3``, tokens.
#: ``passfile`` (a path) is caught too; hiding it costs nothing.
_SECRET_WORDS = ("pass", "pwd", "secret", "token")
#: A query parameter name, once percent-decoded.
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
#: Characters a host (or a comma-separated list of hosts) may hold as written.
_HOST_TEXT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=%-]*")
#: One host name (or IPv4 address) once decoded; international names included.
_HOST_NAME = re.compile(r"[\w.-]*")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%25[\w.~-]+)?")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODE_HINT = (
    "percent-encode '@', '/', '?', '#' and '%' in the user name and password "
    "(%40, %2F, %3F, %23, %25)"
)
_MAX_PORT = 65535
#: Secrets shorter than this are scrubbed only where they are not part of a word.
_SHORT_SECRET = 4
#: Loose patterns for ``redact_url``, which also reads free text.
_URL_TOKEN = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)(\S*)")
#: A value ends at '&', '#', a space, or a ':' ending a clause ("…?password=x: refused").
_PARAM = re.compile(r"([?&])([^=&#?\s]*)=((?:[^&#\s:]|:(?!\s|$))*)")


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed server URL.  ``repr`` and ``redacted`` never show a password."""

    kind: Kind
    url: str = field(repr=False)
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        params = tuple((key, "***" if is_secret_key(key) else value) for key, value in self.params)
        return (
            f"Target(kind={self.kind!r}, host={self.host!r}, port={self.port!r}, "
            f"user={self.user!r}, database={self.database!r}, params={params!r})"
        )

    def secrets(self) -> tuple[str, ...]:
        """Every password of this target, as parsed and as written in the URL."""
        found = [self.password or ""]
        found += [value for key, value in self.params if is_secret_key(key)]
        after_scheme = self.url.partition("://")[2]
        userinfo, at, _ = _authority(after_scheme).rpartition("@")
        if at:
            found.append(userinfo.partition(":")[2])
        for match in _PARAM.finditer(after_scheme):
            if is_secret_key(match.group(2)):
                found.append(match.group(3))
        return tuple(sorted({s for s in found if s}, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """Replace every password of this target found in ``text`` with ``***``.

        Drivers may quote the URL they were given, or the password itself, so
        each password is hidden as parsed, as written and in its encodings.

        >>> parse_target("postgresql://u:p%2Fw%20d@h/db").scrub('bad "p/w d", "p%2Fw%20d"')
        'bad "***", "***"'
        """
        forms = {
            form
            for secret in self.secrets()
            for form in (
                secret,
                quote(secret, safe=""),
                quote(secret),
                quote_plus(secret),
                repr(secret)[1:-1],
                secret.encode("unicode_escape").decode("ascii"),
            )
        }
        for form in sorted(forms, key=len, reverse=True):
            if len(form) >= _SHORT_SECRET:
                text = text.replace(form, "***")
            else:
                # A password of a letter or two is masked where it stands alone,
                # not inside every word that happens to contain it.
                text = re.sub(rf"(?<![^\W_]){re.escape(form)}(?![^\W_])", "***", text)
        return text

    def redacted(self) -> str:
        """The URL as it is safe to print: rebuilt from its parts, secrets as ``***``.

        >>> parse_target("postgresql://app:s3cret@db:6432/shop").redacted()
        'postgresql://app:***@db:6432/shop'
        >>> parse_target("postgresql://app@db/shop?pass%77ord=s3cret").redacted()
        'postgresql://app@db/shop?password=***'
        """
        return self._build(scheme=self.url.partition("://")[0].lower(), hide=True)

    def to_url(self) -> str:
        """The URL with its password, rebuilt from the parsed parts for a driver.

        Every part is percent-encoded, so libpq reads the same user, password,
        host and database as sessionward did; the scheme loses any ``+driver``.

        >>> parse_target("POSTGRESQL+psycopg://app:p%40ss@db/shop").to_url()
        'postgresql://app:p%40ss@db/shop'
        """
        return self._build(scheme=self.kind, hide=False)

    def _build(self, *, scheme: str, hide: bool) -> str:
        userinfo = ""
        if self.user is not None or self.password is not None:
            userinfo = quote(self.user or "", safe="")
            if self.password is not None:
                userinfo += ":" + ("***" if hide else quote(self.password, safe=""))
            userinfo += "@"
        host = self.host or ""
        host = f"[{host}]" if ":" in host else quote(host, safe=",")
        port = "" if self.port is None else f":{self.port}"
        path = "" if self.database is None else "/" + quote(self.database, safe="")
        query = "&".join(
            quote(key, safe="")
            + "="
            + ("***" if hide and is_secret_key(key) else quote(value, safe="/:," if hide else ""))
            for key, value in self.params
        )
        if query and not path:
            path = "/"
        return f"{scheme}://{userinfo}{host}{port}{path}{'?' if query else ''}{query}"


def is_secret_key(key: str) -> bool:
    """Whether a URL query parameter named ``key`` carries a secret.

    Any case, any spelling libpq or a MySQL driver would decode to a password.

    >>> [is_secret_key(k) for k in ("password", "PassWD", "pass%77ord", "sslmode")]
    [True, True, True, False]
    """
    name = key
    for _ in range(3):  # a name encoded twice is still that name to a lenient reader
        name = unquote(name)
    name = name.lower()
    return any(word in name for word in _SECRET_WORDS)


def parse_target(url: str) -> Target:
    """Parse ``postgresql://``, ``postgres://``, ``mysql://`` or ``mariadb://`` URLs.

    A SQLAlchemy driver suffix such as ``postgresql+psycopg://`` is accepted, and
    the scheme in any case.  Errors describe what is wrong and never quote the URL.

    >>> t = parse_target("mariadb://root@127.0.0.1:3306/test")
    >>> t.kind, t.host, t.port, t.user, t.database
    ('mysql', '127.0.0.1', 3306, 'root', 'test')
    >>> parse_target("oracle://x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: unsupported URL scheme 'oracle' ...
    >>> parse_target("postgresql://u:a@b@db/x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: the host part of the URL contains '@': ...
    """
    text = url.strip()
    if "://" not in text:
        # Not echoed: it may be a key=value connection string holding a password.
        raise ConfigurationError("not a server URL (expected postgresql://… or mysql://…)")
    scheme_text, _, rest = text.partition("://")
    scheme = scheme_text.lower().split("+", 1)[0]
    kind = _SCHEMES.get(scheme)
    if kind is None:
        shown = f" {scheme!r}" if _SCHEME_TEXT.fullmatch(scheme_text) else ""
        raise ConfigurationError(
            f"unsupported URL scheme{shown} (use postgresql://, mysql:// or mariadb://)"
        )
    _refuse_ambiguous(rest)
    end = min((i for i in (rest.find("/"), rest.find("?")) if i != -1), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hostport = authority.rpartition("@")
    user = password = None
    if at:
        user_text, colon, password_text = userinfo.partition(":")
        user = _decode(user_text, "the user name") or None
        password = _decode(password_text, "the password") if colon else None
    host, port = _host_and_port(hostport)
    path, _, query = tail.partition("?")
    database = (_decode(path[1:], "the database name") or None) if path else None
    return Target(
        kind=kind,
        url=text,
        host=host,
        port=port,
        user=user,
        password=password,
        database=database,
        params=_params(query),
    )


def _refuse_ambiguous(rest: str) -> None:
    """Refuse characters that libpq and other readers split differently."""
    if any(c.isspace() or not c.isprintable() for c in rest):
        raise ConfigurationError(
            "the URL contains a space or control character: percent-encode it (a space is %20)"
        )
    if "#" in rest:
        raise ConfigurationError(f"the URL contains a raw '#': {_ENCODE_HINT}")
    end = min((i for i in (rest.find("/"), rest.find("?")) if i != -1), default=len(rest))
    if rest.count("@", 0, end) > 1:
        raise ConfigurationError(
            "the host part of the URL contains '@': percent-encode '@' in the user name "
            "and password as %40"
        )
    if "@" in rest[end:]:
        raise ConfigurationError(
            "the URL has an '@' after its host part: percent-encode '/' and '?' in the "
            "password as %2F and %3F, and any other '@' as %40"
        )
    if _BAD_PERCENT.search(rest):
        raise ConfigurationError(
            "the URL has a '%' not followed by two hex digits: percent-encode '%' as %25"
        )


def _decode(text: str, what: str) -> str:
    try:
        decoded = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{what} in the URL is not UTF-8 once percent-decoded") from None
    if "\x00" in decoded:
        raise ConfigurationError(f"{what} in the URL contains %00, which no server accepts")
    return decoded


def _host_and_port(hostport: str) -> tuple[str | None, int | None]:
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not (bracket and _IPV6.fullmatch(host)) or (after and not after.startswith(":")):
            raise ConfigurationError("the URL has a malformed [IPv6] host")
        port_text = after[1:]
    else:
        host, _, port_text = hostport.partition(":")
        # International names may be written as they are; the IDNA check below decides.
        if not _HOST_TEXT.fullmatch("".join(c for c in host if c.isascii() or not c.isalnum())):
            raise ConfigurationError(
                "the host part of the URL holds characters no host name has: " + _ENCODE_HINT
            )
        host = _decode(host, "the host")
        for name in host.split(",") if not host.startswith("/") else ():
            try:
                # What the resolver will do with it: a name it cannot encode
                # ('a..b', a label over 63 characters) is no host name.
                name.encode("idna")
                valid = _HOST_NAME.fullmatch(name) is not None
            except UnicodeError:
                valid = False
            if not valid:
                raise ConfigurationError(
                    "the host in the URL is not a valid host name (letters, digits, '.', '-'; "
                    "a socket directory starts with %2F)"
                )
    if port_text and not (port_text.isascii() and port_text.isdigit()):
        raise ConfigurationError(
            f"the port in the URL is not a number from 1 to {_MAX_PORT} (several hosts go in "
            "?host=h1,h2&port=p1,p2)"
        )
    port = int(port_text) if port_text else None
    if port is not None and not 0 < port <= _MAX_PORT:
        raise ConfigurationError(f"port {port} in the URL is out of range (1 to {_MAX_PORT})")
    return host or None, port


def _params(query: str) -> tuple[tuple[str, str], ...]:
    params = []
    for pair in query.split("&"):
        if not pair:
            continue
        key_text, equals, value_text = pair.partition("=")
        key = _decode(key_text, "a query parameter name")
        if not equals or not _KEY.fullmatch(key):
            raise ConfigurationError(
                "the URL query is not name=value pairs joined by '&': "
                "percent-encode '&' and '=' inside values (%26, %3D)"
            )
        params.append((key, _decode(value_text, f"the value of {key}")))
    return tuple(params)


def redact_url(url: str) -> str:
    """Hide what looks like a password in ``url``, or in a line of text quoting URLs.

    Lenient, for messages: a URL that parses is best shown as ``Target.redacted``.
    The user part of each URL ends at the last '@' before a space, so a raw
    '@', '/', '?' or '#' in a password is hidden with the rest of it.

    >>> redact_url("mysql://u:p%40ss@h/db?password=x&ssl=1")
    'mysql://u:***@h/db?password=***&ssl=1'
    >>> redact_url("postgresql://h/db?pass%77ord=x")
    'postgresql://h/db?pass%77ord=***'
    >>> redact_url("to postgresql://u:a/b@c@h/db: no, nor mysql://v:w@h")
    'to postgresql://u:***@h/db: no, nor mysql://v:***@h'
    >>> redact_url("postgresql:///db")
    'postgresql:///db'
    >>> redact_url("app:s3cret@db/shop")
    'app:***@db/shop'
    >>> redact_url("--dsn: the URL has an '@' after its host")
    "--dsn: the URL has an '@' after its host"
    """
    text = _PARAM.sub(_masked_param, url)
    if "://" not in text:
        # A bare URL without its scheme still shows its password; a line of
        # prose with a ':' and an '@' in it is no URL.
        return text if any(c.isspace() for c in text) else _mask_userinfo(text)
    return _URL_TOKEN.sub(lambda m: m.group(1) + _mask_userinfo(m.group(2)), text)


def _mask_userinfo(after_scheme: str) -> str:
    at = after_scheme.rfind("@")
    user, colon, _ = after_scheme[:at].partition(":")
    return f"{user}:***{after_scheme[at:]}" if at != -1 and colon else after_scheme


def _masked_param(match: re.Match[str]) -> str:
    separator, key, value = match.groups()
    return f"{separator}{key}={'***' if is_secret_key(key) else value}"


def _authority(after_scheme: str) -> str:
    """The URL after ``scheme://`` up to the first ``/``: user, password, host and port."""
    return after_scheme.partition("/")[0]
