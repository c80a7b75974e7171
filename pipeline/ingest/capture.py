"""One camera's capture loop: an ``ffmpeg`` subprocess over RTSP/TCP, decoded frames to the frame bus, recording.

Why an ffmpeg subprocess (``python -m benchmarks.ingest``, 720p H.264 at 25 fps, 5 fps analysed, shared 2-core
machine): CPU per decoded frame is the same libavcodec work whichever way it is driven (ffmpeg subprocess
4.1 ms including the Python worker's share of ~10-15 %, PyAV 3.4-4.2 ms, OpenCV 3.3-3.7 ms over three runs; the
spread between runs is as large as the differences). What decides is the rest: a corrupt stream can crash or hang
ffmpeg, never the worker; decoding runs outside the GIL; ffmpeg samples and scales (``-vf fps=N,scale``) so
Python only touches the analysed frames as ready BGR bytes; and the same process records the main stream by
stream copy through a second output, which costs ~0 extra CPU (0.103 vs 0.103 cores) on the same RTSP connection,
whereas a separate recorder costs another connection, 0.005 cores and ~115 MB RSS per camera.

Credentials: the URL's ``${VAR}`` references are expanded (percent-encoded into the user-info) only here, just
before ffmpeg starts, and never reach ffmpeg's command line, which ``ps`` shows to every user of the host: a URL
with secrets is handed over in a one-line ``ffconcat`` script through an inherited pipe (``-f concat -i pipe:N``,
the only way ffmpeg 5 reads an input URL from somewhere other than its arguments), with the RTSP options as
``option`` lines; ffmpeg's environment is stripped of the secret variables too. Every error text goes through
:func:`pipeline.secrets.redact_text`. A camera that refuses the login (``401``) is reported as such and goes
``offline`` at once (retried at the longest backoff: many cameras lock an account after a few failed logins);
one that refuses RTSP over TCP (``461 Unsupported transport``) is retried over UDP, and back.

The ffmpeg command has up to two outputs:

1. recording: stream copy into segments (see :mod:`pipeline.recording.recorder`); when the camera is not recorded
   (or is recorded by a separate main-stream session) a stream-copy ``null`` output takes its place, so that
   ffmpeg's ``-progress`` ``frame=`` counts input frames (measured input fps);
2. analysis: a ``select`` that keeps at most N frames a second (and, unlike ``fps=N``, never repeats the frames of
   a camera slower than N), ``scale``, then ``rawvideo bgr24`` on stdout; the width is the camera's
   ``analysis_width`` (default ``ingest.max_width``). ``-autoscale 0`` and a ``showinfo`` filter logging each
   frame's size on stderr (written before the frame itself) let the frames follow a resolution change mid-stream
   (a camera switching profiles) with no restart and no gap in the recording: without them ffmpeg 5 scales every
   later frame to the first frame's size (stretching a 4:3 picture, or analysing a low-resolution start for good).

Inputs without timestamps (MJPEG over HTTP, raw streams: ffmpeg assumes 25 fps) are timed by the wall clock
(``-use_wallclock_as_timestamps``): the first session that lists such an input restarts at once with it.

Keyframe-only decode (camera ``decode: auto|keyframes``): before a session the stream's keyframe interval is
measured from packet flags (``ffprobe``, no decoding, same credential hiding, at most ``ingest.keyframe_probe_s``).
When it fits the analysis rate (interval <= ``keyframe_tolerance / analysis_fps``) the input gets
``-skip_frame nokey``: the decoder only decodes keyframes (one frame per GOP) and a ``select`` filter keeps at most
``analysis_fps`` of them; the recording output is stream copy and never decoded, so it is unaffected. When the
camera sends keyframes less often than ``analysis_fps`` asks for, every frame is decoded and the reason is logged
and put in the health (``decode``, ``decode_reason``). ``auto`` skips the measurement (decodes everything) when
``analysis_fps`` is so high that only keyframes closer than 0.5 s apart would fit.

:class:`CameraCapture` multiplexes stdout (frames), stderr (errors, frame size), the progress pipe and the segment
list pipe with ``select`` in one thread, watches for stalls and retries with capped exponential backoff.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.config import Camera, IngestConfig
from pipeline.processes import die_with_parent
from pipeline.recording.recorder import (
    SegmentFinalizer,
    incoming_dir,
    os_error_reason,
    probe_writable,
    recording_write_error,
    segment_output_args,
)
from pipeline.secrets import (
    MissingSecretError,
    child_environment,
    expand_url,
    looks_percent_encoded,
    redact_text,
    redact_url,
    referenced_variables,
    url_secrets,
)

logger = logging.getLogger(__name__)

# the size of each analysis frame, logged by the showinfo filter at the end of the chain just before ffmpeg writes
# the frame to stdout (the source's resolution may change mid-stream: see CameraCapture.build_command)
_SHOWINFO_SIZE = re.compile(r"^\[Parsed_showinfo_\d+ @ [^\]]*\] n:\s*\d+ .*?\bs:(\d{1,5})x(\d{1,5})\b")
_SHOWINFO = re.compile(r"^\[Parsed_showinfo_\d+ @ ")
_INPUT_FORMAT = re.compile(r"^Input #\d+, (.+?), from ")
_INPUT_VIDEO_CODEC = re.compile(r"^Stream #\d+:\d+.*?: Video: (\w+)")
_NO_VIDEO = re.compile(r"Stream map '0:v(:0)?' matches no streams")
# demuxers whose packets carry no timestamps (ffmpeg then assumes 25 fps whatever the camera sends): MJPEG over HTTP
# (multipart), raw JPEG/H.264/H.265 streams; such inputs are timed by the wall clock (-use_wallclock_as_timestamps)
_UNTIMED_FORMATS = frozenset({"mpjpeg", "mjpeg", "jpeg_pipe", "h264", "hevc", "mjpeg_2000"})
# codecs whose every frame is a keyframe: keyframe-only decode saves nothing
INTRA_CODECS = frozenset({"mjpeg", "jpeg2000", "jpegls", "ljpeg", "png", "rawvideo", "prores", "dnxhd", "mjpegb"})
_INPUT_VIDEO_SIZE = re.compile(r"^Stream #\d+:\d+.*?: Video: .*?, (\d{1,5})x(\d{1,5})\b")
MIN_ANALYSIS_SIDE = 16  # a stream smaller than this (either side) has nothing to analyse: reported, not decoded
_FAILURES_BEFORE_OFFLINE = 3
SNAPSHOT_INTERVAL_S = 5.0
SNAPSHOTS_DIRNAME = "snapshots"
FFMPEG_STOP_GRACE_S = 5.0
"""A stopping ffmpeg gets one SIGINT (:meth:`CameraCapture.interrupt_ffmpeg`: a second signal would abort the
trailer of its last segment) and this long to write that trailer and the segment list's last line; then SIGKILL."""
# every protocol an RTSP/HTTP camera may need once the URL is read from the concat script (pipe)
_PROTOCOL_WHITELIST = "pipe,file,rtsp,rtsps,rtp,srtp,tcp,udp,tls,http,https,httpproxy,crypto,data"
_AUTH_FAILED = re.compile(r"\b401 Unauthorized\b|authorization failed", re.IGNORECASE)
_FORBIDDEN = re.compile(r"\b403 Forbidden\b", re.IGNORECASE)
_TRANSPORT_REFUSED = re.compile(r"\b461 Unsupported transport\b", re.IGNORECASE)
AUTH_FAILED_MESSAGE = "401 Unauthorized: check the camera's user and password"
_MIN_PLAUSIBLE_GOP_S = 0.5  # decode auto: keyframes closer than this are not looked for
RECORDING_RETRY_INITIAL_S = 30.0  # a failed recording (disk full) is tried again after this, doubling each time
RECORDING_RETRY_MAX_S = 600.0
_PTS_JUMP_S = 5.0  # a step between decoded frames' timestamps larger than this is a clock jump, not a pause
_STDERR_NOISE = ("Input #", "Output #", "Stream #", "Stream mapping", "Metadata", "[segment", "encoder", "title", "Duration", "Press",
                 "frame=", "video:", "Exiting normally", "Side data", "cpb:")  # fmt: skip


@dataclass
class CameraState:
    """Live state of one camera in a capture worker; turned into the Redis health hash."""

    camera_id: str
    url: str
    status: str = "connecting"
    status_since: float = field(default_factory=time.time)
    last_frame_time: float = 0.0
    reconnects: int = 0
    last_error: str = ""
    last_error_time: float = 0.0
    recording: str = "off"
    recording_error: str = ""
    recording_error_time: float = 0.0
    last_segment_end: float = 0.0
    input_fps: float = 0.0
    published: int = 0
    snapshot_path: str = ""
    snapshot_time: float = 0.0
    snapshot_errors: int = 0
    snapshot_error: str = ""
    snapshot_error_time: float = 0.0
    decode: str = ""
    decode_reason: str = ""
    keyframe_interval_s: float | None = None
    analysis_size: str = ""  # "WxH" of the latest analysis frame (follows the stream's resolution)
    configured_fps: float = 0.0  # the camera's analysis_fps (0: not analysed)
    frame_times: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=64))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    changed: threading.Event | None = field(default=None, repr=False)  # set on a status change (health written now)

    def set_status(self, status: str) -> None:
        """Change the status (and its timestamp) if it differs."""
        with self.lock:
            if status != self.status:
                logger.info("camera %s: %s -> %s", self.camera_id, self.status, status)
                self.status = status
                self.status_since = time.time()
                if self.changed is not None:
                    self.changed.set()

    def set_error(self, message: str, secrets: list[str]) -> None:
        """Record an error with credentials removed."""
        with self.lock:
            self.last_error = redact_text(message, secrets)[:500]
            self.last_error_time = time.time()

    def set_recording_failed(self, reason: str) -> None:
        """Recording cannot write (``reason``: path-free, e.g. ``disk full (No space left on device)``)."""
        with self.lock:
            self.recording = "failed"
            self.recording_error = reason[:300]
            self.recording_error_time = time.time()

    def set_segment_indexed(self, end: float) -> None:
        """A segment ending at ``end`` was indexed: recording works (an earlier recording error is cleared)."""
        with self.lock:
            self.recording = "on"
            self.recording_error = ""
            self.last_segment_end = end

    def add_snapshot_error(self, message: str) -> None:
        """Count a failed write of the camera's latest snapshot (``message``: no path beyond the camera's own)."""
        with self.lock:
            self.snapshot_errors += 1
            self.snapshot_error = message[:300]
            self.snapshot_error_time = time.time()

    def analysed_fps(self, window_s: float = 5.0) -> float:
        """Frames published per second over the last ``window_s`` seconds."""
        now = time.time()
        recent = [t for t in self.frame_times if now - t <= window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-3)

    def rate_note(self) -> str:
        """Why fewer frames than ``analysis_fps`` are analysed, when the camera itself sends fewer ('' otherwise)."""
        if self.configured_fps <= 0 or self.input_fps <= 0 or self.input_fps >= 0.9 * self.configured_fps:
            return ""
        return (f"the camera sends {self.input_fps:.2f} fps, fewer than analysis_fps {self.configured_fps:g}: "
                "every frame is analysed once (none repeated)")

    def health_fields(self) -> dict[str, Any]:
        """The Redis health hash fields (see :mod:`pipeline.ingest.health`)."""
        with self.lock:
            return {
                "status": self.status,
                "status_since": f"{self.status_since:.3f}",
                "last_frame_time": f"{self.last_frame_time:.3f}",
                "input_fps": f"{self.input_fps:.2f}",
                "analysed_fps": f"{self.analysed_fps():.2f}",
                "published_frames": self.published,
                "reconnects": self.reconnects,
                "last_error": self.last_error,
                "last_error_time": f"{self.last_error_time:.3f}",
                "recording": self.recording,
                "recording_error": self.recording_error,
                "recording_error_time": f"{self.recording_error_time:.3f}",
                "last_segment_end": f"{self.last_segment_end:.3f}",
                "snapshot_path": self.snapshot_path,
                "snapshot_errors": self.snapshot_errors,
                "snapshot_error": self.snapshot_error,
                "snapshot_error_time": f"{self.snapshot_error_time:.3f}",
                "decode": self.decode,
                "decode_reason": self.decode_reason,
                "keyframe_interval_s": "" if self.keyframe_interval_s is None else f"{self.keyframe_interval_s:.3f}",
                "analysis_size": self.analysis_size,
                "analysis_rate_note": self.rate_note(),
                "url": redact_url(self.url),
                "worker_pid": os.getpid(),
            }


def _close_fds(fds: list[int]) -> None:
    """Close the file descriptors in ``fds`` and empty the list (closing twice is then harmless)."""
    while fds:
        fd = fds.pop()
        try:
            os.close(fd)
        except OSError as exc:
            logger.debug("closing fd %d: %s", fd, exc)


def choose_decode(setting: str, analysis_fps: float, keyframe_interval_s: float | None, tolerance: float,
                  measured: bool = True, codec: str | None = None) -> tuple[str, str]:
    """Pick ``keyframes`` or ``all`` for a camera's analysis decode; return ``(mode, reason)``.

    ``setting`` is the camera's ``decode``; ``keyframe_interval_s`` the measured interval between keyframes
    (``None``: not measured, or fewer than two keyframes seen); ``measured`` False when no measurement was tried;
    ``codec`` the stream's video codec when known (an all-intra codec such as MJPEG: never ``keyframes``).
    """
    needed = tolerance / analysis_fps  # the longest keyframe interval that still gives (about) analysis_fps
    if setting == "all":
        return "all", "decode: all (configured)"
    if codec in INTRA_CODECS:
        return "all", (f"every frame of a {codec} stream is a keyframe: keyframe-only decode saves nothing; "
                       "every frame decoded")  # fmt: skip
    if not measured:
        return "all", (f"analysis_fps {analysis_fps:g} needs a keyframe every {needed:.2f} s or less, closer than "
                       f"cameras send them: every frame decoded (decode: auto, not measured)")  # fmt: skip
    if keyframe_interval_s is None:
        return "all", "keyframe interval could not be measured: every frame decoded"
    if keyframe_interval_s <= needed:
        return "keyframes", (f"keyframes only: a keyframe every {keyframe_interval_s:.2f} s fits analysis_fps "
                             f"{analysis_fps:g} (<= {needed:.2f} s)")  # fmt: skip
    return "all", (f"keyframe-only decode not used: a keyframe every {keyframe_interval_s:.2f} s gives "
                   f"{1 / keyframe_interval_s:.2f} fps, fewer than analysis_fps {analysis_fps:g} asks for "
                   f"(needs <= {needed:.2f} s): every frame decoded")  # fmt: skip


def keyframe_interval(keyframe_times: list[float]) -> float | None:
    """Median interval between consecutive keyframe timestamps (``None`` with fewer than two)."""
    gaps = sorted(b - a for a, b in zip(keyframe_times, keyframe_times[1:], strict=False) if b > a)
    return gaps[len(gaps) // 2] if gaps else None


def ffmpeg_input_args(opened_url: str, script_fd: int | None, transport: str = "tcp",
                      connect_timeout_s: float = 10.0, wallclock: bool = False) -> tuple[list[str], bytes | None]:
    """ffmpeg's input options and, when ``script_fd`` is given, the ``ffconcat`` script that names the URL.

    With a script the URL (and its credentials) is read from the pipe ``script_fd``; ffmpeg's command line
    then reads ``-f concat -safe 0 -i pipe:N``, and the RTSP options move into the script as ``option`` lines.
    ``wallclock``: the input's packets carry no timestamps (MJPEG over HTTP): time them by their arrival.
    Raises ``ValueError`` for a URL that cannot be put in the script (control characters, too long).
    """
    options: list[tuple[str, str]] = []
    if opened_url.startswith(("rtsp://", "rtsps://")):
        options = [("rtsp_transport", transport), ("timeout", str(int(connect_timeout_s * 1_000_000)))]
    if wallclock:
        options.append(("use_wallclock_as_timestamps", "1"))
    if script_fd is None:
        return [arg for key, value in options for arg in (f"-{key}", value)] + ["-i", opened_url], None
    if any(ord(char) < 32 or ord(char) == 127 for char in opened_url):
        raise ValueError("the stream URL holds control characters")
    # a plain path would be taken relative to the script's own URL (pipe:N): name its protocol
    target = opened_url if "://" in opened_url else f"file:{opened_url}"
    quoted = "'" + target.replace("'", "'\\''") + "'"
    lines = ["ffconcat version 1.0", f"file {quoted}", *(f"option {key} {value}" for key, value in options)]
    script = ("\n".join(lines) + "\n").encode()
    if len(script) > 16384:  # the pipe is written before ffmpeg starts reading it
        raise ValueError("the stream URL is too long")
    args = ["-f", "concat", "-safe", "0", "-protocol_whitelist", _PROTOCOL_WHITELIST, "-i", f"pipe:{script_fd}"]
    return args, script


def untimed_input(input_format: str, codec: str, url: str) -> bool:
    """Whether an input (ffmpeg's ``Input #0, <format>`` and its first video codec) has no timestamps of its own:
    a timestamp-less demuxer (MJPEG over HTTP is ``mpjpeg``), or, behind the ``concat`` script that hides the URL
    (the demuxer is not shown then), MJPEG from anything but RTSP (whose RTP packets carry timestamps)."""
    formats = set(input_format.split(","))
    if formats & _UNTIMED_FORMATS:
        return True
    return "concat" in formats and codec == "mjpeg" and not url.lower().startswith(("rtsp://", "rtsps://", "rtp://"))


def analysis_rate_filter(fps: float) -> str:
    """A ``select`` filter that keeps the first frame of each ``1/fps`` slot of the frames' timestamps: at most
    ``fps`` frames a second, and never a repeated frame (``fps=N`` repeats frames of a camera slower than N).
    A clock that steps back selects at once (no starvation until it catches up)."""
    return (f"select='isnan(prev_selected_t)+gt(floor(t*{fps:g}),floor(prev_selected_t*{fps:g}))"
            "+lt(t,prev_selected_t)'")


def pts_jump_guard(max_step_s: float, step_s: float) -> str:
    """A ``setpts`` filter that turns a jump of the stream's timestamps (either way) of more than ``max_step_s``
    between two frames into a step of ``step_s``: later frames keep their spacing, shifted by the jump.

    Expression state (``st``/``ld``): 0 the accumulated shift, 1 the previous input timestamp. A frame without a
    timestamp passes as it is and leaves the state alone.
    """
    return (f"setpts='if(isnan(PTS),PTS,if(gt(N,0)*gt(abs(PTS-ld(1))*TB,{max_step_s:g}),"
            f"st(0,ld(0)+PTS-ld(1)-{step_s:.6g}/TB));st(1,PTS);PTS-ld(0))'")


def backoff_delay(failures: int, initial: float, maximum: float) -> float:
    """Capped exponential backoff: ``initial * 2**(failures-1)``, at most ``maximum``."""
    return min(maximum, initial * (2 ** max(0, failures - 1)))


class CameraCapture:
    """Pull one stream with ffmpeg until ``stop_event`` is set; reconnects by itself.

    ``analyse`` publishes sampled frames to ``bus`` (a :class:`~pipeline.ingest.framebus.FrameBus`); ``record``
    writes segments of this URL (the main stream) and indexes them through ``finalizer``. ``primary`` sessions
    own the camera's ``status``; a secondary (record-only session of a camera analysed on its sub-stream) only
    updates the ``recording`` field.
    """

    def __init__(
        self,
        camera: Camera,
        ingest: IngestConfig,
        state: CameraState,
        stop_event: Any,
        url: str,
        bus: Any = None,
        finalizer: SegmentFinalizer | None = None,
        recordings_dir: Path | None = None,
        primary: bool = True,
    ) -> None:
        self.camera = camera
        self.ingest = ingest
        self.state = state
        self.stop_event = stop_event
        self.url = url
        self.bus = bus
        self.finalizer = finalizer
        self.recordings_dir = recordings_dir
        self.primary = primary
        self.secrets: list[str] = url_secrets(url)  # also registered for every log line of this process
        self.transport = "tcp"  # RTSP lower transport; switched to udp (and back) when the camera answers 461
        self.auth_failed = False  # the last session ended with the camera refusing the login
        self.process: subprocess.Popen[bytes] | None = None
        self._interrupted: tuple[subprocess.Popen[bytes], float] | None = None  # the ffmpeg sent SIGINT, and when
        self._stop_lock = threading.Lock()  # the capture thread and the worker's ffmpeg-stop thread both stop it
        self.decode_mode = "all"  # "keyframes": the analysis decode gets -skip_frame nokey (see choose_decode)
        self.keyframe_interval_s: float | None = None  # measured once per capture (again after a failed probe)
        self.recording_suspended = False  # analysis-only sessions after a recording write failure (disk full)
        self.recording_failures = 0  # recording failures in a row (the backoff of the recording retries)
        self.recording_retry_at = 0.0  # monotonic time of the next recording retry while suspended
        self.restart_now = False  # the session ended to switch recording off or on: start the next one at once
        self.restart_reason = ""  # why, when not recording (logged)
        self.wallclock = False  # the input has no timestamps: time its packets by arrival (learnt from a session)
        self.video_codec: str | None = None  # the stream's video codec, from the last session's stream listing
        if bus is not None:  # (a record-only session of the same camera leaves it alone)
            state.configured_fps = camera.analysis_fps

    @property
    def records_now(self) -> bool:
        """Whether the next session writes segments (recording configured and not suspended)."""
        return self.finalizer is not None and self.recordings_dir is not None and not self.recording_suspended

    @property
    def analysis_width(self) -> int:
        """Width (and height: portrait cameras too) the analysis frames are fitted into."""
        return min(self.camera.analysis_width or self.ingest.max_width, self.ingest.max_width)

    # -- outer loop ------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Capture until stopped; never raises."""
        failures = 0
        self._recover_leftovers()
        while not self.stop_event.is_set():
            try:
                got_frames = self._session()
            except Exception as exc:  # noqa: BLE001 - a camera problem must never kill the worker
                got_frames = False
                self._fail(f"capture error: {exc}")
                logger.exception("camera %s: unexpected capture error", self.camera.id)
            if self.stop_event.is_set():
                break
            if self.restart_now:
                self._restart_at_once()
                failures = 0
                continue
            self.restart_now = False
            failures = 1 if got_frames else failures + 1
            with self.state.lock:
                self.state.reconnects += 1
            if self.primary:
                down = self.auth_failed or failures >= _FAILURES_BEFORE_OFFLINE
                self.state.set_status("offline" if down else "reconnecting")
            delay = backoff_delay(failures, self.ingest.backoff_initial_s, self.ingest.backoff_max_s)
            if self.auth_failed:  # retrying a refused login soon never helps and may lock the camera's account
                delay = self.ingest.backoff_max_s
            logger.info("camera %s: reconnecting in %.1fs (attempt %d)", self.camera.id, delay, failures)
            self.stop_event.wait(delay)
        if self.primary:
            self.state.set_status("stopped")
        self.state.recording = "off"

    def _recover_leftovers(self) -> None:
        """Index what an earlier ffmpeg left unindexed (a crash, or a recording that failed mid-segment)."""
        if self.finalizer is None:
            return
        try:
            self.finalizer.recover_unindexed()
            self.finalizer.recover_incoming()
        except OSError as exc:
            logger.warning("camera %s: cannot recover leftover segments: %s", self.camera.id, os_error_reason(exc))

    def _restart_at_once(self) -> None:
        """The session ended to switch recording off (it failed) or on again (retry): no backoff, status kept."""
        self.restart_now = False
        with self.state.lock:
            self.state.reconnects += 1
        if self.records_now:
            self._recover_leftovers()
        reason, self.restart_reason = self.restart_reason, ""
        logger.info("camera %s: restarting the capture %s", self.camera.id,
                    reason or f"{'with' if self.records_now else 'without'} recording")  # fmt: skip

    def learn_input(self, input_format: str, codec: str) -> bool:
        """A session listed its input (ffmpeg's format and first video codec): remember the codec (an all-intra one
        is never decoded keyframes-only) and whether the input needs wall-clock timestamps; True when the session
        must restart for that (once per capture: the next sessions start with it)."""
        self.video_codec = codec
        if codec in INTRA_CODECS and self.bus is not None and (self.decode_mode != "all" or self.keyframe_interval_s):
            self.keyframe_interval_s = None  # measured from guessed timestamps: meaningless
            self._choose_decode("")  # no measurement for an intra codec
        if self.wallclock or not untimed_input(input_format, codec, self.url):
            return False
        self.wallclock = True
        logger.warning("camera %s: the stream (%s, %s) carries no timestamps (ffmpeg would assume 25 fps): "
                       "restarting it timed by the wall clock", self.camera.id, input_format, codec)  # fmt: skip
        self.restart_reason = "timed by the wall clock (the stream has no timestamps)"
        return True

    def recording_failed(self, reason: str) -> None:
        """Recording cannot write (``reason``): the health says so; an analysed camera goes on analysis-only and
        tries recording again after :data:`RECORDING_RETRY_INITIAL_S` (doubling up to :data:`RECORDING_RETRY_MAX_S`).
        A record-only capture just retries its sessions (nothing else to keep running)."""
        self.recording_failures += 1
        delay = backoff_delay(self.recording_failures, RECORDING_RETRY_INITIAL_S, RECORDING_RETRY_MAX_S)
        self.recording_retry_at = time.monotonic() + delay
        self.state.set_recording_failed(reason)
        if self.bus is None:
            logger.warning("camera %s: recording failed: %s", self.camera.id, reason)
            return
        self.recording_suspended = True
        logger.warning("camera %s: recording failed: %s; analysis goes on, recording tried again in %.0fs",
                       self.camera.id, reason, delay)  # fmt: skip

    def _prepare_recording(self) -> None:
        """Make the segment folder of a recording session; when it cannot be made an analysed camera records
        nothing this session (:meth:`recording_failed`), a record-only one fails (raises ``OSError``)."""
        if not self.records_now:
            return
        assert self.recordings_dir is not None
        try:
            incoming_dir(self.recordings_dir, self.camera.id).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.recording_failed(os_error_reason(exc))
            if self.bus is None:
                raise

    def _fail(self, message: str) -> None:
        self.state.set_error(message, self.secrets)
        logger.warning("camera %s: %s", self.camera.id, redact_text(message, self.secrets))

    def ended_with(self, stderr_tail: list[str], code: int | None) -> str:
        """The error of a session that ended by itself, from ffmpeg's last stderr lines (already redacted)."""
        text = " | ".join(stderr_tail)
        where = redact_url(self.url)
        if _AUTH_FAILED.search(text):
            self.auth_failed = True
            hint = ""
            for name in referenced_variables(self.url):
                if looks_percent_encoded(os.environ.get(name, "")):
                    hint = (f"; {name} looks percent-encoded, but a variable holds the password itself "
                            "(it is encoded for the URL here)")  # fmt: skip
            return f"{AUTH_FAILED_MESSAGE} ({where}){hint}"
        if _FORBIDDEN.search(text):
            self.auth_failed = True
            return (f"403 Forbidden: the camera refused this user ({where}): locked out after failed logins, "
                    "or no right to this stream")  # fmt: skip
        if _TRANSPORT_REFUSED.search(text) and self.url.startswith(("rtsp://", "rtsps://")):
            refused, self.transport = self.transport, "udp" if self.transport == "tcp" else "tcp"
            logger.info("camera %s: the camera refuses RTSP over %s; trying %s", self.camera.id, refused, self.transport)
            return (f"461 Unsupported transport: the camera refused RTSP over {refused.upper()}; "
                    f"next try over {self.transport.upper()} ({where})")  # fmt: skip
        if _NO_VIDEO.search(text):
            return f"no video track in the stream (audio or data only?): {where}"
        return f"stream ended: {text or f'ffmpeg exited with code {code}'}"

    # -- one ffmpeg process ------------------------------------------------------------------------------------
    def input_args(self, opened_url: str, script_fd: int | None) -> tuple[list[str], bytes | None]:
        """ffmpeg's input options and, when ``script_fd`` is given, the ``ffconcat`` script that names the URL
        (see :func:`ffmpeg_input_args`)."""
        return ffmpeg_input_args(opened_url, script_fd, self.transport, self.ingest.connect_timeout_s, self.wallclock)

    def build_command(self, input_args: list[str], progress_fd: int, list_fd: int | None) -> list[str]:
        """The ffmpeg command line around ``input_args`` (see :meth:`input_args`)."""
        cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info", "-threads", "1"]
        keyframes = self.bus is not None and self.decode_mode == "keyframes"
        if keyframes:  # a decoder option of the input: the stream-copy outputs (recording) never decode
            cmd += ["-skip_frame", "nokey"]
        cmd += [*input_args, "-progress", f"pipe:{progress_fd}", "-stats_period", "0.5"]  # record-only liveness
        if list_fd is not None and self.recordings_dir is not None:
            cmd += segment_output_args(self.recordings_dir, self.camera.id, self.ingest.segment_seconds, list_fd)
        else:
            cmd += ["-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
        if self.bus is not None:
            width = self.analysis_width
            fps = self.camera.analysis_fps
            # keyframes: keep at most analysis_fps of them, never duplicate (fps= would repeat a keyframe)
            # drop only, never repeat: a camera slower than analysis_fps has each of its frames analysed once
            # (fps=N would repeat each of them up to N times a second)
            rate = (f"select='isnan(prev_selected_t)+gte(t-prev_selected_t,{0.9 / fps:.4f})'" if keyframes
                    else analysis_rate_filter(fps))  # fmt: skip
            # a camera clock that jumps (NTP sync, set by hand, a lying camera) must not starve the sampling
            # (backwards) nor leave a gap in the frames' timestamps (forwards)
            gap_s = max(_PTS_JUMP_S, 2 * (self.keyframe_interval_s or 0.0)) if keyframes else _PTS_JUMP_S
            # fit in a width square (portrait cameras too: the frame bus slot is max_width x max_width); showinfo
            # logs each analysis frame's size just before it is written (-autoscale 0: when the stream's resolution
            # changes mid-stream the frames follow it, instead of being stretched to the first frame's size)
            vf = (f"{pts_jump_guard(gap_s, 1.0 / fps)},{rate},scale='min({width},iw)':'min({width},ih)'"
                  ":force_original_aspect_ratio=decrease:force_divisible_by=2:flags=fast_bilinear,"
                  "format=bgr24,showinfo=checksum=0")
            # pass the sampled frames as they come: the rawvideo muxer's default constant-rate sync would repeat
            # frames itself (each selected keyframe; a gap across a filter graph re-initialised by a size change)
            cmd += ["-map", "0:v:0", "-vf", vf, "-fps_mode", "passthrough", "-autoscale", "0",
                    "-pix_fmt", "bgr24", "-f", "rawvideo", "pipe:1"]  # fmt: skip
        return cmd

    def _open_input(self, opened_url: str) -> tuple[list[str], tuple[int, int] | None]:
        """Input args and, with secrets, a pipe ``(read_fd, write_fd)`` already holding the concat script.

        Raises ``ValueError`` (fds closed) for a URL that cannot be put in the script."""
        script_r, script_w = os.pipe() if self.secrets else (None, None)
        try:
            input_args, script = self.input_args(opened_url, script_r)
        except ValueError:
            for fd in (script_r, script_w):
                if fd is not None:
                    os.close(fd)
            raise
        if script_r is None or script_w is None or script is None:
            return input_args, None
        os.write(script_w, script)  # a few hundred bytes: fits the pipe buffer before ffmpeg reads it
        return input_args, (script_r, script_w)

    def probe_keyframe_interval(self, opened_url: str) -> float | None:
        """Measure the seconds between keyframes from packet flags (``ffprobe``, nothing decoded).

        Reads packets until three keyframes were seen or ``ingest.keyframe_probe_s`` passed; ``None`` when fewer
        than two keyframes came (the interval is then longer than the probe, or the stream did not answer).
        """
        try:
            input_args, pipe = self._open_input(opened_url)
        except ValueError:
            return None
        if pipe is not None:
            os.close(pipe[1])
        cmd = ["ffprobe", "-hide_banner", "-loglevel", "error", "-select_streams", "v:0",
               "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", *input_args]  # fmt: skip
        pass_fds = (pipe[0],) if pipe is not None else ()
        times: list[float] = []
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    pass_fds=pass_fds, env={**child_environment(), "TZ": "UTC"},
                                    start_new_session=True, preexec_fn=die_with_parent)  # fmt: skip
        finally:
            for fd in pass_fds:
                os.close(fd)
        assert proc.stdout is not None
        deadline = time.monotonic() + self.ingest.keyframe_probe_s + self.ingest.connect_timeout_s
        first_packet: float | None = None
        buf = b""
        try:
            while len(times) < 3 and not self.stop_event.is_set():
                now = time.monotonic()
                if now > deadline or (first_packet is not None and now - first_packet > self.ingest.keyframe_probe_s):
                    break
                readable, _, _ = select.select([proc.stdout], [], [], 0.5)
                if not readable:
                    continue
                data = os.read(proc.stdout.fileno(), 65536)
                if not data:
                    break
                if first_packet is None:
                    first_packet = time.monotonic()
                *lines, buf = (buf + data).split(b"\n")
                for line in lines:
                    pts, _, flags = line.decode("ascii", "replace").strip().partition(",")
                    if "K" in flags:
                        try:
                            times.append(float(pts))
                        except ValueError:
                            continue
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            proc.stdout.close()
        return keyframe_interval(times)

    def _choose_decode(self, opened_url: str, login_refused: bool = False) -> None:
        """Set :attr:`decode_mode` for the next session (measuring the keyframe interval when it may matter).

        ``login_refused``: the last session's login was refused; no measurement then (a second failed login per
        attempt would bring an account lock-out closer), the session itself tries.
        """
        camera, ingest = self.camera, self.ingest
        if self.bus is None:
            self.decode_mode = "all"
            return
        measured = camera.decode == "keyframes" or (
            camera.decode == "auto" and ingest.keyframe_tolerance / camera.analysis_fps >= _MIN_PLAUSIBLE_GOP_S
        )
        intra = self.video_codec in INTRA_CODECS
        if camera.decode != "all" and measured and self.keyframe_interval_s is None and not login_refused and not intra:
            self.keyframe_interval_s = self.probe_keyframe_interval(opened_url)
        mode, reason = choose_decode(camera.decode, camera.analysis_fps, self.keyframe_interval_s,
                                     ingest.keyframe_tolerance, measured=measured, codec=self.video_codec)  # fmt: skip
        if login_refused and measured and self.keyframe_interval_s is None and camera.decode != "all" and not intra:
            reason = "keyframe interval not measured after a refused login (measured at the next connection)"
        if (mode, reason) != (self.decode_mode, self.state.decode_reason):
            refused = camera.decode == "keyframes" and mode != "keyframes"
            logger.log(logging.WARNING if refused else logging.INFO, "camera %s: %s", camera.id, reason)
        self.decode_mode = mode
        with self.state.lock:
            self.state.decode, self.state.decode_reason = mode, reason
            self.state.keyframe_interval_s = self.keyframe_interval_s

    def _session(self) -> bool:
        """Run one ffmpeg process until it ends, stalls or we stop; return whether it delivered anything."""
        login_refused, self.auth_failed = self.auth_failed, False
        try:
            opened_url = expand_url(self.url)
        except MissingSecretError as exc:
            self._fail(f"cannot open stream: {exc}")
            return False
        self._choose_decode(opened_url, login_refused)
        script_r, script_w = os.pipe() if self.secrets else (None, None)
        try:
            input_args, script = self.input_args(opened_url, script_r)
        except ValueError as exc:
            for fd in (script_r, script_w):
                if fd is not None:
                    os.close(fd)
            self._fail(f"cannot open stream: {exc}")
            return False
        if script_w is not None:
            if script is not None:
                os.write(script_w, script)  # a few hundred bytes: fits the pipe buffer before ffmpeg reads it
            os.close(script_w)
        # every fd made for this session is closed whatever fails before or after ffmpeg starts (a recordings
        # folder that cannot be made, no ffmpeg to start): one leaked set per retry would exhaust the worker's fds
        child_fds = [script_r] if script_r is not None else []  # ffmpeg's ends, closed here once it has them
        own_fds: list[int] = []  # ours, closed when the session ends
        try:
            self._prepare_recording()
            progress_r, progress_w = os.pipe()
            own_fds.append(progress_r)
            child_fds.append(progress_w)
            list_r, list_w = None, None
            if self.records_now:
                list_r, list_w = os.pipe()
                own_fds.append(list_r)
                child_fds.append(list_w)
            cmd = self.build_command(input_args, progress_w, list_w)
            if self.primary:
                self.state.set_status("connecting" if self.state.reconnects == 0 else self.state.status)
            if list_r is not None and self.finalizer is not None:
                self.finalizer.new_session()
            try:
                self.process = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if self.bus is not None else subprocess.DEVNULL,
                    stderr=subprocess.PIPE, pass_fds=tuple(child_fds), env={**child_environment(), "TZ": "UTC"},
                    start_new_session=True, preexec_fn=die_with_parent,
                )  # fmt: skip
            finally:
                _close_fds(child_fds)
            return _SessionLoop(self, self.process, progress_r, list_r).run()
        finally:
            _close_fds(child_fds)
            self._reap()
            _close_fds(own_fds)

    def interrupt_ffmpeg(self, proc: subprocess.Popen[bytes]) -> float:
        """The one graceful stop of ``proc`` (any thread): SIGINT, sent once per ffmpeg process whoever asks (the
        session loop, the worker's ffmpeg-stop thread), since ffmpeg aborts its trailer on a second signal ("Immediate
        exit requested": the last segment unfinished, never listed); returns when it was sent (monotonic)."""
        with self._stop_lock:
            if self._interrupted is None or self._interrupted[0] is not proc:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                self._interrupted = (proc, time.monotonic())
            return self._interrupted[1]

    def stop_ffmpeg(self, grace_s: float = FFMPEG_STOP_GRACE_S) -> None:
        """Stop the running ffmpeg from another thread (:func:`pipeline.ingest.worker.stop_ffmpeg_on_stop`, called
        repeatedly): its one SIGINT (:meth:`interrupt_ffmpeg`, shared with the session loop's own stop), then
        SIGKILL once ``grace_s`` passed without it exiting."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        since = self.interrupt_ffmpeg(proc)
        if time.monotonic() - since >= grace_s and proc.poll() is None:
            logger.warning("camera %s: ffmpeg did not stop %.1fs after SIGINT; killing it", self.camera.id, grace_s)
            proc.kill()

    def _reap(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


class _SessionLoop:
    """The select loop of one ffmpeg process (frames, stderr, progress, segment list, watchdog)."""

    def __init__(self, owner: CameraCapture, proc: subprocess.Popen[bytes], progress_fd: int, list_fd: int | None) -> None:
        self.o = owner
        self.proc = proc
        self.fds: dict[int, str] = {proc.stderr.fileno(): "stderr", progress_fd: "progress"}  # type: ignore[union-attr]
        if proc.stdout is not None:
            self.fds[proc.stdout.fileno()] = "frames"
        if list_fd is not None:
            self.fds[list_fd] = "segments"
        self.buffers: dict[str, bytearray] = {name: bytearray() for name in self.fds.values()}
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=8)
        self.frame_shape: tuple[int, int] | None = None  # (h, w) of the last analysis frame
        self.pending_shapes: collections.deque[tuple[int, int]] = collections.deque()  # logged, not yet read
        self.input_format = ""  # ffmpeg's "Input #0, <format>, from" (the listing of the input)
        self.input_checked = False  # its first video stream was seen (codec, size)
        self.started = time.monotonic()
        self.last_activity = self.started
        self.delivered = False
        self.progress_frames: int | None = None
        self.progress_time = time.monotonic()
        self.stopping_since: float | None = None
        self.recording = list_fd is not None  # this ffmpeg writes segments
        self.recording_error: str | None = None  # ffmpeg reported a failing segment write (why)
        self.stderr_section = ""  # "Input #" or "Output #": which part of ffmpeg's stream listing stderr is in
        # a very low analysis fps must not look like a stall: allow two frame periods on top of the timeout
        frame_period = 1.0 / owner.camera.analysis_fps if owner.bus is not None else 0.0
        if owner.bus is not None and owner.decode_mode == "keyframes":
            frame_period = max(frame_period, owner.keyframe_interval_s or 0.0)
        self.stall_limit = owner.ingest.stall_timeout_s + 2 * frame_period
        owner.state.input_fps = 0.0

    def run(self) -> bool:
        ingest = self.o.ingest
        while self.fds:
            if self.o.stop_event.is_set() and self.stopping_since is None:
                self._stop_gracefully()
            readable, _, _ = select.select(list(self.fds), [], [], 0.5)
            for fd in sorted(readable, key=lambda f: self.fds[f] != "stderr"):  # stderr first: frame size
                self._read(fd)
            now = time.monotonic()
            if self.stopping_since is not None:
                if now - self.stopping_since > FFMPEG_STOP_GRACE_S:
                    self.proc.kill()
                continue
            if self.o.recording_suspended and now >= self.o.recording_retry_at:
                self._retry_recording()
            limit = self.stall_limit + (0 if self.delivered else ingest.connect_timeout_s)
            if self.o.state.input_fps > 0:  # a camera slower than analysis_fps: two of its frame gaps too
                limit = max(limit, ingest.stall_timeout_s + 2 / self.o.state.input_fps)
            if now - self.last_activity > limit:
                what = "no frame" if self.delivered else "no video after connecting"
                self.o._fail(f"stalled: {what} for {now - self.last_activity:.0f}s from {redact_url(self.o.url)}")
                self.proc.kill()
                self.stopping_since = now
        code = self.proc.wait(timeout=10)
        if self.stopping_since is None and not self.o.stop_event.is_set():
            reason = self._recording_failure(code)
            if reason is not None and self.o.bus is not None:
                self.o._fail(f"recording failed: {reason}; analysis goes on without recording")
            else:
                self.o._fail(self.o.ended_with(list(self.stderr_tail), code))
        return self.delivered

    def _recording_failure(self, code: int | None) -> str | None:
        """Why this recording ffmpeg ended, if its segment output failed (reported on stderr, or a recordings
        folder that cannot be written now); the capture then records nothing until a retry (see
        :meth:`CameraCapture.recording_failed`). ``None`` for any other ending (the camera, the network)."""
        if not self.recording:
            return None
        reason = self.recording_error
        if reason is None and code != 0 and self.o.recordings_dir is not None:
            reason = probe_writable(incoming_dir(self.o.recordings_dir, self.o.camera.id))
        if reason is None:
            return None
        self.o.recording_failed(reason)
        self.o.restart_now = self.o.bus is not None
        return reason

    def _recording_broke(self, reason: str) -> None:
        """A segment could not be put in place (disk full): an analysed camera restarts without recording now."""
        self.o.recording_failed(reason)
        if self.o.bus is not None:
            self.o.restart_now = True
            self._stop_gracefully()

    def _retry_recording(self) -> None:
        """While recording is suspended: when a probe write succeeds, restart the capture with recording; else
        the next try comes later (backoff)."""
        assert self.o.recordings_dir is not None
        reason = probe_writable(incoming_dir(self.o.recordings_dir, self.o.camera.id))
        if reason is not None:
            self.o.recording_failed(reason)
            return
        logger.info("camera %s: the recordings folder is writable again; restarting with recording", self.o.camera.id)
        self.o.recording_suspended = False
        self.o.restart_now = True
        self._stop_gracefully()

    def _stop_gracefully(self) -> None:
        """SIGINT lets ffmpeg close the current segment and list it; keep reading so it never blocks. The signal is
        sent once (:meth:`CameraCapture.interrupt_ffmpeg`: the worker's ffmpeg-stop thread may have sent it)."""
        self.stopping_since = self.o.interrupt_ffmpeg(self.proc)

    def _read(self, fd: int) -> None:
        name = self.fds[fd]
        try:
            data = os.read(fd, 1 << 20)
        except OSError:
            data = b""
        if not data:
            del self.fds[fd]
            return
        buf = self.buffers[name]
        buf += data
        if name == "frames":
            self._frames(buf)
        else:
            *lines, rest = buf.split(b"\n")
            self.buffers[name] = bytearray(rest)
            for raw in lines:
                line = raw.decode("utf-8", "replace").strip()
                if line:
                    getattr(self, f"_on_{name}")(line)

    def _on_stderr(self, line: str) -> None:
        if self.recording and self.recording_error is None:
            self.recording_error = recording_write_error(line)
        if _SHOWINFO.match(line):  # an analysis frame's size (or the filter's own set-up lines): never an error
            match = _SHOWINFO_SIZE.match(line)
            if match and self.o.bus is not None:
                self.pending_shapes.append((int(match.group(2)), int(match.group(1))))
                if "frames" in self.buffers:
                    self._frames(self.buffers["frames"])
            return
        if line.startswith(("Input #", "Output #")):
            self.stderr_section = line[:len("Input #")]
            match = _INPUT_FORMAT.match(line)
            if match and not self.input_format:
                self.input_format = match.group(1)
        elif self.stderr_section == "Input #" and not self.input_checked and _INPUT_VIDEO_CODEC.match(line):
            self.input_checked = True
            self._check_input(line)
        if not line.startswith(_STDERR_NOISE) and "period set to" not in line:
            self.stderr_tail.append(redact_text(line, self.o.secrets)[:200])

    def _check_input(self, line: str) -> None:
        """The input's first video stream is listed: its codec and timestamps (see :meth:`CameraCapture.learn_input`),
        then its size."""
        match = _INPUT_VIDEO_CODEC.match(line)
        assert match is not None
        if self.stopping_since is None and self.o.learn_input(self.input_format, match.group(1)):
            self.o.restart_now = True
            self._stop_gracefully()
            return
        if self.o.bus is not None:
            self._check_input_size(line)

    def _check_input_size(self, line: str) -> None:
        """Refuse (with a clear error, instead of a stall) an input video too small to analyse (1x1, 2x2)."""
        match = _INPUT_VIDEO_SIZE.search(line)
        if match is None or self.stopping_since is not None:
            return
        width, height = int(match.group(1)), int(match.group(2))
        if min(width, height) >= MIN_ANALYSIS_SIDE:
            return
        self.o._fail(f"the stream's resolution {width}x{height} is too small to analyse (at least "
                     f"{MIN_ANALYSIS_SIDE}x{MIN_ANALYSIS_SIDE} pixels needed): {redact_url(self.o.url)}")  # fmt: skip
        self.proc.kill()
        self.stopping_since = time.monotonic()

    def _on_progress(self, line: str) -> None:
        key, _, value = line.partition("=")
        if key != "frame":
            return
        try:
            frames = int(value)
        except ValueError:
            return
        now = time.monotonic()
        if self.progress_frames is not None and frames > self.progress_frames:
            self.o.state.input_fps = (frames - self.progress_frames) / max(now - self.progress_time, 1e-3)
        if self.o.bus is None and frames > (self.progress_frames or 0):  # record-only: input packets are the
            self._alive(now)  # liveness signal (online from the first report that counts any)
        if self.progress_frames is None or frames != self.progress_frames:  # a camera slower than the reports
            self.progress_frames, self.progress_time = frames, now  # (0.5 s): frames over the time they took

    def _on_segments(self, line: str) -> None:
        finalizer = self.o.finalizer
        if finalizer is None:
            return
        try:
            segment = finalizer.on_list_line(line)
        except OSError as exc:  # the journal or the move failed: the file stays in .incoming for a later recovery
            self._recording_broke(os_error_reason(exc))
            return
        if segment is not None and self.recording_error is not None:  # the last one, cut short by the failure
            with self.o.state.lock:
                self.o.state.last_segment_end = segment.end
        elif segment is not None:
            self.o.recording_failures = 0
            self.o.state.set_segment_indexed(segment.end)
            logger.debug("camera %s: segment %s indexed", self.o.camera.id, segment.path)

    def _alive(self, now: float) -> None:
        self.last_activity = now
        if not self.delivered:
            self.delivered = True
            if self.recording:
                with self.o.state.lock:  # after a failure recording is "on" again once a segment is indexed
                    if self.o.state.recording != "failed":
                        self.o.state.recording = "on"
        if self.o.primary:
            self.o.state.set_status("online")

    def _write_latest_snapshot(self, frame: np.ndarray, now: float) -> None:
        """Keep ``<recordings>/snapshots/<camera>/latest.jpg`` fresh (atomic replace) for the control room."""
        state = self.o.state
        state.snapshot_time = now
        if self.o.recordings_dir is None:
            return
        relative = Path(SNAPSHOTS_DIRNAME) / self.o.camera.id / "latest.jpg"
        target = self.o.recordings_dir / relative
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if not ok:
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(jpeg.tobytes())
            tmp.replace(target)
        except OSError as exc:
            message = f"cannot write {relative.as_posix()}: {os_error_reason(exc)}"
            state.add_snapshot_error(message)
            logger.warning("camera %s: %s", self.o.camera.id, message)
            return
        with state.lock:
            state.snapshot_path = relative.as_posix()

    def _new_shape(self, shape: tuple[int, int]) -> None:
        """The analysis frames' size is known, or changed (the stream's resolution changed mid-stream)."""
        h, w = shape
        if self.frame_shape is not None:
            logger.info("camera %s: the stream's resolution changed: analysis frames now %dx%d (were %dx%d)",
                        self.o.camera.id, w, h, self.frame_shape[1], self.frame_shape[0])  # fmt: skip
        self.frame_shape = shape
        with self.o.state.lock:
            self.o.state.analysis_size = f"{w}x{h}"

    def _frames(self, buf: bytearray) -> None:
        """Publish the complete frames in ``buf``, each with the size showinfo logged for it (on stderr, which ffmpeg
        writes before the frame itself and which :meth:`run` reads first)."""
        if not self.pending_shapes and len(buf) > 64 << 20:
            raise RuntimeError("frame size unknown and 64 MiB of video buffered")
        while self.pending_shapes:
            h, w = self.pending_shapes[0]
            size = h * w * 3
            if len(buf) < size:
                return
            self.pending_shapes.popleft()
            if (h, w) != self.frame_shape:
                self._new_shape((h, w))
            frame = np.frombuffer(memoryview(buf)[:size], np.uint8).reshape(h, w, 3)
            now = time.time()
            self.o.bus.publish(self.o.camera.id, frame, now)
            state = self.o.state
            if now - state.snapshot_time >= SNAPSHOT_INTERVAL_S:
                self._write_latest_snapshot(frame, now)
            del frame
            del buf[:size]
            with state.lock:
                state.last_frame_time = now
                state.published += 1
                state.frame_times.append(now)
            self._alive(time.monotonic())
