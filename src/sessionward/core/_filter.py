"""Which sessions a command applies to.

Values of one field are alternatives (any may match); different fields must
all match.  An empty filter matches every client session.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ._errors import ConfigurationError
from ._session import STATES, Session, Snapshot

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOCAL = "local"


def parse_client(text: str) -> Network | str:
    """Parse a client filter: an address, a CIDR range or ``local``.

    >>> parse_client("10.0.0.0/8")
    IPv4Network('10.0.0.0/8')
    >>> parse_client("127.0.0.1")
    IPv4Network('127.0.0.1/32')
    >>> parse_client("local")
    'local'
    """
    if text.strip().lower() == LOCAL:
        return LOCAL
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ConfigurationError(
            f"not a client address or range: {text!r} (try 10.0.0.7, 10.0.0.0/8 or local)"
        ) from None


def parse_state(text: str) -> str:
    """Accept a session state, also written with dashes or underscores.

    >>> parse_state("idle-in-transaction")
    'idle in transaction'
    """
    state = re.sub(r"[-_ ]+", " ", text.strip().lower())
    if state == "idle in transaction aborted":
        state = "idle in transaction (aborted)"
    if state not in STATES:
        raise ConfigurationError(f"unknown state {text!r}; known: {', '.join(STATES)}")
    return state


#: Python spellings of the POSIX bracket classes other regex dialects (grep, PostgreSQL's
#: ``~``) know; Python's ``re`` reads ``[[:alpha:]]`` as a set of ``:``, ``a``, ``l``…
_POSIX_CLASSES = {
    "alnum": r"[^\W_]",
    "alpha": r"[^\W\d_]",
    "blank": r"[ \t]",
    "cntrl": r"[\x00-\x1f\x7f]",
    "digit": r"\d",
    "graph": r"[!-~]",
    "lower": "[a-z]",
    "print": "[ -~]",
    "punct": r"[!-/:-@\[-`{-~]",
    "space": r"\s",
    "upper": "[A-Z]",
    "word": r"\w",
    "xdigit": "[0-9a-f]",
}
_POSIX_CLASS = re.compile(r"(?<!\\)\[:(" + "|".join(_POSIX_CLASSES) + r"):\]")


def compile_query_regex(pattern: str, *, option: str = "--query") -> re.Pattern[str]:
    r"""Compile a query filter: Python ``re`` syntax, case-insensitive, matched by sessionward.

    The server never sees the pattern, so its own regex dialect does not apply: POSIX
    classes are refused with their Python spelling, as is any pattern ``re`` warns about.

    >>> compile_query_regex("^select").search("SELECT 1") is not None
    True
    >>> compile_query_regex("[[:digit:]]+")
    Traceback (most recent call last):
    ...
    sessionward.core._errors.ConfigurationError: bad --query regex ...: ... write \d instead
    """
    shown = _shown(pattern)
    posix = _POSIX_CLASS.search(pattern)
    if posix is not None:
        name = posix.group(1)
        raise ConfigurationError(
            f"bad {option} regex {shown}: [:{name}:] is a POSIX class, which Python's re "
            f"does not know; write {_POSIX_CLASSES[name]} instead"
        )
    compiled, problem = _compile(pattern)
    if problem is not None:
        raise ConfigurationError(f"bad {option} regex {shown}: {problem}")
    assert compiled is not None
    return compiled


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> tuple[re.Pattern[str] | None, str | None]:
    """The compiled pattern, or what is wrong with it; each pattern is judged once.

    Judging once keeps the warnings filter (process-wide, not thread-safe) changed only
    the first time a pattern is seen, and ``re``'s own cache untouched: ``re`` warns only
    when it compiles, and these flags are ours, so a pattern new to this function is new
    to ``re`` too.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            compiled = re.compile(pattern, re.IGNORECASE | re.DOTALL)
        except re.error as error:
            return None, str(error)
        except RecursionError:
            return None, "nested too deeply"
        except OverflowError as error:  # a repetition count past what re can hold
            return None, str(error)
    if caught:
        if not issubclass(caught[0].category, FutureWarning):
            # Python 3.10 only warns where 3.11 refuses ("global flags not at the start
            # of the expression"): refused on every version alike.
            text = str(caught[0].message)
            if text.startswith("Flags not at the start"):
                return None, "global flags not at the start of the expression"
            return None, text
        return None, (
            f"{caught[0].message} (inside [...], escape a literal [, -, &, ~ or | with a backslash)"
        )
    return compiled, None


def _shown(text: str) -> str:
    """``text`` quoted for an error line: escaped, and cut when long."""
    return repr(text) if len(text) <= 60 else repr(text[:60]) + "…"


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """A selection of sessions; names and applications accept ``*`` wildcards."""

    databases: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    applications: tuple[str, ...] = ()
    clients: tuple[Network | str, ...] = ()
    states: tuple[str, ...] = ()
    query: re.Pattern[str] | None = None
    #: Idle (in a transaction or not) for longer than this.
    idle_over_seconds: float | None = None
    #: In a transaction that began longer ago than this.
    xact_over_seconds: float | None = None
    #: Running the current statement for longer than this (active sessions only).
    query_over_seconds: float | None = None
    #: Holds a lock another session waits for.
    blocking: bool = False
    #: Waits for a lock another session holds.
    blocked: bool = False
    #: Also match server background processes and replication senders.
    include_background: bool = False

    def is_empty(self) -> bool:
        """True when the filter would select every client session."""
        return self == SessionFilter(include_background=self.include_background)

    def evolve(self, **changes: object) -> SessionFilter:
        return replace(self, **changes)  # type: ignore[arg-type]

    def matches(self, session: Session, snapshot: Snapshot) -> bool:
        if not self.include_background and not session.is_client:
            return False
        checks = (
            _any_glob(self.databases, session.database),
            _any_glob(self.users, session.user),
            _any_glob(self.applications, session.application),
            _any_client(self.clients, session.client_addr),
            not self.states or session.state in self.states,
            self.query is None or bool(session.query and self.query.search(session.query)),
            _over(session.idle_age_seconds, self.idle_over_seconds),
            _over(session.xact_age_seconds, self.xact_over_seconds),
            _over(session.running_age_seconds, self.query_over_seconds),
            not self.blocking or bool(snapshot.blocking(session.pid)),
            not self.blocked or bool(session.blocked_by),
        )
        return all(checks)

    def select(self, snapshot: Snapshot) -> tuple[Session, ...]:
        return tuple(s for s in snapshot.sessions if self.matches(s, snapshot))


def _any_glob(patterns: Iterable[str], value: str | None) -> bool:
    patterns = tuple(patterns)
    if not patterns:
        return True
    if value is None:
        return False
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _any_client(clients: tuple[Network | str, ...], addr: str | None) -> bool:
    if not clients:
        return True
    if addr is None:
        return LOCAL in clients
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ips.append(ip.ipv4_mapped)
    return any(not isinstance(net, str) and any(i in net for i in ips) for net in clients)


def _over(age: float | None, threshold: float | None) -> bool:
    if threshold is None:
        return True
    return age is not None and age > threshold
