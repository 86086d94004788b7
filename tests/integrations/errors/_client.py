"""What a live driver connection really uses on the client side: its socket options."""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

_TCP_OPTIONS = {
    "keepalive_idle": "TCP_KEEPIDLE",
    "keepalive_interval": "TCP_KEEPINTVL",
    "keepalive_count": "TCP_KEEPCNT",
    "tcp_user_timeout_ms": "TCP_USER_TIMEOUT",
}


def client_settings(dbapi_connection: Any) -> dict[str, Any]:
    """Keepalive and TCP user timeout as the kernel holds them, and libpq's connect_timeout."""
    settings: dict[str, Any] = {}
    if hasattr(dbapi_connection, "get_dsn_parameters"):  # psycopg2
        settings["connect_timeout"] = dbapi_connection.get_dsn_parameters().get("connect_timeout")
    elif hasattr(dbapi_connection, "info"):  # psycopg 3
        settings["connect_timeout"] = dbapi_connection.info.get_parameters().get("connect_timeout")
    if not sys.platform.startswith("linux"):
        return settings
    sock = socket.socket(fileno=os.dup(dbapi_connection.fileno()))
    try:
        settings["keepalive"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        for name, option in _TCP_OPTIONS.items():
            settings[name] = sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, option))
    finally:
        sock.close()
    return settings
