"""A multi-host connect that found no server of the kind asked for.

libpq (and psycopg 3, which tries each host itself) refuses every host of
``host=a,b`` whose session does not fit ``target_session_attrs``, and then
reports the whole attempt with no SQLSTATE.  During a failover that is a
moment (the old primary is gone, the replica not yet promoted); when it lasts,
the caller gets one ``ConnectionFailed`` saying that no host was writable, and
why each host was passed over.

libpq words these refusals in ``fe-connect.c``; there is no code to go by, so
the phrases are matched, as ``_classify`` does for libpq's other login errors.
"""

from __future__ import annotations

import re

from ._errors import ConnectionFailed

#: libpq's reason for passing a host over, and what was wanted instead.
_REFUSALS: tuple[tuple[str, str], ...] = (
    ("session is read-only", "writable (target_session_attrs=read-write)"),
    ("server is in hot standby mode", "writable (target_session_attrs=primary)"),
    ("could not make a writable connection", "writable (target_session_attrs=read-write)"),
    ("session is not read-only", "read-only (target_session_attrs=read-only)"),
    ("server is not in hot standby mode", "a standby (target_session_attrs=standby)"),
)

#: One host's failure as libpq words it (psycopg 3 repeats these lines in its summary).
_HOST_LINE = re.compile(
    r'connection to server (?:at "(?P<host>[^"]*)"(?: \([^)]*\))?, port (?P<port>\d+)'
    r'|on socket "(?P<socket>[^"]*)") failed: (?P<reason>[^\n]*)'
)


def no_host_as_wanted(text: str) -> ConnectionFailed | None:
    """The error for a connect that passed over every host for its session kind, else None.

    >>> message = (
    ...     'connection to server at "10.0.0.1", port 5432 failed: Connection refused\\n'
    ...     '\\tIs the server running on that host and accepting TCP/IP connections?\\n'
    ...     'connection to server at "10.0.0.2", port 5433 failed: session is read-only\\n'
    ... )
    >>> print(str(no_host_as_wanted(message)).replace("; ", ";\\n"))
    no host was writable (target_session_attrs=read-write): 10.0.0.1:5432 (Connection refused);
    10.0.0.2:5433 (session is read-only)
    >>> no_host_as_wanted("connection to server at \\"db\\", port 5432 failed: Connection refused")
    """
    wanted = next((kind for phrase, kind in _REFUSALS if phrase in text), None)
    if wanted is None:
        return None
    reasons: dict[str, str] = {}
    for found in _HOST_LINE.finditer(text):
        where = found["socket"] or f"{found['host']}:{found['port']}"
        reasons.pop(where, None)  # psycopg 3 names the last host first, then all in order
        reasons[where] = found["reason"].strip()
    tried = "; ".join(f"{where} ({reason})" for where, reason in reasons.items())
    first = text.strip().splitlines()[0] if text.strip() else ""
    return ConnectionFailed(f"no host was {wanted}: {tried or first}")
