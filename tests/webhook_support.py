"""A real local HTTP server that receives webhook POSTs and answers from a script (tests of alert webhooks)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    """One request the server got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


Answer = tuple[int, dict[str, str]]


@dataclass
class HookServer:
    """What the server received; ``answer(received, number_of_earlier_requests_of_this_delivery)`` picks the
    status and headers of each answer (200 by default)."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    answer: Callable[[Received, int], Answer] = lambda _r, _n: (200, {})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def deliveries(self, delivery_id: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.headers.get("x-cctv-delivery") == delivery_id]

    def count(self) -> int:
        with self.lock:
            return len(self.received)


@contextmanager
def hook_server(answer: Callable[[Received, int], Answer] | None = None) -> Iterator[HookServer]:
    """Serve on a free loopback port in a thread for the duration of the block."""
    state = HookServer()
    if answer is not None:
        state.answer = answer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with state.lock:
                earlier = sum(r.headers.get("x-cctv-delivery") == got.headers.get("x-cctv-delivery")
                              for r in state.received)
                state.received.append(got)
            status, headers = state.answer(got, earlier)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
