"""The socket look and the argument checks, without a server."""

from __future__ import annotations

import socket

import pytest

from sessionward.core import ConfigurationError
from sessionward.integrations.django._fresh import Backoff
from sessionward.integrations.django._liveness import Liveness, liveness, socket_liveness


class Raw:
    """A driver connection as far as ``liveness`` looks: ``fileno()`` and ``closed``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()


@pytest.fixture
def pair():
    ours, server = socket.socketpair()
    yield ours, server
    ours.close()
    server.close()


def test_a_quiet_socket_is_quiet(pair):
    ours, _ = pair
    assert liveness(Raw(ours)) is Liveness.QUIET


def test_unasked_data_is_a_suspicion(pair):
    ours, server = pair
    server.sendall(b"E")  # what PostgreSQL sends before it closes the session
    assert liveness(Raw(ours)) is Liveness.READABLE


def test_a_peer_that_hung_up_is_seen(pair):
    ours, server = pair
    server.close()
    assert liveness(Raw(ours)) is Liveness.READABLE


def test_what_the_driver_knows_wins(pair):
    ours, _ = pair
    raw = Raw(ours)
    raw.closed = True
    assert liveness(raw) is Liveness.CLOSED


def test_no_socket_means_unknown():
    class PyMySQLLike:
        open = True

    assert liveness(PyMySQLLike()) is Liveness.UNKNOWN


def test_a_closed_descriptor_is_closed():
    ours, server = socket.socketpair()
    fd = ours.fileno()
    ours.close()
    server.close()
    assert socket_liveness(fd) in (Liveness.CLOSED, Liveness.READABLE)


def test_backoff_grows_to_its_cap():
    backoff = Backoff()
    delays = [backoff.delay_seconds() for _ in range(12)]
    assert delays[0] <= Backoff.FIRST_SECONDS
    assert max(delays) <= Backoff.MAX_SECONDS
    assert delays[-1] >= Backoff.MAX_SECONDS * (1 - Backoff.JITTER)


def test_bad_arguments_are_refused():
    django = pytest.importorskip("django")
    assert django
    from sessionward.django import fresh_connections

    with pytest.raises(ConfigurationError, match="count >= 0"):
        fresh_connections(retry=-1)
    with pytest.raises(ConfigurationError, match="decorator"), fresh_connections(retry=2):
        pass
