"""The internal segment server of a worker host: its own recording segments, to the other hosts of the cluster.

Segments stay on the host that recorded them (the index says which, :mod:`pipeline.recording.index`); the API's
exports and playback on another host fetch them from here (:mod:`pipeline.recording.locate`).

- ``GET /internal/segments/<camera>/<date>/<hour>/<file>.mkv`` (and ``HEAD``): the file, streamed;
- ``GET /internal/health``: ``{"host": ...}``, to tell a host that is down from a missing file.

Every request must carry ``Authorization: Bearer <CCTV_INTERNAL_TOKEN>`` (compared in constant time); the token is
never part of a URL. Paths are checked before anything is opened: a plain relative path (no NUL, backslash, empty,
``.`` or ``..`` part, no hidden folder such as ``.incoming``), a ``.mkv`` file, resolved (symlinks followed) inside
``<recordings>/<camera>/``; anything else is 404, whatever the reason. The server runs in a thread of the worker
role (or of ``pipeline run`` with ``CCTV_INTERNAL_TOKEN`` set) and registers its base URL in Redis
(``cctv:segment-servers``: host -> ``CCTV_INTERNAL_URL``, default ``http://<host name>:<port>``) every
:data:`REGISTER_EVERY_S`. Bind it to the cluster's private network (``CCTV_INTERNAL_LISTEN``), not the internet.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import shutil
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pipeline.recording.index import plain_segment_path, register_host
from pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)

SEGMENT_ROUTE = "/internal/segments/"
HEALTH_ROUTE = "/internal/health"
REGISTER_EVERY_S = 30.0
CHUNK = 1 << 20


def resolve_segment(recordings_dir: Path, relpath: str) -> Path | None:
    """The file a segment path names, or None unless it is a plain ``.mkv`` inside ``<recordings>/<camera>/``."""
    if not plain_segment_path(relpath):
        return None
    parts = relpath.split("/")
    root = (recordings_dir / parts[0]).resolve()
    path = Path(os.path.realpath(recordings_dir / relpath))
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


class _Handler(BaseHTTPRequestHandler):
    server: SegmentServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(send_body=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("segment server %s: %s", self.client_address[0], format % args)

    def _reply(self, code: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if code == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        self.wfile.write(data)

    def _serve(self, send_body: bool) -> None:
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {self.server.token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            self._reply(HTTPStatus.UNAUTHORIZED, {"detail": "authentication required"})
            return
        parts = urlsplit(self.path)
        if parts.path == HEALTH_ROUTE:
            self._reply(HTTPStatus.OK, {"host": self.server.host_name})
            return
        if not parts.path.startswith(SEGMENT_ROUTE) or parts.query:
            self._reply(HTTPStatus.NOT_FOUND, {"detail": "not found"})
            return
        path = resolve_segment(self.server.recordings_dir, unquote(parts.path[len(SEGMENT_ROUTE):]))
        if path is None:
            self._reply(HTTPStatus.NOT_FOUND, {"detail": "not found"})
            return
        try:
            fh = path.open("rb")
        except OSError:
            self._reply(HTTPStatus.NOT_FOUND, {"detail": "not found"})
            return
        with fh:
            size = os.fstat(fh.fileno()).st_size
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "video/x-matroska")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if send_body:
                shutil.copyfileobj(fh, self.wfile, CHUNK)


class SegmentServer(ThreadingHTTPServer):
    """HTTP server of one host's segments (see the module docstring)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], recordings_dir: Path, token: str, host_name: str) -> None:
        if len(token) < 16:
            raise ValueError("CCTV_INTERNAL_TOKEN must have at least 16 characters")
        self.recordings_dir = Path(recordings_dir).resolve()
        self.token = token
        self.host_name = host_name
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        """The port it listens on (useful with port 0)."""
        return int(self.server_address[1])


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); a clear error otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"CCTV_INTERNAL_LISTEN {text!r} is not host:port (e.g. 10.0.0.5:9110)")
    return host.strip("[]") or "0.0.0.0", int(port)


def advertised_url(settings: Settings, server: SegmentServer) -> str:
    """The base URL other hosts use: ``CCTV_INTERNAL_URL``, else the listen address (or host name) and port."""
    if settings.internal_url:
        return settings.internal_url.rstrip("/")
    host = str(server.server_address[0])
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    return f"http://{host}:{server.port}"


def start_segment_server(client: Any, settings: Settings | None = None,
                         stop_event: threading.Event | Any = None) -> SegmentServer | None:
    """Start the server in daemon threads (serving, and registering its URL in Redis); None when
    ``CCTV_INTERNAL_TOKEN`` is unset (a one-host deployment needs none)."""
    settings = settings or get_settings()
    if not settings.internal_token:
        return None
    server = SegmentServer(parse_listen(settings.internal_listen), settings.recordings_dir, settings.internal_token,
                           settings.host_name)
    url = advertised_url(settings, server)
    threading.Thread(target=server.serve_forever, name="segment-server", daemon=True).start()

    def register() -> None:
        while stop_event is None or not stop_event.is_set():
            try:
                register_host(client, settings.host_name, url)
            except Exception as exc:  # noqa: BLE001 - Redis away: try again later, keep serving
                logger.warning("cannot register the segment server in Redis yet: %s", exc)
            time.sleep(REGISTER_EVERY_S)
        server.shutdown()

    threading.Thread(target=register, name="segment-server-register", daemon=True).start()
    logger.info("segment server of host %s on %s (advertised as %s)", settings.host_name,
                settings.internal_listen, url)
    return server


def run_segment_server(stop_event: Any) -> None:
    """Process entry (a child of ``pipeline run``): serve until ``stop_event`` is set."""
    import signal

    from pipeline.store.connection import redis_client

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    client = redis_client(socket_timeout=5, socket_connect_timeout=5)
    server = start_segment_server(client, stop_event=stop_event)
    if server is None:
        return
    while not stop_event.is_set():
        time.sleep(0.5)
    server.shutdown()
