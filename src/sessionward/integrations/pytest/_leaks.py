"""``sessionward_no_leaks``: fail a test that leaves more server sessions open than it found.

Only sessions opened by this process count.  A TCP client session is this
process's when the address and port the server reports are the local end of
one of this process's sockets; a Unix-socket (``local``) session cannot be
traced to a process, so those of the watched user are counted instead.
sessionward's own session is never listed, so it never counts.
"""

from __future__ import annotations

import getpass
import ipaddress
import re

from ..._control import SessionControl, connect
from ...core import Session, format_age, parse_target
from ._sockets import Endpoint, own_tcp_endpoints


class LeakGuard:
    """Counts this process's server sessions before and after a test."""

    def __init__(self, url: str) -> None:
        self.url = url
        target = parse_target(url)
        #: Whose Unix-socket sessions count, since they cannot be traced to a process.
        self.local_user = target.user or getpass.getuser()
        self._control: SessionControl | None = None
        self.before: tuple[Session, ...] | None = None

    @property
    def started(self) -> bool:
        return self.before is not None

    def start(self) -> None:
        """Record this process's sessions now, keeping one connection for the check."""
        self._control = connect(self.url)
        self.before = self.own_sessions()

    def own_sessions(self) -> tuple[Session, ...]:
        """This process's client sessions on the server (Unix-socket ones: the user's)."""
        if self._control is None:
            self._control = connect(self.url)
        snapshot = self._control.snapshot()
        # Read after the snapshot: a socket closed meanwhile is no longer ours.
        endpoints = own_tcp_endpoints()
        ports = {port for _, port in endpoints}
        return tuple(
            s
            for s in snapshot.sessions
            if s.is_client
            and (
                _is_ours(s, endpoints, ports)
                if s.client_addr is not None
                else s.user == self.local_user
            )
        )

    def leaked(self) -> tuple[Session, ...]:
        """The sessions opened since ``start`` when there are more than then, else ``()``."""
        assert self.before is not None, "start() first"
        now = self.own_sessions()
        if len(now) <= len(self.before):
            return ()
        before = {s.pid for s in self.before}
        return tuple(s for s in now if s.pid not in before)

    def report(self, leaked: tuple[Session, ...]) -> str:
        assert self.before is not None
        noun = "session" if len(leaked) == 1 else "sessions"
        lines = [
            f"sessionward_no_leaks: the test left {len(leaked)} more server {noun} open than it "
            f"began with ({len(self.before)} before, {len(self.before) + len(leaked)} after):"
        ]
        lines.extend(f"  {describe(s)}" for s in leaked)
        return "\n".join(lines)

    def close(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None


def describe(session: Session) -> str:
    """One line: pid, application, state, client and last query."""
    query = re.sub(r"\s+", " ", session.query or "").strip()
    if len(query) > 200:
        query = query[:199] + "…"
    idle = format_age(session.idle_age_seconds)
    state = (session.state or "-") + (f" {idle}" if idle else "")
    return (
        f"pid {session.pid}  application {session.application or '-'}  state {state}  "
        f"database {session.database or '-'}  client {session.client}  "
        f"last query: {query or '-'}"
    )


def _is_ours(session: Session, endpoints: frozenset[Endpoint], ports: set[int]) -> bool:
    if session.client_port is None or session.client_port not in ports:
        return False
    try:
        ip = ipaddress.ip_address(session.client_addr or "")
    except ValueError:
        # MariaDB without skip_name_resolve reports a host name: the port must do.
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (str(ip), session.client_port) in endpoints
