"""Capture worker process: one thread per camera stream (each driving its own ffmpeg) plus a health thread.

Started by the supervisor (:mod:`pipeline.service`) with :func:`run_capture_worker`; a camera's problems stay in
its thread (and its ffmpeg process), so no other camera is disturbed. The health hash is written every
:data:`HEALTH_PERIOD_S`, and at once when a camera's status changes (a camera shows ``online`` as soon as its first
frame or packets came, which is what a hand-over between worker hosts waits for). A camera whose previous capture
(a restart, or another worker host before a hand-over) measured its keyframe interval on the same URL starts with
that value from its health hash instead of measuring again (seconds of ``ffprobe`` before the first frame).
Which sessions a camera gets:

- no ``sub_stream``: one ffmpeg on ``url`` both records (stream copy) and decodes for analysis;
- ``sub_stream``: one ffmpeg decodes the sub-stream for analysis, another records the main stream;
- analytics off (``plates`` and ``faces`` false): recording only; recording disabled: analysis only.

On a worker host the stop event is a :class:`~pipeline.ingest.framebus.LeaseFlag`: it holds the camera lease's
token and deadline (renewed by the supervisor's lease keeper) and counts as set once the deadline passes, so the
capture fences itself even when its supervisor is frozen or cut off. Once stopped, a watchdog thread
(:func:`stop_ffmpeg_on_stop`) ends every ffmpeg within :data:`~pipeline.ingest.capture.FFMPEG_STOP_GRACE_S` (its one
SIGINT, shared with the capture's own graceful stop, so that it writes its last segment's trailer; SIGKILL only if it
has not exited by then), whatever the capture threads are blocked on; health is not written any more once the lease
has passed, and while it holds,
health and segment index writes carry its token, so Redis refuses them after a hand-over.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import redis

from pipeline.config import Camera, IngestConfig
from pipeline.ingest.capture import FFMPEG_STOP_GRACE_S, CameraCapture, CameraState
from pipeline.ingest.framebus import LeaseFlag
from pipeline.ingest.health import CAMERAS_KEY, health_key, read_camera_health, write_camera_health
from pipeline.recording.index import is_fenced
from pipeline.recording.recorder import SegmentFinalizer
from pipeline.secrets import install_log_redaction, redact_url
from pipeline.store.connection import fail_fast, redis_client

logger = logging.getLogger(__name__)

HEALTH_PERIOD_S = 1.0
CAPTURE_REDIS_TIMEOUT_S = 1.0
"""The longest a capture process's Redis call (health, segment index) may wait."""
_FENCED_HEALTH = """
-- KEYS: cameras set, health hash, fence; ARGV: camera, field, value, ..., token, capture time
redis.call('SADD', KEYS[1], ARGV[1])
for i = 2, #ARGV - 2, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
"""


def camera_is_analysed(camera: Camera) -> bool:
    """Whether any analytics run on this camera."""
    return camera.analytics.plates or camera.analytics.faces


def build_captures(
    camera: Camera,
    ingest: IngestConfig,
    state: CameraState,
    stop_event: Any,
    bus: Any,
    client: Any,
    recordings_dir: Path,
) -> list[CameraCapture]:
    """The capture sessions of one camera (see the module docstring)."""
    analysed = camera_is_analysed(camera) and bus is not None
    recorded = camera.recording.enabled
    lease = stop_event if isinstance(stop_event, LeaseFlag) else None
    finalizer = SegmentFinalizer(client, recordings_dir, camera.id, lease=lease) if recorded else None
    common = {"camera": camera, "ingest": ingest, "state": state, "stop_event": stop_event}
    if camera.sub_stream and analysed and recorded:
        return [
            CameraCapture(**common, url=camera.sub_stream, bus=bus, recordings_dir=recordings_dir),
            CameraCapture(**common, url=camera.url, finalizer=finalizer, recordings_dir=recordings_dir, primary=False),
        ]
    url = camera.analysis_url if analysed and not recorded else camera.url
    return [CameraCapture(**common, url=url, bus=bus if analysed else None, finalizer=finalizer,
                          recordings_dir=recordings_dir)]  # fmt: skip


def run_capture_worker(
    cameras: list[Camera],
    ingest: IngestConfig,
    bus: Any,
    stop_event: Any,
    redis_url: str,
    recordings_dir: str | Path,
    log_level: int = logging.INFO,
) -> None:
    """Process entry: capture ``cameras`` until ``stop_event`` is set, writing health to Redis every second."""
    install_log_redaction()  # this process expands the secrets: none of its log lines may print one
    if not logging.getLogger().handlers:
        logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops us through stop_event
    # short timeouts, no retries inside redis-py: a segment's index write runs on the capture's reading path, and a
    # primary that hangs must cost it a second (the segment stays pending, indexed later), never a stall restart
    client = redis_client(redis_url, **fail_fast(CAPTURE_REDIS_TIMEOUT_S))
    recordings_dir = Path(recordings_dir)
    _reclaim_dead_writers(bus)
    states = {cam.id: CameraState(cam.id, cam.analysis_url if camera_is_analysed(cam) else cam.url) for cam in cameras}
    for cam in cameras:
        if not cam.recording.enabled:
            states[cam.id].recording = "disabled"
    changed = threading.Event()
    for state in states.values():
        state.changed = changed
    captures = [c for cam in cameras for c in build_captures(cam, ingest, states[cam.id], stop_event, bus, client,
                                                             recordings_dir)]  # fmt: skip
    _reuse_keyframe_intervals(client, captures)
    threads = [threading.Thread(target=c.run, name=f"capture-{c.camera.id}", daemon=True) for c in captures]
    for thread in threads:
        thread.start()
    threading.Thread(target=stop_ffmpeg_on_stop, args=(stop_event, captures, threads), name="ffmpeg-stop",
                     daemon=True).start()  # fmt: skip
    logger.info("capture worker %d: %d cameras, %d streams", os.getpid(), len(cameras), len(captures))
    try:
        while not stop_event.is_set():
            try:
                _write_health(client, states, bus, captures, stop_event)
            except Exception:  # the health thread must never take the cameras down with it
                logger.exception("health update failed")
            _wait_for_health(stop_event, changed)
    finally:
        for thread in threads:
            thread.join(timeout=15)
        _write_health(client, states, bus, captures, stop_event)
        if bus is not None:
            bus.close()
        client.close()


def stop_ffmpeg_on_stop(stop_event: Any, captures: list[CameraCapture], threads: list[threading.Thread],
                        grace_s: float = FFMPEG_STOP_GRACE_S) -> None:  # fmt: skip
    """Thread: once ``stop_event`` is set (a stop, or the lease's deadline), stop every capture's ffmpeg the graceful
    way (:meth:`~pipeline.ingest.capture.CameraCapture.stop_ffmpeg`: one SIGINT, it closes and lists its segment)
    and SIGKILL it ``grace_s`` later if it is still running, until the capture threads have ended; independent of
    the capture threads, which may be blocked on an unreachable Redis."""
    while not stop_event.wait(0.1):
        pass
    while any(thread.is_alive() for thread in threads):
        for capture in captures:
            capture.stop_ffmpeg(grace_s)
        time.sleep(0.1)


def _reclaim_dead_writers(bus: Any) -> None:
    """Free the frame-bus slots a killed capture process left mid-copy (e.g. the one this worker replaces)."""
    if bus is None:  # record-only: no frame bus
        return
    reclaimed = bus.reclaim_dead_writers()
    if reclaimed:
        logger.warning("capture worker %d: %d frame-bus slots left by a dead writer freed", os.getpid(), reclaimed)


def _wait_for_health(stop_event: Any, changed: threading.Event) -> None:
    """Until the next health write: :data:`HEALTH_PERIOD_S`, or sooner on a status change or the stop event."""
    deadline = time.monotonic() + HEALTH_PERIOD_S
    while not stop_event.is_set() and not changed.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            break
    changed.clear()


def _reuse_keyframe_intervals(client: Any, captures: list[CameraCapture]) -> None:
    """Give analysed captures the keyframe interval their camera's health holds from an earlier capture of the
    same URL (see the module docstring); Redis errors only mean measuring again."""
    for capture in captures:
        if capture.bus is None or capture.camera.decode == "all":
            continue
        try:
            health = read_camera_health(client, capture.camera.id)
        except (redis.RedisError, OSError) as exc:
            logger.debug("camera %s: earlier keyframe interval unreadable: %s", capture.camera.id, exc)
            continue
        if health and health[0].get("keyframe_interval_s") and health[0].get("url") == redact_url(capture.url):
            capture.keyframe_interval_s = float(health[0]["keyframe_interval_s"])
            logger.info("camera %s: keyframe interval %.2f s as measured by its previous capture", capture.camera.id,
                        capture.keyframe_interval_s)  # fmt: skip


def _write_health(client: Any, states: dict[str, CameraState], bus: Any, captures: list[CameraCapture],
                  stop_event: Any = None) -> None:  # fmt: skip
    for capture in captures:
        if capture.finalizer is not None and capture.finalizer.pending:
            capture.finalizer.flush()
    lease = stop_event if isinstance(stop_event, LeaseFlag) else None
    if lease is not None and lease.expired():  # the camera may be another worker's by now: its health is theirs
        return
    for camera_id, state in states.items():
        fields = state.health_fields()
        if bus is not None and camera_id in bus.camera_ids:
            fields["dropped_frames"] = bus.dropped(camera_id)
        try:
            if lease is not None and lease.token:
                write_fenced_health(client, camera_id, fields, lease.token)
            else:
                write_camera_health(client, camera_id, fields)
        except redis.RedisError as exc:
            if is_fenced(exc):
                logger.info("health of %s not written: the lease was handed over (%s)", camera_id, exc)
                continue
            logger.warning("cannot write health of %s to Redis: %s", camera_id, exc)
            return


def write_fenced_health(client: Any, camera_id: str, fields: dict[str, Any], token: int) -> None:
    """:func:`~pipeline.ingest.health.write_camera_health` under the lease ``token``: Redis refuses it (a
    ``FENCED`` error) once another lease of the camera was handed out (the fence of :mod:`pipeline.cluster.fencing`)."""
    from pipeline.cluster.fencing import fenced_source
    from pipeline.cluster.leases import fence_key

    now = time.time()
    mapping = {k: ("" if v is None else str(v)) for k, v in fields.items()} | {"updated_at": f"{now:.3f}"}
    args: list[Any] = [camera_id, *(item for pair in mapping.items() for item in pair), int(token), repr(now)]
    script = client.register_script(fenced_source(_FENCED_HEALTH))
    script(keys=[CAMERAS_KEY, health_key(camera_id), fence_key(camera_id)], args=args)


class CaptureWorkerProcess:
    """A capture worker in a child process (for the supervisor, the tests and the benchmarks)."""

    def __init__(
        self, cameras: list[Camera], ingest: IngestConfig, bus: Any, redis_url: str, recordings_dir: str | Path,
        stop_event: Any = None, name: str = "capture",
    ) -> None:  # fmt: skip
        from pipeline.ingest.framebus import MP_CONTEXT, StopFlag

        self.stop_event = stop_event if stop_event is not None else StopFlag()
        self.process = MP_CONTEXT.Process(
            target=run_capture_worker,
            args=(cameras, ingest, bus, self.stop_event, redis_url, str(recordings_dir), logging.getLogger().level),
            name=name,
            daemon=False,
        )

    def start(self) -> CaptureWorkerProcess:
        """Start the child process."""
        self.process.start()
        return self

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """Set the stop event, wait for a clean exit, kill after ``timeout_s``; return the exit code."""
        self.stop_event.set()
        self.process.join(timeout_s)
        if self.process.is_alive():
            logger.warning("capture worker %s did not stop in %.0fs; killing it", self.process.pid, timeout_s)
            self.process.kill()
            self.process.join(5)
        return self.process.exitcode
