"""Origins: which service, host, process, holder and code line a session belongs to.

A client names its sessions in two places the protocol already carries, so
tagging costs no round trip:

* ``application_name`` at connect (PostgreSQL): ``service[pid]@host``, at most
  63 bytes (:func:`application_name_for`);
* a comment in the sqlcommenter format appended to each statement of a
  checkout: ``/*sw_code='app.py%3A12',sw_pid='42'*/`` (:func:`encode_comment`,
  :func:`with_comment`).

:func:`parse_origin` reads both back from what a server shows.  Both are
untrusted client text: parsing never raises, caps every value and keeps
foreign sqlcommenter keys (``route``, ``traceparent``, ...) in ``extra``.

>>> origin = Origin(service="billing", host="web-1", pid=4242, code="reports/daily.py:88")
>>> application_name_for("billing", 4242, "web-1")
'billing[4242]@web-1'
>>> comment = encode_comment(origin)
>>> comment
"/*sw_code='reports%2Fdaily.py%3A88',sw_host='web-1',sw_pid='4242',sw_service='billing'*/"
>>> with_comment("SELECT 1;", comment) == "SELECT 1 " + comment + ";"
True
>>> parse_origin("billing[4242]@web-1", "SELECT 1 " + comment) == origin
True
>>> parse_origin("psql", "SELECT 1") is None
True
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote

__all__ = [
    "MAX_APPLICATION_NAME_BYTES",
    "Origin",
    "application_name_for",
    "encode_comment",
    "parse_origin",
    "with_comment",
]

#: PostgreSQL keeps ``NAMEDATALEN - 1`` bytes of ``application_name``.
MAX_APPLICATION_NAME_BYTES = 63
#: Longest value kept from a parsed origin, in characters.
MAX_VALUE_CHARS = 256
#: Longest key kept from a parsed comment, in characters.
MAX_KEY_CHARS = 64
#: Most foreign keys kept from one comment.
MAX_EXTRA_KEYS = 32
#: How much of the end of a statement is searched for a comment, in characters.
_SCAN_CHARS = 16384
#: How many ``*/`` are tried, from the last, before giving up.
_MAX_COMMENTS_TRIED = 16

#: Our comment keys and the ``Origin`` field each fills.
_OUR_KEYS = {
    "sw_service": "service",
    "sw_host": "host",
    "sw_pid": "pid",
    "sw_holder": "holder",
    "sw_code": "code",
}
_MAX_PID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Origin:
    """Who holds a session, as the client said: all parts optional.

    ``extra`` holds foreign sqlcommenter keys (``route``, ``controller``,
    ``framework``, ``action``, ``traceparent``, ``db_driver``...); it is
    read-only and compares like a dict.
    """

    service: str | None = None
    host: str | None = None
    pid: int | None = None
    #: The thread or asyncio task that holds the connection.
    holder: str | None = None
    #: The code line that took the connection: ``"path:line"``.
    code: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", types.MappingProxyType(dict(self.extra)))

    def __hash__(self) -> int:
        items = tuple(sorted(self.extra.items()))
        return hash((self.service, self.host, self.pid, self.holder, self.code, items))

    def __reduce__(self) -> tuple[Any, ...]:
        # A mapping proxy does not pickle; the reaper may hand sessions to a fork.
        fields = (self.service, self.host, self.pid, self.holder, self.code, dict(self.extra))
        return (Origin, fields)

    def as_dict(self) -> dict[str, Any]:
        """Return the origin as JSON-ready values, leaving out what is unknown."""
        out: dict[str, Any] = {}
        for name in ("service", "host", "pid", "holder", "code"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.extra:
            out["extra"] = dict(sorted(self.extra.items()))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Origin:
        """Build an origin from :meth:`as_dict` output."""
        extra = data.get("extra") or {}
        return cls(
            service=data.get("service"),
            host=data.get("host"),
            pid=data.get("pid"),
            holder=data.get("holder"),
            code=data.get("code"),
            extra={str(k): str(v) for k, v in extra.items()},
        )

    @property
    def compact(self) -> str:
        """Return the origin as a person reads it: ``billing web-1[4242] Thread-3 a.py:8``.

        Not escaped: whoever prints it escapes it.

        >>> Origin(service="billing", host="web-1", pid=4242, holder="Thread-3").compact
        'billing web-1[4242] Thread-3'
        >>> Origin(extra={"route": "/pay", "controller": "pay"}).compact
        'controller=pay route=/pay'
        """
        parts: list[str] = []
        if self.service is not None:
            parts.append(self.service)
        where = self.host or ""
        if self.pid is not None:
            where += f"[{self.pid}]"
        if where:
            parts.append(where)
        if self.holder is not None:
            parts.append(self.holder)
        if self.code is not None:
            parts.append(self.code)
        if not parts:
            parts = [f"{k}={v}" for k, v in sorted(self.extra.items()) if k != "traceparent"]
        return " ".join(parts)


def _cut_utf8(text: str, max_bytes: int) -> str:
    """Return the longest prefix of ``text`` within ``max_bytes`` UTF-8 bytes."""
    if max_bytes <= 0:
        return ""
    # A lone surrogate (from a badly decoded argv) becomes "?", not an error.
    data = text.encode("utf-8", errors="replace")
    return data[:max_bytes].decode("utf-8", errors="ignore")


def application_name_for(service: str, pid: int, host: str) -> str:
    """Return ``service[pid]@host`` cut to 63 UTF-8 bytes: the host first, then the service.

    >>> application_name_for("billing", 4242, "web-1.example.com")
    'billing[4242]@web-1.example.com'
    >>> name = application_name_for("s" * 40, 4242, "h" * 40)
    >>> name, len(name)
    ('ssssssssssssssssssssssssssssssssssssssss[4242]@hhhhhhhhhhhhhhhh', 63)
    """
    middle = f"[{pid}]@"
    room = MAX_APPLICATION_NAME_BYTES - len(middle.encode("utf-8"))
    service = _cut_utf8(service, room)
    host = _cut_utf8(host, room - len(service.encode("utf-8")))
    return f"{service}{middle}{host}"


def _quote(text: str) -> str:
    return quote(text, safe="", errors="replace").replace("'", "\\'")


def _pairs(origin: Origin, *, drop: Iterable[str]) -> dict[str, str]:
    dropped = set(drop)
    pairs = {str(k): str(v) for k, v in origin.extra.items()}
    for key, name in _OUR_KEYS.items():
        value = getattr(origin, name)
        if value is not None and key not in dropped:
            pairs[key] = str(value)
    return pairs


def encode_comment(origin: Origin, max_bytes: int = 512) -> str:
    """Return the sqlcommenter comment naming ``origin``, at most ``max_bytes`` bytes.

    Over the cap, ``sw_code`` is left out, then ``sw_holder``; ``""`` when
    nothing fits.

    >>> encode_comment(Origin(holder="t", code="a.py:1"), max_bytes=20)
    "/*sw_holder='t'*/"
    >>> encode_comment(Origin(service="s" * 600))
    ''
    """
    for drop in ((), ("sw_code",), ("sw_code", "sw_holder")):
        pairs = _pairs(origin, drop=drop)
        if not pairs:
            return ""
        body = ",".join(f"{_quote(k)}='{_quote(v)}'" for k, v in sorted(pairs.items()))
        comment = f"/*{body}*/"
        if len(comment) <= max_bytes:  # quoted: ASCII only
            return comment
    return ""


def with_comment(statement: str, comment: str) -> str:
    """Append ``comment`` to ``statement``, keeping a trailing ``;`` last.

    A statement that already holds a comment (``/*`` or ``--``) is returned
    unchanged, as the sqlcommenter spec asks.

    >>> with_comment("SELECT 1", "/*a='b'*/")
    "SELECT 1 /*a='b'*/"
    >>> with_comment("SELECT 1 -- note", "/*a='b'*/")
    'SELECT 1 -- note'
    """
    if not comment or "/*" in statement or "--" in statement:
        return statement
    body = statement.rstrip()
    if body.endswith(";"):
        return f"{body[:-1].rstrip()} {comment};"
    return f"{statement} {comment}"


_APPLICATION_NAME = re.compile(
    r"(?P<service>.*)\[(?P<pid>[0-9]{1,10})\](?P<sep>[@:])(?P<rest>.*)", re.S
)
_PAIR = re.compile(r"\s*([^\s=,'*/]{1,200})\s*=\s*'((?:[^'\\]|\\.)*)'\s*(,|$)", re.S)
_BACKSLASH = re.compile(r"\\(.)", re.S)


def _clean(text: str) -> str | None:
    text = text[:MAX_VALUE_CHARS]
    return text or None


def _pid(text: str) -> int | None:
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    value = int(text)
    return value if 0 < value <= _MAX_PID else None


def _decode(text: str) -> str:
    return unquote(_BACKSLASH.sub(r"\1", text), errors="replace")


def _parse_comment_body(body: str) -> dict[str, str] | None:
    """Return the pairs of one sqlcommenter comment body, or ``None`` if it is not one."""
    body = body.strip()
    if not body:
        return None
    pairs: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        match = _PAIR.match(body, pos)
        if match is None:
            return None
        key = _decode(match.group(1))[:MAX_KEY_CHARS]
        pairs[key] = _decode(match.group(2))[:MAX_VALUE_CHARS]
        pos = match.end()
        if match.group(3) == "":
            break
    if pos < len(body) or not pairs:
        return None
    return pairs


def _last_comment(query: str) -> dict[str, str] | None:
    text = query[-_SCAN_CHARS:]
    end = len(text)
    for _ in range(_MAX_COMMENTS_TRIED):
        close = text.rfind("*/", 0, end)
        if close < 0:
            return None
        start = text.rfind("/*", 0, close)
        if start < 0:
            return None
        pairs = _parse_comment_body(text[start + 2 : close])
        if pairs is not None:
            return pairs
        end = close
    return None


def _from_application_name(name: str) -> dict[str, Any]:
    # PostgreSQL keeps 63 bytes; anything much longer did not come from there.
    match = _APPLICATION_NAME.fullmatch(name[:MAX_VALUE_CHARS])
    if match is None:
        return {}
    pid = _pid(match.group("pid"))
    if pid is None:
        return {}
    fields: dict[str, Any] = {"service": _clean(match.group("service")), "pid": pid}
    # ``service[pid]@host`` is ours; ``program[pid]:thread`` is the older Django form.
    fields["host" if match.group("sep") == "@" else "holder"] = _clean(match.group("rest"))
    return fields


def parse_origin(application_name: str | None, query: str | None) -> Origin | None:
    """Read an origin from ``application_name`` and the last sqlcommenter comment in ``query``.

    Comment values win over the application name.  Never raises; ``None``
    when neither says anything.  Pooled sessions repeat the same few names and
    statements, and an ``Origin`` is immutable, so each pair is read once: a
    snapshot of a thousand sessions mostly looks its origins up.

    >>> parse_origin("app[7]:Thread-2", None)
    Origin(service='app', host=None, pid=7, holder='Thread-2', code=None, extra=mappingproxy({}))
    >>> parse_origin(None, "SELECT 1 /*route='%2Fpay',traceparent='00-ab-cd-01'*/").extra
    mappingproxy({'route': '/pay', 'traceparent': '00-ab-cd-01'})
    """
    if (application_name is None or isinstance(application_name, str)) and (
        query is None or isinstance(query, str)
    ):
        # Only a name's head and a statement's tail are read: the key is no longer.
        return _read_origin_once(
            None if application_name is None else application_name[:MAX_VALUE_CHARS],
            None if query is None else query[-_SCAN_CHARS:],
        )
    return _read_origin(application_name, query)


def _read_origin(application_name: str | None, query: str | None) -> Origin | None:
    fields: dict[str, Any] = {}
    if isinstance(application_name, str):
        fields.update(_from_application_name(application_name))
    pairs = _last_comment(query) if isinstance(query, str) else None
    extra: dict[str, str] = {}
    for key, value in (pairs or {}).items():
        name = _OUR_KEYS.get(key)
        if name == "pid":
            pid = _pid(value)
            if pid is not None:
                fields["pid"] = pid
        elif name is not None:
            if value:
                fields[name] = value
        elif len(extra) < MAX_EXTRA_KEYS and key:
            extra[key] = value
    fields = {k: v for k, v in fields.items() if v is not None}
    if not fields and not extra:
        return None
    return Origin(**fields, extra=extra)


#: Distinct (name head, statement tail) pairs remembered: 16 MB if every tail were
#: 16 KB long, a few hundred KB for usual statements.
_ORIGINS_REMEMBERED = 1024
_read_origin_once = lru_cache(maxsize=_ORIGINS_REMEMBERED)(_read_origin)
