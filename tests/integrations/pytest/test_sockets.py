"""Tracing sockets to this process: /proc on Linux, psutil elsewhere.  No server needed."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionward.integrations.pytest._sockets import (
    endpoints_from_proc,
    endpoints_from_psutil,
    own_tcp_endpoints,
)


@pytest.fixture(params=[socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def connected(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """A connected TCP client socket of this process; yields its local (address, port)."""
    family = request.param
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    try:
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.bind((host, 0))
    except OSError as error:
        pytest.skip(f"no {host} here: {error}")
    listener.listen(1)
    client = socket.create_connection(listener.getsockname()[:2])
    accepted, _ = listener.accept()
    try:
        yield client.getsockname()[0], client.getsockname()[1]
    finally:
        for sock in (client, accepted, listener):
            sock.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")
def test_proc_lists_this_process_sockets(connected):
    assert connected in endpoints_from_proc(Path("/proc/self"))
    assert connected in own_tcp_endpoints()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")
def test_a_closed_socket_is_no_longer_listed():
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    endpoint = client.getsockname()
    client.close()
    listener.close()
    assert endpoint not in endpoints_from_proc(Path("/proc/self"))


def test_psutil_agrees(connected):
    pytest.importorskip("psutil")
    assert connected in endpoints_from_psutil()


def test_no_proc_is_none(tmp_path):
    assert endpoints_from_proc(tmp_path / "missing") is None
