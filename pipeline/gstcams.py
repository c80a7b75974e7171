"""Independent test cameras: GStreamer's RTSP server with Digest authentication at vendor-style paths.

The project's own loopback server (:mod:`pipeline.testcams`) accepts anyone; this one is a different RTSP
implementation (``gst-rtsp-server``, from Debian's ``gir1.2-gst-rtsp-server-1.0`` and ``python3-gi``) that
demands Digest authentication like a real IP camera and serves the sample footage at Hikvision-style paths::

    with GstCameraServer(videos_dir, users={"admin": "Adm!n@2024#x"}) as cam:
        cam.url("admin", "${CAM_PW}")      # rtsp://admin:${CAM_PW}@127.0.0.1:PORT/Streaming/Channels/101
        cam.restart()                       # the camera reboots: viewers cut off, back on the same port
    GstCameraServer(..., protocols="udp")   # a camera offering RTP over UDP only (TCP SETUP gets 461)

The server runs as a subprocess of the **system** Python (PyGObject is a Debian package, not in the virtual
environment): ``pipeline/gstcams_server.py``. Its settings, passwords included, travel in its environment, not on
its command line. Each mount serves a clip (transcoded once by :func:`pipeline.testcams.cached_transcode`, 1 s
GOP, then repeated by stream copy so one connection streams for minutes), each viewer from the start, in real
time. :func:`gst_rtsp_server_missing` says why the server cannot run here (for a test skip), or ``None``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from pipeline.processes import die_with_parent
from pipeline.testcams import DEFAULT_CACHE_DIR, cached_transcode, ffmpeg_into, find_videos

logger = logging.getLogger(__name__)

SYSTEM_PYTHON = os.environ.get("CCTV_GST_PYTHON", "/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("gstcams_server.py")
MAIN_STREAM = "/Streaming/Channels/101"
SUB_STREAM = "/Streaming/Channels/102"
START_TIMEOUT_S = 60.0  # a first run builds GStreamer's plugin registry; a loaded CI machine is slow
_PROBE = """
import gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [e for e in ("filesrc", "qtdemux", "h264parse", "h265parse", "rtph264pay", "rtph265pay")
           if Gst.ElementFactory.find(e) is None]
assert not missing, "GStreamer elements missing: " + ", ".join(missing)
"""


def gst_rtsp_server_missing(python: str = SYSTEM_PYTHON) -> str | None:
    """``None`` if ``python`` can run GStreamer's RTSP server with the elements the mounts need; else why not."""
    if not Path(python).is_file():
        return f"{python} not found (GStreamer's Python bindings come with the system Python: python3-gi)"
    try:
        result = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False,
                                env=_server_env({}))  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"{python} took more than 120 s to load GStreamer"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no error output"])[-1]
        return (f"GStreamer's RTSP server is not usable from {python} ({last}); install gir1.2-gst-rtsp-server-1.0, "
                "python3-gi and gstreamer1.0-plugins-{base,good,bad}: bash scripts/install.sh")  # fmt: skip
    return None


def looped_media(source: Path, codec: str, loops: int = 30, cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """``source`` transcoded once (:func:`cached_transcode`) and repeated ``loops`` times by stream copy (cached)."""
    clip = cached_transcode(source, codec, cache_dir)
    target = clip.with_name(f"{clip.stem}.x{loops}.mp4")
    if target.exists():
        return target
    return ffmpeg_into(target, ["-stream_loop", str(loops - 1), "-i", str(clip), "-map", "0:v:0", "-c", "copy",
                                "-movflags", "+faststart"], f"looping {clip}")


def _server_env(config: dict[str, object]) -> dict[str, str]:
    """The server's environment: ours without the virtual environment's Python settings, plus its config."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    if config:
        env["GSTCAMS_CONFIG"] = json.dumps(config)
    return env


class GstCameraServer:
    """A gst-rtsp-server process with Digest users and mounts on 127.0.0.1; a context manager."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        videos_dir: Path,
        users: dict[str, str],
        mounts: dict[str, tuple[str, str]] | None = None,
        protocols: str = "tcp+udp",
        port: int = 0,
        loops: int = 30,
        cache_dir: Path = DEFAULT_CACHE_DIR,
        python: str = SYSTEM_PYTHON,
    ) -> None:
        """``users`` maps user names to passwords (Digest); ``mounts`` maps paths to ``(video stem, codec)``
        (default: ``short_hamilton_clip`` in H.264 at :data:`MAIN_STREAM`); ``protocols``: ``tcp``, ``udp`` or
        ``tcp+udp``; ``port`` 0 takes a free one (kept across :meth:`restart`)."""
        if protocols not in ("tcp", "udp", "tcp+udp", "udp+tcp"):
            raise ValueError(f"protocols must be tcp, udp or tcp+udp, got {protocols!r}")
        self.videos_dir = Path(videos_dir)
        self.users = dict(users)
        self.mounts = dict(mounts or {MAIN_STREAM: ("short_hamilton_clip", "h264")})
        self.protocols = protocols
        self.port = port
        self.loops = loops
        self.cache_dir = cache_dir
        self.python = python
        self.process: subprocess.Popen[bytes] | None = None
        self._media: dict[str, tuple[Path, str]] = {}
        fd, log_path = tempfile.mkstemp(prefix="gstcams-", suffix=".log")
        os.close(fd)
        self._log = Path(log_path)

    def start(self) -> Self:
        """Prepare the media (cached), start the server and wait until it listens."""
        if not self._media:
            videos = find_videos(self.videos_dir)
            for path, (stem, codec) in self.mounts.items():
                if stem not in videos:
                    raise FileNotFoundError(f"no video named {stem!r} in {self.videos_dir}")
                self._media[path] = (looped_media(videos[stem], codec, self.loops, self.cache_dir), codec)
        config = {
            "port": self.port,
            "users": [[user, password] for user, password in self.users.items()],
            "protocols": self.protocols,
            "mounts": {path: {"file": str(media), "codec": codec} for path, (media, codec) in self._media.items()},
        }
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # a port just released by restart() may take a moment to bind again
            with self._log.open("ab") as log:
                self.process = subprocess.Popen(
                    [self.python, str(SERVER_SCRIPT)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                    env=_server_env(config), preexec_fn=die_with_parent,
                )  # fmt: skip
            port = self._wait_ready(deadline)
            if port is not None:
                break
            self._terminate()
            if time.monotonic() > deadline:
                raise RuntimeError(f"gst-rtsp-server did not start: {self.log_tail()}")
            time.sleep(0.5)
        self.port = port
        logger.info("gst-rtsp-server (Digest) on rtsp://127.0.0.1:%d: %s", self.port, ", ".join(self.mounts))
        return self

    def _wait_ready(self, deadline: float) -> int | None:
        assert self.process is not None and self.process.stdout is not None
        line = b""
        while time.monotonic() < deadline and self.process.poll() is None:
            readable, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if readable:
                chunk = os.read(self.process.stdout.fileno(), 256)
                if not chunk:
                    break
                line += chunk
                if line.startswith(b"READY ") and line.endswith(b"\n"):
                    return int(line.split()[1])
        return None

    def url(self, user: str | None = None, password: str | None = None, path: str = MAIN_STREAM) -> str:
        """An RTSP URL of ``path``; ``user`` and ``password`` are put in as given (e.g. ``${CAM_PW}``)."""
        userinfo = "" if user is None else (user if password is None else f"{user}:{password}") + "@"
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL): every viewer is cut off."""
        self._terminate()

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, start again on the same port (a camera rebooting)."""
        self._terminate()
        time.sleep(down_s)
        self.start()

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's stderr (GStreamer warnings), for error messages."""
        try:
            return self._log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _terminate(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            self._log.unlink()
