"""Network peers for tests: brokers that accept connections and never answer, or close them."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SilentPeer:
    """A TCP peer on a free port that accepts connections and never answers: a publish to it
    hangs until the client's own timeouts give up."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)  # a blocked accept() would outlive close()
        self.port: int = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                self.accepted.append(self.server.accept()[0])
            except TimeoutError:
                continue

    def close(self) -> None:
        """Stop accepting and close every connection taken."""
        self._closed.set()
        self._thread.join()
        self.server.close()
        for connection in self.accepted:
            connection.close()


class ClosingPeer:
    """A TCP peer on a free port that accepts every connection and closes it at once,
    counting them."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:  # closed
                return
            self.connections += 1
            connection.close()


@contextmanager
def closing_peer() -> Iterator[ClosingPeer]:
    """A :class:`ClosingPeer` for the block, closed after it."""
    peer = ClosingPeer()
    try:
        yield peer
    finally:
        peer.server.close()
