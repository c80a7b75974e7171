"""Loopback test cameras: the sample footage served as real, looping RTSP streams on 127.0.0.1.

A small RTSP server (OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN; RTP interleaved over the RTSP TCP
connection, RFC 2326 §10.12) written in Python, fed per stream by ``ffmpeg -re -stream_loop -1 -c copy -f rtp``
over a loopback UDP socket. Each video is transcoded once (H.264 or H.265, keyframe every second, no B-frames,
no audio) into a cache folder and then served by stream copy, so serving costs almost no CPU. A new viewer is
fed from the next keyframe on, like a real camera. Like a real camera, each stream also has a smaller
sub-stream at ``<name>/sub`` (half the height, at most 360 lines, the same 1 s keyframe interval): cameras
analysed on their sub-stream and recorded on the main stream are tested against it.

Used by ``python -m pipeline serve-cameras`` (:func:`serve_forever`), by the tests and by the benchmarks::

    with TestCameraServer(videos_dir, port) as cams:
        url = cams.url("short_hamilton_clip")     # rtsp://127.0.0.1:PORT/short_hamilton_clip
        sub = cams.sub_url("short_hamilton_clip") # rtsp://127.0.0.1:PORT/short_hamilton_clip/sub
        cams.stop_stream("short_hamilton_clip")   # viewers are cut off, DESCRIBE answers 404
        cams.start_stream("short_hamilton_clip")

Also :class:`GarbageServer` (a TCP server answering random bytes) and :class:`SilentServer` (accepts, never
replies) to test broken cameras.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Self

from pipeline.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".ts")
DEFAULT_CACHE_DIR = PROJECT_ROOT / "var" / "cache" / "testcams"
_CLIENT_QUEUE = 4000  # RTP packets buffered per viewer before it is cut off as too slow


# --------------------------------------------------------------------------------------------------------------
# transcoding cache
# --------------------------------------------------------------------------------------------------------------
def find_videos(videos_dir: Path) -> dict[str, Path]:
    """Return ``{stem: path}`` of the videos in ``videos_dir`` (sorted)."""
    if not videos_dir.is_dir():
        raise FileNotFoundError(f"videos folder not found: {videos_dir}")
    return {p.stem: p for p in sorted(videos_dir.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES}


def cached_transcode(source: Path, codec: str = "h264", cache_dir: Path = DEFAULT_CACHE_DIR, max_height: int = 1080,
                     sub_stream: bool = False) -> Path:
    """Transcode ``source`` once to ``codec`` (h264/h265), 1 s GOP, no B-frames, no audio; return the cached file.

    ``sub_stream``: the camera's smaller sub-stream instead, half the height and at most 360 lines.
    """
    if codec not in ("h264", "h265"):
        raise ValueError(f"codec must be h264 or h265, got {codec!r}")
    stat = source.stat()
    key = hashlib.sha1(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{max_height}".encode()).hexdigest()[:10]
    target = cache_dir / f"{source.stem}.{key}.{codec}{'.sub' if sub_stream else ''}.mp4"
    height = "'min(360,trunc(ih/4)*2)'" if sub_stream else f"'min({max_height},ih)'"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    gop = "keyint=25:min-keyint=25:scenecut=0:bframes=0:log-level=error"
    encoder = (
        ["-c:v", "libx264", "-preset", "veryfast", "-x264-params", gop, "-bf", "0"]
        if codec == "h264"
        else ["-c:v", "libx265", "-preset", "veryfast", "-x265-params", gop, "-tag:v", "hvc1"]
    )
    logger.info("transcoding %s to %s (once; cached in %s)", source.name, codec, cache_dir)
    return ffmpeg_into(target, ["-i", str(source), "-an", "-sn", "-vf", f"fps=25,scale=-2:{height}", *encoder,
                                "-pix_fmt", "yuv420p", "-movflags", "+faststart"], f"transcoding {source}")


def ffmpeg_into(target: Path, args: list[str], what: str) -> Path:
    """Run ffmpeg with ``args`` (inputs and options) writing ``target`` through a temporary file, so that a failed
    or interrupted run never leaves a half-written ``target``; raises ``RuntimeError`` naming ``what``."""
    tmp = target.with_suffix(f".{os.getpid()}.part.mp4")
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args, str(tmp)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"{what} failed: {result.stderr.strip()[-500:]}")
    os.replace(tmp, target)
    return target


# --------------------------------------------------------------------------------------------------------------
# RTP helpers
# --------------------------------------------------------------------------------------------------------------
def is_keyframe_start(payload: bytes, codec: str) -> bool:
    """Whether this RTP payload starts an access unit a decoder can begin with (IDR / IRAP or parameter sets)."""
    if len(payload) < 3:
        return False
    if codec == "h264":
        nal = payload[0] & 0x1F
        if nal == 24:  # STAP-A
            nal = payload[3] & 0x1F if len(payload) > 3 else 0
        elif nal == 28:  # FU-A
            return bool(payload[1] & 0x80) and (payload[1] & 0x1F) in (5, 7, 8)
        return nal in (5, 7, 8)
    nal = (payload[0] >> 1) & 0x3F
    if nal == 48:  # aggregation packet
        nal = (payload[4] >> 1) & 0x3F if len(payload) > 4 else 0
    elif nal == 49:  # fragmentation unit
        return bool(payload[2] & 0x80) and (16 <= (payload[2] & 0x3F) <= 21)
    return 16 <= nal <= 21 or 32 <= nal <= 34


def _rtp_payload(packet: bytes) -> bytes:
    if len(packet) < 12:
        return b""
    csrc = packet[0] & 0x0F
    offset = 12 + 4 * csrc
    if packet[0] & 0x10 and len(packet) >= offset + 4:  # header extension
        offset += 4 + 4 * int.from_bytes(packet[offset + 2 : offset + 4], "big")
    return packet[offset:]


class _Viewer:
    """One PLAYing RTSP client: RTP packets are queued and sent by its own thread."""

    def __init__(self, conn: socket.socket, send_lock: threading.Lock, channel: int) -> None:
        self.conn = conn
        self.send_lock = send_lock
        self.channel = channel
        self.queue: queue.Queue[bytes | None] = queue.Queue(_CLIENT_QUEUE)
        self.waiting_for_key = True
        self.alive = True
        threading.Thread(target=self._send_loop, daemon=True, name="rtsp-viewer").start()

    def offer(self, packet: bytes, key: bool) -> None:
        if self.waiting_for_key and not key:
            return
        self.waiting_for_key = False
        try:
            self.queue.put_nowait(packet)
        except queue.Full:
            logger.warning("RTSP viewer too slow; disconnecting it")
            self.close()

    def _send_loop(self) -> None:
        while self.alive:
            packet = self.queue.get()
            if packet is None:
                break
            frame = b"$" + bytes([self.channel]) + len(packet).to_bytes(2, "big") + packet
            try:
                with self.send_lock:
                    self.conn.sendall(frame)
            except OSError:
                break
        self.close()

    def close(self) -> None:
        if not self.alive:
            return
        self.alive = False
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)


class _Source:
    """One stream: a looping ``ffmpeg -f rtp`` process and the viewers fed from its packets."""

    def __init__(self, name: str, media: Path, codec: str, workdir: Path) -> None:
        self.name = name
        self.media = media
        self.codec = codec
        self.sdp_path = workdir / f"{name}.{codec}.sdp"
        self.viewers: list[_Viewer] = []
        self.lock = threading.Lock()
        self.process: subprocess.Popen[bytes] | None = None
        self.sdp = ""
        self.running = False
        self._sockets: list[socket.socket] = []
        self._start_lock = threading.Lock()

    def start(self) -> None:
        with self._start_lock:  # two viewers may DESCRIBE at once: start one ffmpeg only
            if not self.running:
                self._start()

    def _start(self) -> None:
        rtp, rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtcp.bind(("127.0.0.1", 0))
        rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._sockets = [rtp, rtcp]
        self.sdp_path.unlink(missing_ok=True)
        url = f"rtp://127.0.0.1:{rtp.getsockname()[1]}?rtcpport={rtcp.getsockname()[1]}&pkt_size=1300"
        cmd = [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
            "-i", str(self.media), "-map", "0:v:0", "-c", "copy", "-f", "rtp", "-sdp_file", str(self.sdp_path), url,
        ]  # fmt: skip
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not (self.sdp_path.exists() and self.sdp_path.stat().st_size > 0):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"RTP source for {self.name} did not start")
            time.sleep(0.02)
        time.sleep(0.02)
        self.sdp = self.sdp_path.read_text()
        self.running = True
        threading.Thread(target=self._pump, args=(rtp,), daemon=True, name=f"rtp-{self.name}").start()
        threading.Thread(target=self._drain, args=(rtcp,), daemon=True, name=f"rtcp-{self.name}").start()

    def _pump(self, sock: socket.socket) -> None:
        while True:
            try:
                packet = sock.recv(65536)
            except OSError:
                return
            if not packet:
                return
            key = is_keyframe_start(_rtp_payload(packet), self.codec)
            with self.lock:
                self.viewers = [v for v in self.viewers if v.alive]
                viewers = list(self.viewers)
            for viewer in viewers:
                viewer.offer(packet, key)

    @staticmethod
    def _drain(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass

    def describe_sdp(self, base_url: str) -> str:
        """The SDP for DESCRIBE: ffmpeg's, with loopback addresses removed and control attributes added."""
        out: list[str] = []
        for line in self.sdp.splitlines():
            if line.startswith("c="):
                continue
            if line.startswith("m=video"):
                out += ["c=IN IP4 0.0.0.0", "a=control:*", "a=range:npt=0-", "m=video 0 RTP/AVP 96"]
                continue
            if line.startswith("s="):
                line = f"s={self.name}"
            out.append(line)
        out.append("a=control:trackID=0")
        return "\r\n".join(out) + "\r\n"

    def add_viewer(self, viewer: _Viewer) -> None:
        with self.lock:
            self.viewers.append(viewer)

    def stop(self) -> None:
        self.running = False
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets = []
        with self.lock:
            viewers, self.viewers = self.viewers, []
        for viewer in viewers:
            viewer.close()


# --------------------------------------------------------------------------------------------------------------
# the RTSP server
# --------------------------------------------------------------------------------------------------------------
class TestCameraServer:
    """Real RTSP cameras on 127.0.0.1 serving looping footage; usable as a context manager."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        videos_dir: Path,
        port: int = 8554,
        codec: str = "h264",
        names: list[str] | None = None,
        aliases: dict[str, str] | None = None,
        cache_dir: Path = DEFAULT_CACHE_DIR,
        sub_streams: bool = True,
    ) -> None:
        """Serve the videos of ``videos_dir`` (stem = path), only ``names`` if given.

        ``aliases`` maps extra stream names to video stems (e.g. ``{"cam07": "short_hamilton_clip"}``); each alias is
        an independent stream with its own source process. ``sub_streams``: also serve ``<name>/sub`` (its source
        starts on its first viewer, like the main stream's).
        """
        self.videos_dir = Path(videos_dir)
        self.port = port
        self.codec = codec
        self.cache_dir = cache_dir
        self.sub_streams = sub_streams
        videos = find_videos(self.videos_dir)
        wanted = names if names is not None else list(videos)
        unknown = [n for n in [*wanted, *(aliases or {}).values()] if n not in videos]
        if unknown:
            raise FileNotFoundError(f"no video named {unknown} in {self.videos_dir}")
        self.streams: dict[str, str] = {n: n for n in wanted} | dict(aliases or {})
        self._videos = videos
        self._workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"testcams-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._sources: dict[str, _Source] = {}
        self._stopped: set[str] = set()
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    # -- public API ---------------------------------------------------------------------------------------
    def start(self) -> Self:
        """Transcode what is missing from the cache, then listen on 127.0.0.1:port."""
        self._workdir.mkdir(parents=True, exist_ok=True)
        stems = set(self.streams.values())
        media = {stem: cached_transcode(self._videos[stem], self.codec, self.cache_dir) for stem in stems}
        subs = {stem: cached_transcode(self._videos[stem], self.codec, self.cache_dir, sub_stream=True)
                for stem in stems} if self.sub_streams else {}  # fmt: skip
        for name, stem in self.streams.items():
            self._sources[name] = _Source(name, media[stem], self.codec, self._workdir)
            if stem in subs:
                self._sources[f"{name}/sub"] = _Source(f"{name}.sub", subs[stem], self.codec, self._workdir)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept_loop, daemon=True, name="rtsp-accept").start()
        logger.info("RTSP test cameras on rtsp://127.0.0.1:%d/ : %s", self.port, ", ".join(sorted(self.streams)))
        return self

    def url(self, name: str) -> str:
        """The RTSP URL of stream ``name``."""
        if name not in self.streams:
            raise KeyError(f"no stream named {name!r}")
        return f"rtsp://127.0.0.1:{self.port}/{name}"

    def sub_url(self, name: str) -> str:
        """The RTSP URL of stream ``name``'s smaller sub-stream."""
        if not self.sub_streams:
            raise KeyError("this server serves no sub-streams")
        return f"{self.url(name)}/sub"

    def stop_stream(self, name: str) -> None:
        """Kill one stream like a camera losing power: viewers are cut off, new requests get 404."""
        with self._lock:
            self._stopped.add(name)
            sources = [self._sources[name], *([self._sources[f"{name}/sub"]] if f"{name}/sub" in self._sources else [])]
        for source in sources:
            source.stop()

    def start_stream(self, name: str) -> None:
        """Bring a stream stopped by :meth:`stop_stream` back."""
        with self._lock:
            self._stopped.discard(name)

    def stop(self) -> None:
        """Stop listening, cut every viewer and kill every source process."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for source in self._sources.values():
            source.stop()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for path in self._workdir.glob("*"):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self._workdir.rmdir()

    def source_pids(self) -> list[int]:
        """PIDs of the running ffmpeg source processes (for CPU accounting in benchmarks)."""
        return [s.process.pid for s in self._sources.values() if s.process is not None]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- protocol -----------------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while self._listener is not None:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections.add(conn)
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True, name="rtsp-conn").start()

    def _source_for(self, url: str) -> _Source | None:
        path = url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url.lstrip("/")
        parts = path.split("?", 1)[0].split("/")
        name = parts[0]
        key = f"{name}/sub" if len(parts) > 1 and parts[1] == "sub" else name
        with self._lock:
            if name in self._stopped or key not in self._sources:
                return None
            source = self._sources[key]
        if not source.running:
            source.start()
        return source

    def _serve_connection(self, conn: socket.socket) -> None:
        send_lock = threading.Lock()
        reader = conn.makefile("rb")
        session = uuid.uuid4().hex[:12]
        source: _Source | None = None
        viewer: _Viewer | None = None
        channel = 0
        try:
            while True:
                request = _read_request(reader)
                if request is None:
                    break
                method, url, headers = request
                cseq = headers.get("cseq", "0")
                status, extra, body = "200 OK", {}, ""
                if method == "OPTIONS":
                    extra["Public"] = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
                elif method == "DESCRIBE":
                    try:
                        source = self._source_for(url)
                    except RuntimeError:
                        logger.exception("cannot start stream for %s", url)
                        source = None
                    if source is None:
                        status = "404 Not Found"
                    else:
                        base = url.rstrip("/") + "/"
                        body = source.describe_sdp(base)
                        extra.update({"Content-Base": base, "Content-Type": "application/sdp"})
                elif method == "SETUP":
                    transport = headers.get("transport", "")
                    if "TCP" not in transport.upper():
                        status = "461 Unsupported Transport"
                    else:
                        for part in transport.split(";"):
                            if part.strip().startswith("interleaved="):
                                channel = int(part.split("=", 1)[1].split("-")[0])
                        extra["Transport"] = f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1}"
                        extra["Session"] = f"{session};timeout=60"
                elif method == "PLAY":
                    if source is None or not source.running:
                        status = "454 Session Not Found"
                    else:
                        extra.update({"Session": session, "Range": "npt=0.000-"})
                elif method in ("GET_PARAMETER", "SET_PARAMETER"):
                    extra["Session"] = session
                elif method == "TEARDOWN":
                    _send_response(conn, send_lock, "200 OK", cseq, {"Session": session}, "")
                    break
                else:
                    status = "405 Method Not Allowed"
                _send_response(conn, send_lock, status, cseq, extra, body)
                if method == "PLAY" and status.startswith("200") and source is not None and viewer is None:
                    viewer = _Viewer(conn, send_lock, channel)
                    source.add_viewer(viewer)
        except (OSError, ValueError) as exc:
            logger.debug("RTSP connection ended: %s", exc)
        finally:
            if viewer is not None:
                viewer.close()
            with self._lock:
                self._connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()


def _read_request(reader: BinaryIO) -> tuple[str, str, dict[str, str]] | None:
    """Read one RTSP request, skipping interleaved binary data ($) sent by the client (RTCP reports)."""
    while True:
        first = reader.read(1)
        if not first:
            return None
        if first == b"$":
            header = reader.read(3)
            if len(header) < 3:
                return None
            reader.read(int.from_bytes(header[1:3], "big"))
            continue
        if first in b"\r\n":
            continue
        line = first + reader.readline(4096)
        break
    parts = line.decode("latin-1").strip().split()
    if len(parts) < 3:
        raise ValueError(f"bad RTSP request line {line[:80]!r}")
    headers: dict[str, str] = {}
    while True:
        raw = reader.readline(4096)
        if not raw or raw in (b"\r\n", b"\n"):
            break
        key, _, value = raw.decode("latin-1").partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if length:
        reader.read(length)
    return parts[0].upper(), parts[1], headers


def _send_response(conn: socket.socket, lock: threading.Lock, status: str, cseq: str, extra: dict[str, str], body: str) -> None:
    lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}", "Server: cctv-testcams", *(f"{k}: {v}" for k, v in extra.items())]
    payload = body.encode()
    if payload:
        lines.append(f"Content-Length: {len(payload)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
    with lock:
        conn.sendall(data)


# --------------------------------------------------------------------------------------------------------------
# broken cameras
# --------------------------------------------------------------------------------------------------------------
class _TcpTestServer:
    __test__ = False

    def __init__(self, port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._running = True
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        """An RTSP URL pointing at this server."""
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def _accept(self) -> None:
        while self._running:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        """Default: never answer."""

    def stop(self) -> None:
        """Close the listener and every connection."""
        self._running = False
        for sock in [self._sock, *self._conns]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SilentServer(_TcpTestServer):
    """Accepts TCP connections and never replies (a camera that hangs)."""


class GarbageServer(_TcpTestServer):
    """Answers every connection with random bytes (a camera sending garbage)."""

    def _handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while self._running:
                conn.sendall(os.urandom(16384))
                time.sleep(0.05)


# --------------------------------------------------------------------------------------------------------------
# CLI entry
# --------------------------------------------------------------------------------------------------------------
def serve_forever(videos_dir: Path, port: int = 8554, codec: str = "h264") -> int:
    """Serve every video of ``videos_dir`` on rtsp://127.0.0.1:port/<stem> until SIGINT/SIGTERM; return 0."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = TestCameraServer(videos_dir, port, codec=codec).start()
    except (OSError, RuntimeError) as exc:
        hint = " (another program listens there: stop it or choose another --port)" \
            if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE else ""
        logger.error("cannot serve test cameras on 127.0.0.1:%d from %s: %s%s", port, videos_dir, exc, hint)
        return 1
    for name in sorted(server.streams):
        logger.info("serving %s (sub-stream %s)", server.url(name), server.sub_url(name))
    try:
        stop.wait()
    finally:
        server.stop()
    return 0
