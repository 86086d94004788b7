"""Which TCP endpoints this process holds: how a server session is traced to its client.

A server reports each client session's address and port; a session belongs to
this process when that is the local end of one of this process's sockets.  On
Linux the sockets come from ``/proc/self/fd`` and ``/proc/self/net/tcp*`` (the
standard library is enough); elsewhere from ``psutil`` when it is installed.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
from pathlib import Path

from ...core import ConfigurationError

Endpoint = tuple[str, int]

_PROC = Path("/proc/self")


def own_tcp_endpoints() -> frozenset[Endpoint]:
    """The local (address, port) of every TCP socket this process has open."""
    endpoints = endpoints_from_proc(_PROC)
    if endpoints is not None:
        return endpoints
    endpoints = endpoints_from_psutil()
    if endpoints is not None:
        return endpoints
    raise ConfigurationError(
        "cannot see this process's sockets: sessionward_no_leaks needs Linux (/proc) "
        "or psutil (pip install psutil)"
    )


def endpoints_from_proc(proc: Path) -> frozenset[Endpoint] | None:
    """Read the sockets of the process at ``proc`` (``/proc/<pid>``); ``None`` without /proc."""
    try:
        fds = os.listdir(proc / "fd")
    except OSError:
        return None
    inodes: set[str] = set()
    for fd in fds:
        try:
            link = os.readlink(proc / "fd" / fd)
        except OSError:  # closed since the listing
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    endpoints: set[Endpoint] = set()
    for table in ("tcp", "tcp6"):
        try:
            text = (proc / "net" / table).read_text()
        except OSError:
            continue
        endpoints.update(parse_proc_net_tcp(text, inodes))
    return frozenset(endpoints)


def parse_proc_net_tcp(text: str, inodes: set[str]) -> set[Endpoint]:
    """The local endpoints of the sockets in ``inodes`` listed by ``/proc/net/tcp[6]``.

    >>> table = (
    ...     "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
    ...     "   uid  timeout inode\\n"
    ...     "   0: 0100007F:D431 0100007F:1538 01 00000000:00000000 00:00000000 00000000"
    ...     "  1000        0 4242 1 0000000000000000 20 4 30 10 -1\\n"
    ... )
    >>> parse_proc_net_tcp(table, {"4242"})
    {('127.0.0.1', 54321)}
    >>> parse_proc_net_tcp(table, {"7"})
    set()
    """
    endpoints: set[Endpoint] = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[9] not in inodes:
            continue
        address, _, port = fields[1].partition(":")
        endpoints.add((_decode_address(address), int(port, 16)))
    return endpoints


def _decode_address(text: str) -> str:
    """A ``/proc/net/tcp`` address: 32-bit words in host (little-endian) byte order.

    >>> _decode_address("0100007F")
    '127.0.0.1'
    >>> _decode_address("0000000000000000FFFF00000100007F")
    '127.0.0.1'
    >>> _decode_address("00000000000000000000000001000000")
    '::1'
    """
    raw = b"".join(bytes.fromhex(text[i : i + 8])[::-1] for i in range(0, len(text), 8))
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    ip = ipaddress.IPv6Address(raw)
    return str(ip.ipv4_mapped or ip)


def endpoints_from_psutil() -> frozenset[Endpoint] | None:
    """The same from ``psutil`` (macOS, BSD, Windows); ``None`` when it is not installed."""
    try:
        psutil = importlib.import_module("psutil")
    except ImportError:
        return None
    endpoints: set[Endpoint] = set()
    for connection in psutil.Process().net_connections(kind="tcp"):
        if connection.laddr:
            ip = ipaddress.ip_address(connection.laddr[0])
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            endpoints.add((str(ip), int(connection.laddr[1])))
    return frozenset(endpoints)
