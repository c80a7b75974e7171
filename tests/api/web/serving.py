"""The API under a real uvicorn server in a thread, for the browser tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

START_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(app: Any, name: str, join_timeout_s: float = 20.0) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port (WebSocket pings and permessage-deflate off, as
    pipeline.service serves it) in a daemon thread named ``name``; yields its base URL once it accepts connections
    and stops it on exit."""
    import uvicorn

    from pipeline.service import API_SERVER_OPTIONS

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           ws_ping_interval=None, **API_SERVER_OPTIONS))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"uvicorn ({name}) did not start within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=join_timeout_s)
