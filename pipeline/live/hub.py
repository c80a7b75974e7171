"""Live video hub: one upstream ffmpeg per camera stream, remuxed (never re-encoded) to fragmented MP4, fanned
out to any number of viewers with small bounded queues.

Why this shape (measured with ``python -m benchmarks.video``): a remux with ``-c copy`` costs a few percent of a
core per camera whatever the viewer count, since a viewer only gets references to the same immutable fragment
bytes; the browser side is Media Source Extensions, which every current browser has, and one fragment per frame
(``frag_every_frame``) keeps the hub's own delay at one frame.

- **One upstream per camera stream.** :meth:`LiveHub.subscribe` starts the camera's :class:`LiveSource` on the
  first viewer; the last viewer leaving starts a linger timer (``linger_s``), after which ffmpeg is stopped.
- **Bounded viewers.** Each :class:`Viewer` holds at most ``queue_fragments`` fragments, ``queue_bytes`` bytes and
  nothing older than ``queue_age_s``.
  A viewer that falls behind (its WebSocket cannot take the stream's rate) loses everything queued and resumes
  at the next keyframe fragment (``dropped`` counts the fragments it never got); memory never grows with lag.
- **Fast start.** The fragments since the last keyframe (the current GOP, at most ``gop_cache_bytes``) are kept,
  so a new viewer starts decoding at once instead of waiting up to a keyframe interval.
- **Frozen cameras.** A camera whose RTSP connection stays open but brings no video is ended by ffmpeg's read
  timeout only after ``stall_s``. Meanwhile, once no fragment came for ``stale_s``, the source says ``offline``
  (``no_video``, how long no frame came) to its viewers and ``live`` again with the next fragment; a viewer that
  joins then gets that status and the init segment, never the cached GOP (old frames under a live badge).
- **Preload** (go2rtc's ``preload``): :meth:`LiveHub.set_preload` keeps chosen camera streams running with no
  viewer (at most ``preload_max``), so that the first viewer of one is served at once from the GOP cache instead
  of waiting for ffmpeg, the RTSP set-up and the camera's next keyframe. A preloaded upstream is retried after
  failures like any other and stops (after ``linger_s``) when it leaves the preload set without viewers. The API
  decides which streams (``CCTV_LIVE_PRELOAD``: the cameras of the saved wall layouts by default).
- **H.265.** Browsers rarely decode H.265 through MSE. A main stream that turns out to be H.265 is replaced by the
  camera's sub-stream when it has one; when that is H.265 too (or there is none) the stream is transcoded to
  H.264 (``-preset ultrafast``, at most ``transcode_width`` wide), at most ``max_transcodes`` at a time;
  :attr:`LiveSource.mode` says which (``remux``, ``sub-stream``, ``transcode``) and the web page shows it.
- **Credentials** never reach a command line: the URL goes through the same inherited-pipe ``ffconcat`` script
  as the recorder's (:func:`pipeline.ingest.capture.ffmpeg_input_args`); errors are redacted.

Everything runs on one asyncio event loop (the API's); nothing here blocks it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.config import Camera, Config
from pipeline.ingest.capture import backoff_delay, ffmpeg_input_args
from pipeline.live.fmp4 import Fmp4Error, Fmp4Splitter, Fragment, InitSegment
from pipeline.secrets import MissingSecretError, child_environment, expand_url, redact_text, url_secrets

logger = logging.getLogger(__name__)

Variant = Literal["main", "sub"]
VARIANTS: tuple[str, ...] = ("main", "sub")
_MOVFLAGS = "frag_keyframe+frag_every_frame+empty_moov+default_base_moof"


# Why an upstream ended: (pattern in ffmpeg's stderr, stable code, English text). The code goes to viewers with the
# text (``StatusMessage.code``) so that a page shows the reason in its own language; the codes are API: never rename.
_EXPLAINED = (
    (re.compile(r"401 Unauthorized|authorization failed", re.I), "unauthorized",
     "the camera refused the login (401): check its user and password"),
    (re.compile(r"403 Forbidden", re.I), "forbidden", "the camera refused this user (403)"),
    (re.compile(r"404 Not Found", re.I), "not_found", "the camera has no such stream (404)"),
    (re.compile(r"Connection refused", re.I), "refused",
     "the camera refused the connection (is it on, and is the port right?)"),
    (re.compile(r"timed out|Operation timed out|Connection timed out", re.I), "timeout",
     "the camera did not answer in time"),
    (re.compile(r"No route to host|Network is unreachable", re.I), "unreachable", "the camera's network is unreachable"),
)
# Codes of the other reasons a stream is offline or shown differently (see LiveSource).
CODE_ENDED = "ended"  # the stream ended for a reason not recognised above (the text has ffmpeg's words)
CODE_NO_VIDEO = "no_video"  # connected, but no video for stale_s (the upstream restarted after stall_s)
CODE_BAD_STREAM = "bad_stream"  # ffmpeg's output could not be read as fragmented MP4
CODE_OPEN_FAILED = "open_failed"  # the URL could not be opened (a missing secret, a malformed URL)
CODE_TRANSCODE_LIMIT = "transcode_limit"  # an H.265 camera and no free transcode place
CODE_REMOVED = "removed"  # the camera left the configuration or was disabled
CODE_CONFIG_CHANGED = "config_changed"  # reconnecting after the camera's configuration changed


def explain_code(stderr: str) -> tuple[str, str]:
    """(stable code, person-readable English reason) of an ended upstream, from ffmpeg's last (redacted) lines."""
    for pattern, code, text in _EXPLAINED:
        if pattern.search(stderr):
            return code, text
    cleaned = re.sub(r"\[[a-z0-9_]+ @ 0x[0-9a-f]+\] ?", "", stderr).strip()
    return CODE_ENDED, f"the camera stream ended: {cleaned[:240]}" if cleaned else "the camera stream ended"


def explain(stderr: str) -> str:
    """A person-readable reason for an ended upstream, from ffmpeg's last (already redacted) error lines."""
    return explain_code(stderr)[1]


@dataclass(frozen=True)
class LiveSettings:
    """Limits of the live hub (the API passes its CCTV_LIVE_* settings)."""

    linger_s: float = 10.0  # upstream kept this long after its last viewer left
    queue_fragments: int = 50  # per viewer (one fragment = one frame): ~2 s at 25 fps
    queue_bytes: int = 8 * 2**20  # per viewer
    queue_age_s: float = 1.0  # a viewer whose oldest queued fragment waited longer is behind: next keyframe
    gop_cache_bytes: int = 8 * 2**20  # fragments since the last keyframe kept for new viewers
    stall_s: float = 10.0  # no byte from ffmpeg this long: the upstream is restarted
    stale_s: float = 3.0  # no fragment this long: viewers are told offline (no_video) until the next one
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 15.0
    connect_timeout_s: float = 10.0
    max_transcodes: int = 2  # H.265 cameras without an H.264 stream transcoded at the same time
    transcode_width: int = 960
    preload_max: int = 32  # camera streams kept running without viewers (set_preload) at most


@dataclass
class StatusMessage:
    """A change of the source's state for viewers (connecting, live, offline with the reason).

    ``code`` is the reason as a stable machine code (see ``_EXPLAINED`` and the ``CODE_*`` constants; "" for none,
    and for ``live`` whose reason is the display mode) that a page translates; ``reason`` is the English text.
    """

    status: str
    reason: str = ""
    code: str = ""


class Viewer:
    """One viewer's bounded queue of init segments, fragments and status messages."""

    def __init__(self, source: LiveSource, max_fragments: int, max_bytes: int, max_age_s: float = 1.0) -> None:
        self.source = source
        self.max_fragments = max_fragments
        self.max_age_s = max_age_s  # a queued fragment older than this: the viewer is behind
        self._times: collections.deque[float] = collections.deque()  # when each queued fragment was queued
        self.max_bytes = max_bytes
        self._items: collections.deque[InitSegment | Fragment | StatusMessage] = collections.deque()
        self._fragments = 0
        self._bytes = 0
        self._ready = asyncio.Event()
        self._acked_event = asyncio.Event()
        self.acked: int | None = None  # fragments the client said it received (None: it does not acknowledge)
        self.need_key = True  # until a keyframe fragment arrives (start, after a drop, after a new init)
        self.dropped = 0  # fragments this viewer never got (fell behind)
        self.lag_drops = 0  # times it fell behind
        self.sent_fragments = 0
        self.sent_bytes = 0
        self.closed = False
        self.started = time.time()

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    @property
    def queued_fragments(self) -> int:
        return self._fragments

    def _push(self, item: InitSegment | Fragment | StatusMessage) -> None:
        self._items.append(item)
        if isinstance(item, Fragment):
            self._times.append(time.monotonic())
            self._fragments += 1
            self._bytes += len(item.data)
        self._ready.set()

    def offer_init(self, init: InitSegment) -> None:
        """A new upstream session: what is queued of the old one is useless now."""
        self._drop_fragments(count=False)
        self.need_key = True
        self._push(init)

    def offer_status(self, message: StatusMessage) -> None:
        # status messages are tiny and rare; keep only the newest one waiting
        self._items = collections.deque(i for i in self._items if not isinstance(i, StatusMessage))
        self._push(message)

    def offer(self, fragment: Fragment) -> None:
        """Queue a fragment, or drop the queue and wait for the next keyframe when this viewer fell behind."""
        if self.need_key and not fragment.key:
            self.dropped += 1
            return
        if (self._fragments >= self.max_fragments or self._bytes + len(fragment.data) > self.max_bytes
                or (self._times and time.monotonic() - self._times[0] > self.max_age_s)):
            self.lag_drops += 1
            self._drop_fragments(count=True)
            self.need_key = True
            if not fragment.key:
                self.dropped += 1
                return
        self.need_key = False
        self._push(fragment)

    def _drop_fragments(self, count: bool) -> None:
        kept = collections.deque(i for i in self._items if not isinstance(i, Fragment))
        if count:
            self.dropped += self._fragments
        self._items, self._fragments, self._bytes = kept, 0, 0
        self._times.clear()

    async def get(self) -> InitSegment | Fragment | StatusMessage:
        """The next item (waits)."""
        while not self._items:
            await self.wait()
        return self.pop()  # type: ignore[return-value]

    async def wait(self) -> None:
        """Until an item is queued or :meth:`wake` is called (no task is created: cheap at one call per frame)."""
        if not self._items:
            await self._ready.wait()  # set by a push or wake() since the last wait: no wake-up is lost
            if not self._items:
                self._ready.clear()

    def restart(self) -> None:
        """The source moved to a new stream: drop what is queued of the old one and wait for its next init."""
        self._drop_fragments(count=False)
        self._items = collections.deque(i for i in self._items if not isinstance(i, InitSegment))
        self.need_key = True

    def wake(self) -> None:
        """End a pending :meth:`wait` or :meth:`wait_ack` (the client left, or it is time for a periodic check)."""
        self._ready.set()
        self._acked_event.set()

    def ack(self, received: int) -> None:
        """The client has received ``received`` fragments of this connection (flow control)."""
        if 0 <= received <= self.sent_fragments and (self.acked is None or received > self.acked):
            self.acked = received
        self._acked_event.set()

    def in_flight(self) -> int:
        """Fragments sent but not yet acknowledged (0 for a client that does not acknowledge)."""
        return 0 if self.acked is None else self.sent_fragments - self.acked

    async def wait_ack(self) -> None:
        """Until the client acknowledges more (or :meth:`wake`)."""
        await self._acked_event.wait()  # set by an ack or wake() since the last wait
        self._acked_event.clear()

    def pop_fragments(self, max_count: int, max_bytes: int) -> list[Fragment]:
        """The fragments at the head of the queue (up to the next init or status message), at most ``max_count``
        of them and ``max_bytes`` together: what one WebSocket message carries to a viewer that fell behind."""
        out: list[Fragment] = []
        while len(out) < max_count and self._items and isinstance(self._items[0], Fragment) \
                and len(self._items[0].data) <= max_bytes:
            max_bytes -= len(self._items[0].data)
            out.append(self.pop())  # type: ignore[arg-type]
        return out

    def pop(self) -> InitSegment | Fragment | StatusMessage | None:
        """The next item, or None when nothing is queued."""
        if not self._items:
            return None
        item = self._items.popleft()
        if isinstance(item, Fragment):
            self._times.popleft()
            self._fragments -= 1
            self._bytes -= len(item.data)
            self.sent_fragments += 1
            self.sent_bytes += len(item.data)
        return item


class Upstream:
    """An upstream ffmpeg: started by :class:`subprocess.Popen` in a worker thread, its pipes read by the event loop.

    Not ``asyncio.create_subprocess_exec``: under uvicorn the loop is uvloop, whose spawn forks the whole API process
    on the event loop (~40 ms measured with the API's ~600 MB, every viewer of the process held up meanwhile, and
    once per camera when the preload starts); ``Popen`` without ``preexec_fn`` uses vfork (~2 ms) and runs off the
    loop. No parent-death signal (that needs ``preexec_fn``): an ffmpeg whose API process died exits at its next
    write to the closed stdout pipe, and the RTSP read timeout ends one whose camera sends nothing."""

    def __init__(self, popen: subprocess.Popen, stdout: asyncio.StreamReader, stderr: asyncio.StreamReader,
                 transports: list[asyncio.BaseTransport]) -> None:
        self.popen, self.stdout, self.stderr, self._transports = popen, stdout, stderr, transports
        self.pid = popen.pid

    @classmethod
    async def start(cls, cmd: list[str], pass_fds: tuple[int, ...], env: dict[str, str]) -> Upstream:
        """Start ``cmd`` (stdin from /dev/null, stdout and stderr piped) in its own session."""
        loop = asyncio.get_running_loop()
        starting = loop.run_in_executor(None, lambda: subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds, env=env,
            start_new_session=True))
        try:
            popen = await asyncio.shield(starting)
        except asyncio.CancelledError:  # the source stopped meanwhile: the process still starts; end it then
            starting.add_done_callback(_kill_started)
            raise
        readers, transports = [], []
        try:
            for pipe in (popen.stdout, popen.stderr):
                reader = asyncio.StreamReader(limit=2**20)
                transport, _ = await loop.connect_read_pipe(lambda r=reader: asyncio.StreamReaderProtocol(r), pipe)
                readers.append(reader)
                transports.append(transport)
        except BaseException:
            popen.kill()
            for transport in transports:
                transport.close()
            await asyncio.to_thread(popen.wait)
            raise
        return cls(popen, readers[0], readers[1], transports)

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def kill(self) -> None:
        self.popen.kill()

    async def wait(self) -> int:
        """Until the process ended (its exit status)."""
        return await asyncio.to_thread(self.popen.wait)

    def close(self) -> None:
        """Stop reading its pipes (after it ended: what it wrote last has been read)."""
        for transport in self._transports:
            transport.close()


def _kill_started(starting: asyncio.Future) -> None:
    """Kill (and reap, off the loop) an upstream whose start finished after its source had stopped."""
    if starting.cancelled() or starting.exception() is not None:
        return
    popen = starting.result()
    with contextlib.suppress(ProcessLookupError):
        popen.kill()
    for pipe in (popen.stdout, popen.stderr):
        if pipe is not None:
            pipe.close()
    threading.Thread(target=popen.wait, name="live-reap", daemon=True).start()


def _stream_of(camera: Camera) -> tuple[Any, ...]:
    """What of a camera's configuration its live upstream depends on."""
    return camera.url, camera.sub_stream


@dataclass
class _Session:
    url: str
    mode: str  # remux | sub-stream | transcode


@dataclass
class LiveSource:
    """One camera stream (main or sub) and its upstream ffmpeg while anyone watches."""

    camera: Camera
    variant: str
    hub: LiveHub
    viewers: set[Viewer] = field(default_factory=set)
    status: str = "idle"  # idle | connecting | live | offline
    reason: str = ""
    reason_code: str = ""  # the reason as a stable code (StatusMessage.code)
    mode: str = "remux"
    init: InitSegment | None = None
    gop: list[Fragment] = field(default_factory=list)
    pid: int | None = None
    sessions: int = 0  # upstream ffmpeg processes started (for tests and the info route)
    preloaded: bool = False  # kept running without viewers (LiveHub.set_preload)
    startup: dict[str, float | None] = field(default_factory=dict)  # the last session's start, seconds after it began
    _session_t0: float = 0.0
    fragments: int = 0
    last_fragment_at: float = 0.0
    _last_fragment_mono: float = 0.0  # time.monotonic() of the newest fragment (staleness, immune to clock steps)
    _gop_bytes: int = 0
    _task: asyncio.Task | None = None
    _linger: asyncio.TimerHandle | None = None
    _fallback: str = ""  # the stream was H.265: "sub" (the camera's sub-stream) or "transcode"
    _transcoding: bool = False  # holds one of the hub's transcode places
    _end_reason: str = ""
    _end_code: str = ""  # _end_reason as a stable code
    _long_probe: bool = False  # the short probe did not get the stream's parameters once: probe longer
    retired: str = ""  # why the camera left the configuration (its viewers are ended); "" while it is in it

    @property
    def key(self) -> str:
        return f"{self.camera.id}/{self.variant}"

    def info(self) -> dict[str, Any]:
        """What the info route shows."""
        init = self.init
        return {"status": self.status, "reason": self.reason, "reason_code": self.reason_code, "mode": self.mode, "viewers": len(self.viewers),
                "preloaded": self.preloaded, "startup": dict(self.startup) or None,
                "codec": init.codec if init else None, "mime": init.mime if init else None,
                "width": init.width if init else None, "height": init.height if init else None,
                "last_fragment_age_s": round(time.time() - self.last_fragment_at, 3) if self.last_fragment_at else None}

    # -- viewers ---------------------------------------------------------------------------------------------
    def add(self, viewer: Viewer) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self.viewers.add(viewer)
        self.check_stale()
        if self.init is not None:
            viewer.offer_init(self.init)  # needed for the fragments still to come of this session
            if self.status == "live":  # the cached GOP only while fresh: never old frames under a live badge
                for fragment in self.gop:
                    viewer.offer(fragment)
        reason = self.reason
        if self.status == "offline" and self.reason_code == CODE_NO_VIDEO and self.pid is not None and self.quiet_s():
            reason = self._quiet_reason()  # frozen in this session: how long until now
        viewer.offer_status(StatusMessage(self.status, reason, self.reason_code))
        self._ensure_running()

    def quiet_s(self) -> float:
        """Seconds since the newest fragment of this source (0 before the first one)."""
        return time.monotonic() - self._last_fragment_mono if self._last_fragment_mono else 0.0

    def check_stale(self) -> bool:
        """A live source whose newest fragment is older than ``stale_s`` becomes offline (``no_video``), its viewers
        told so; True when it is (now) stale. The next fragment makes it live again (:meth:`_fragment`)."""
        quiet = self.quiet_s()
        if self.status != "live" or quiet < self.hub.settings.stale_s:
            return False
        logger.info("live %s: no video for %.1fs; viewers told offline", self.key, quiet)
        self._set_status("offline", self._quiet_reason(), CODE_NO_VIDEO)
        return True

    def _quiet_reason(self) -> str:
        return f"no video from the camera for {self.quiet_s():.0f} s"

    def _ensure_running(self) -> None:
        if self.retired:
            return
        task = self._task
        if task is None or task.done() or task.cancelling():
            # a task being cancelled (linger ended) is awaited by the new one before it starts its upstream
            previous = task if task is not None and not task.done() else None
            self._task = asyncio.get_running_loop().create_task(self._run(previous), name=f"live-{self.key}")

    def remove(self, viewer: Viewer) -> None:
        viewer.closed = True
        self.viewers.discard(viewer)
        self._linger_if_unused()

    def set_preloaded(self, preloaded: bool) -> None:
        """Keep the upstream running without viewers (True), or let it stop ``linger_s`` after it is unused."""
        self.preloaded = preloaded
        if preloaded:
            if self._linger is not None:
                self._linger.cancel()
                self._linger = None
            self._ensure_running()
        else:
            self._linger_if_unused()

    def _linger_if_unused(self) -> None:
        if not self.retired and not self.viewers and not self.preloaded and self._task is not None and self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(self.hub.settings.linger_s, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        self._linger = None
        if not self.viewers and not self.preloaded and self._task is not None:
            self._task.cancel()

    def reconfigure(self, camera: Camera) -> bool:
        """Follow a new configuration of this source's camera; True when its stream changed.

        A changed stream (URL or sub-stream) restarts the upstream on the new one: what viewers have
        queued of the old stream is dropped, they are told the source is connecting again and resume at the new
        stream's init segment and first keyframe. Any other change (the name) is taken as is."""
        old, self.camera = self.camera, camera
        if _stream_of(old) == _stream_of(camera):
            return False
        logger.info("live %s: the camera's stream changed in the configuration; reconnecting", self.key)
        self._fallback, self._long_probe = "", False
        self.init, self.gop, self._gop_bytes = None, [], 0
        for viewer in list(self.viewers):
            viewer.restart()
        if self._task is not None and not self._task.done():
            self._task.cancel()  # the new task awaits it (its ffmpeg killed) before it opens the new URL
            if self._wanted():
                self._ensure_running()
        self._set_status("connecting", "the camera's configuration changed", CODE_CONFIG_CHANGED)
        return True

    def retire(self, reason: str) -> None:
        """The camera left the configuration (removed or disabled): stop the upstream and end every viewer."""
        self.retired, self.preloaded = reason, False
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._task is not None:
            self._task.cancel()
        self._set_status("offline", reason, CODE_REMOVED)
        for viewer in list(self.viewers):
            viewer.wake()

    async def stop(self) -> None:
        """Stop the upstream now (hub shutdown)."""
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._task = None

    def _set_status(self, status: str, reason: str = "", code: str = "") -> None:
        if (status, reason, code) == (self.status, self.reason, self.reason_code):
            return
        self.status, self.reason, self.reason_code = status, reason, code
        for viewer in list(self.viewers):
            viewer.offer_status(StatusMessage(status, reason, code))

    def _end(self, code: str, reason: str) -> None:
        """Say why the current session ended (shown once the upstream is found offline)."""
        self._end_code, self._end_reason = code, reason

    # -- upstream --------------------------------------------------------------------------------------------
    def _session_plan(self) -> _Session:
        cam = self.camera
        url = cam.sub_stream if self.variant == "sub" and cam.sub_stream else cam.url
        if not self._fallback:
            return _Session(url, "remux")
        if self._fallback == "sub" and cam.sub_stream:
            return _Session(cam.sub_stream, "sub-stream")
        return _Session(cam.sub_stream or url, "transcode")  # the smaller stream is the cheaper one to encode

    async def _run(self, previous: asyncio.Task | None = None) -> None:
        if previous is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await previous
        failures = 0
        try:
            while self._wanted():
                plan = self._session_plan()
                self.mode = plan.mode
                got = await self._session(plan)
                if got == "switch":
                    continue
                failures = 1 if got else failures + 1
                delay = backoff_delay(failures, self.hub.settings.backoff_initial_s, self.hub.settings.backoff_max_s)
                if self._end_reason:
                    self._set_status("offline", self._end_reason, self._end_code or CODE_ENDED)
                else:
                    self._set_status("offline", "the camera stream ended", CODE_ENDED)
                logger.info("live %s: upstream ended (%s); retrying in %.1fs", self.key, self.reason, delay)
                await asyncio.sleep(delay)
        finally:
            if self._transcoding:
                self.hub.transcodes -= 1
                self._transcoding = False
            self.status, self.reason, self.reason_code, self.pid = "idle", "", "", None
            self.init, self.gop, self._gop_bytes = None, [], 0
            self._last_fragment_mono = 0.0

    def _command(self, input_args: list[str], plan: _Session) -> list[str]:
        # a short probe (the SDP's parameter sets usually say all): ~1 s less to the first frame; a stream that
        # needs more (no parameter sets in the SDP) fails its first session and gets the long probe after
        probe = ["-probesize", "1000000", "-analyzeduration", "1000000"] if self._long_probe else \
            ["-probesize", "32", "-analyzeduration", "0"]
        cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1", *probe, *input_args,
               "-map", "0:v:0", "-an", "-sn"]
        if plan.mode == "transcode":
            width = self.hub.settings.transcode_width
            cmd += ["-vf", f"scale='min({width},iw)':-2", "-c:v", "libx264", "-preset", "ultrafast",
                    "-tune", "zerolatency", "-pix_fmt", "yuv420p", "-force_key_frames", "expr:gte(t,n_forced*1)"]
        else:
            cmd += ["-c:v", "copy"]
        return cmd + ["-f", "mp4", "-movflags", _MOVFLAGS, "-flush_packets", "1", "pipe:1"]

    async def _spawn(self, plan: _Session) -> tuple[Upstream, list[str]]:
        secrets = url_secrets(plan.url)
        opened = expand_url(plan.url)
        script_r, script_w = os.pipe() if secrets else (None, None)
        try:
            input_args, script = ffmpeg_input_args(opened, script_r, "tcp", self.hub.settings.connect_timeout_s)
            if script_w is not None and script is not None:
                os.write(script_w, script)  # a few hundred bytes: fits the pipe buffer before ffmpeg reads it
        except BaseException:
            if script_r is not None:  # no ffmpeg will read it: one leaked fd per retry otherwise
                os.close(script_r)
            raise
        finally:
            if script_w is not None:
                os.close(script_w)
        pass_fds = (script_r,) if script_r is not None else ()
        try:
            proc = await Upstream.start(self._command(input_args, plan), pass_fds,
                                        {**child_environment(), "TZ": "UTC"})
        finally:
            for fd in pass_fds:
                os.close(fd)
        return proc, secrets

    async def _session(self, plan: _Session) -> bool | str:
        """One ffmpeg process; True when it delivered fragments, "switch" to restart on the H.265 fallback."""
        if plan.mode == "transcode" and not self._transcoding:
            if self.hub.transcodes >= self.hub.settings.max_transcodes:
                self._end(CODE_TRANSCODE_LIMIT, "H.265 camera without an H.264 stream, and the live transcode "
                          f"limit ({self.hub.settings.max_transcodes}) is reached")
                return False
            self.hub.transcodes += 1
            self._transcoding = True
        if self.status == "idle":
            self._set_status("connecting")
        self._end("", "")
        self._session_t0 = time.monotonic()
        self.startup = {"spawn_s": None, "init_s": None, "first_fragment_s": None}
        try:
            proc, secrets = await self._spawn(plan)
        except (MissingSecretError, ValueError, OSError) as exc:
            self._end(CODE_OPEN_FAILED, f"cannot open the stream: {redact_text(str(exc))}")
            return False
        self.pid, self.sessions = proc.pid, self.sessions + 1
        self._mark("spawn_s")
        stderr_tail: collections.deque[str] = collections.deque(maxlen=5)
        err_task = asyncio.get_running_loop().create_task(self._read_stderr(proc, stderr_tail, secrets))
        delivered: bool | str = False
        splitter = Fmp4Splitter()
        try:
            delivered = await self._pump(proc, splitter, plan)
        except Fmp4Error as exc:
            self._end(CODE_BAD_STREAM, f"unreadable stream from ffmpeg: {exc}")
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 10)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(err_task, 1)  # its last lines say why it ended
            proc.close()
            self.pid = None
        if not delivered and not self._long_probe:
            self._long_probe = True
        if delivered != "switch" and not self._end_reason:
            self._end(*explain_code(redact_text(" | ".join(stderr_tail), secrets)))
        return delivered

    async def _pump(self, proc: Upstream, splitter: Fmp4Splitter, plan: _Session) -> bool | str:
        delivered = False
        stall = self.hub.settings.stall_s + (self.hub.settings.connect_timeout_s if not delivered else 0)
        read_since = time.monotonic()
        while self._wanted():
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation (the linger's stop) that
                # comes as the read completes, and this upstream then ran on with nobody watching. A read cut
                # short to notice a stale stream loses nothing: the data stays in the reader.
                async with asyncio.timeout(self._read_timeout(stall - (time.monotonic() - read_since))):
                    chunk = await proc.stdout.read(256 * 1024)
            except TimeoutError:
                if time.monotonic() - read_since < stall:
                    self.check_stale()
                    continue
                self._end(CODE_NO_VIDEO, f"no video from the camera for {stall:.0f} s")
                return delivered
            read_since = time.monotonic()
            if not chunk:
                return delivered
            for piece in splitter.feed(chunk):
                if isinstance(piece, InitSegment):
                    if not piece.is_h264 and plan.mode != "transcode":
                        sub_left = plan.mode == "remux" and self.camera.sub_stream and plan.url != self.camera.sub_stream
                        self._fallback = "sub" if sub_left else "transcode"
                        logger.info("live %s: the stream is %s, which browsers rarely play: using the %s", self.key,
                                    piece.codec, "sub-stream" if sub_left else "H.264 transcode")
                        return "switch"
                    self._mark("init_s")
                    self._new_init(piece)
                else:
                    if not delivered:
                        self._mark("first_fragment_s")
                        delivered = True
                        stall = self.hub.settings.stall_s
                    if self.status != "live":  # the first fragment, or video again after a stale spell
                        self._set_status("live", self._mode_note())
                    self._fragment(piece)
        return delivered

    def _read_timeout(self, stall_left: float) -> float:
        """How long the next read of ffmpeg's output may wait: what is left of the stall timeout, shorter while the
        source is live, so that it is found stale (``stale_s`` after its newest fragment) in time."""
        if self.status == "live" and self._last_fragment_mono:
            stale_left = self.hub.settings.stale_s - self.quiet_s()
            return max(0.0, min(stall_left, stale_left + 0.05))
        return max(0.0, stall_left)

    def _wanted(self) -> bool:
        """Whether the upstream should run: viewers, the preload set, or a linger timer."""
        return bool(self.viewers) or self.preloaded or self._linger is not None

    def _mark(self, step: str) -> None:
        """Record when a step of the session's start (spawn, init segment, first fragment) was reached."""
        if self.startup.get(step) is None:
            self.startup[step] = round(time.monotonic() - self._session_t0, 4)

    def _mode_note(self) -> str:
        return {"remux": "", "sub-stream": "H.265 main stream: showing the H.264 sub-stream",
                "transcode": "H.265 camera: transcoded to H.264 for the browser"}.get(self.mode, "")

    def _new_init(self, init: InitSegment) -> None:
        self.init, self.gop, self._gop_bytes = init, [], 0
        for viewer in list(self.viewers):
            viewer.offer_init(init)

    def _fragment(self, fragment: Fragment) -> None:
        self.fragments += 1
        self.last_fragment_at = time.time()
        self._last_fragment_mono = time.monotonic()
        if fragment.key:
            self.gop, self._gop_bytes = [], 0
        if self._gop_bytes + len(fragment.data) <= self.hub.settings.gop_cache_bytes:
            self.gop.append(fragment)
            self._gop_bytes += len(fragment.data)
        for viewer in list(self.viewers):
            viewer.offer(fragment)

    @staticmethod
    async def _read_stderr(proc: Upstream, tail: collections.deque[str], secrets: list[str]) -> None:
        while True:
            line = await proc.stderr.readline()
            if not line:
                return
            text = redact_text(line.decode("utf-8", "replace").strip(), secrets)
            if text:
                tail.append(text)


class LiveHub:
    """The live sources of one process, by camera and variant."""

    def __init__(self, config: Config | None, settings: LiveSettings | None = None) -> None:
        self.config = config
        self.applied = config  # the configuration the sources were last reconciled with (set_config)
        self.settings = settings or LiveSettings()
        self.sources: dict[tuple[str, str], LiveSource] = {}
        self.transcodes = 0

    def camera(self, camera_id: str) -> Camera | None:
        """The enabled camera of that id in the config, or None."""
        if self.config is None:
            return None
        return next((c for c in self.config.cameras if c.id == camera_id and c.enabled), None)

    def source(self, camera_id: str, variant: str = "main") -> LiveSource:
        """The source of a camera stream (made on first use); KeyError for an unknown camera or variant."""
        camera = self.camera(camera_id)
        if camera is None or variant not in VARIANTS:
            raise KeyError(camera_id)
        if variant == "sub" and not camera.sub_stream:
            variant = "main"  # no sub-stream: the main one (a second upstream of the same stream is pointless)
        key = (camera_id, variant)
        if key not in self.sources:
            self.sources[key] = LiveSource(camera=camera, variant=variant, hub=self)
        return self.sources[key]

    def subscribe(self, camera_id: str, variant: str = "main") -> Viewer:
        """A new viewer of a camera stream (starts its upstream if needed). Call in the event loop."""
        source = self.source(camera_id, variant)
        viewer = Viewer(source, self.settings.queue_fragments, self.settings.queue_bytes, self.settings.queue_age_s)
        source.add(viewer)
        return viewer

    def unsubscribe(self, viewer: Viewer) -> None:
        """The viewer is gone; its upstream stops ``linger_s`` after the last one."""
        viewer.source.remove(viewer)

    def set_config(self, config: Config | None) -> None:
        """Follow a new camera configuration (a pushed one): sources whose camera's stream changed reconnect to the
        new URL (:meth:`LiveSource.reconfigure`); those whose camera was removed or disabled stop, their viewers
        ended (:meth:`LiveSource.retire`), and are dropped so that a later viewer gets a fresh source. Call in the
        event loop."""
        self.config = self.applied = config
        for key, source in list(self.sources.items()):
            camera = self.camera(key[0])
            if camera is None:
                del self.sources[key]
                source.retire("the camera was removed from the configuration or disabled")
            else:
                source.reconfigure(camera)

    def info(self, camera_id: str, variant: str = "main") -> dict[str, Any]:
        """State of a camera stream (``idle`` when nobody watches)."""
        return self.source(camera_id, variant).info()

    def set_preload(self, wanted: list[tuple[str, str]]) -> list[str]:
        """Keep exactly these ``(camera_id, variant)`` streams running without viewers: the first ``preload_max``
        known ones, in the order given (unknown or disabled cameras are skipped); the others stop ``linger_s``
        after their last viewer. Returns the keys (``camera/variant``) now preloaded. Call in the event loop."""
        chosen: dict[str, LiveSource] = {}
        for camera_id, variant in wanted:
            if len(chosen) >= self.settings.preload_max:
                break
            try:
                source = self.source(camera_id, variant)
            except KeyError:
                continue
            chosen.setdefault(source.key, source)
        for source in list(self.sources.values()):
            if source.preloaded and source.key not in chosen:
                source.set_preloaded(False)
        for source in chosen.values():
            if not source.preloaded:
                source.set_preloaded(True)
        return list(chosen)

    def preloaded(self) -> list[str]:
        """Keys (``camera/variant``) of the streams kept running without viewers."""
        return [s.key for s in self.sources.values() if s.preloaded]

    def upstream_pids(self) -> list[int]:
        """PIDs of the running upstream ffmpeg processes."""
        return [s.pid for s in self.sources.values() if s.pid is not None]

    async def close(self) -> None:
        """Stop every upstream (preloaded ones too)."""
        for source in self.sources.values():
            source.preloaded = False
        await asyncio.gather(*(s.stop() for s in self.sources.values()), return_exceptions=True)
