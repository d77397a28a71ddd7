"""A TCP server on 127.0.0.1 for the network-escape tests: it records every connection (and
what the first read brings), so a test can assert that a sandboxed candidate never got through."""
from __future__ import annotations

import socket
import threading


class Listener:
    """`with Listener() as srv:` -- `srv.port` to hand the candidate, `srv.seen` afterwards:
    one (peer address, first bytes received) per connection."""

    def __init__(self) -> None:
        self.seen: list[tuple[tuple, bytes]] = []
        self._stop = threading.Event()
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(8)
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self._server.accept()
            except OSError:
                continue
            conn.settimeout(1)
            try:
                data = conn.recv(200)
            except OSError:
                data = b""
            self.seen.append((addr, data))
            conn.close()

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()
