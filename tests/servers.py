"""Helpers for tests that start a server: a free loopback port, and waiting until it answers."""

from __future__ import annotations

import socket
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(base: str, seconds: float = 180.0) -> None:
    """Until `base`/health answers (a busy 2-core machine can take a minute to start MLflow)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no server answered at {base} within {seconds:.0f} s") from None
            time.sleep(0.5)
