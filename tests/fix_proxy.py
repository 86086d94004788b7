"""A TCP proxy whose connections a test can cut, like a network that drops them."""

from __future__ import annotations

import contextlib
import socket
import threading


class Proxy:
    """Forward 127.0.0.1:``port`` to ``host``:``target_port``; ``cut()`` drops every link,
    ``down()`` also refuses new ones until ``up()``, like a server gone away."""

    def __init__(self, host: str, target_port: int) -> None:
        self._target = (host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._links: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._up = threading.Event()
        self._up.set()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        self._listener.settimeout(0.05)  # so close() is noticed without another connection
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if not self._up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._links += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=_pump, args=(source, sink), daemon=True)
                thread.start()
                self._threads.append(thread)

    def cut(self) -> None:
        """Drop every open link at once, both ways."""
        with self._lock:
            links, self._links = self._links, []
        for sock in links:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def down(self) -> None:
        """Drop every link and refuse new ones until ``up()``."""
        self._up.clear()
        self.cut()

    def up(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._closing.set()
        self._accepting.join(5)
        self._listener.close()
        self.cut()
        for thread in self._threads:
            thread.join(5)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
