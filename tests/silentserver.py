"""A server that never answers, to prove that nothing is downloaded."""

from __future__ import annotations

import socket


class SilentServer:
    """A local TCP port that accepts connections and never answers: a download attempt would
    connect here (and hang); tests assert that nothing ever connected."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.socket.setblocking(False)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/nothing.git"

    def connections(self) -> int:
        """How many connections arrived since the last call."""
        count = 0
        while True:
            try:
                self.socket.accept()[0].close()
            except BlockingIOError:
                return count
            count += 1
