"""A loopback port for tests that need one nothing listens on, or one to hand a server."""

from __future__ import annotations

import socket


def unused_port() -> int:
    """A port the kernel just handed out and took back: nothing listens on it now (a
    server told to bind it is very unlikely to lose it to another process meanwhile)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
