"""Per-camera health in Redis, written by the capture workers and read by the API.

Key layout (all values are strings; times are UTC epoch seconds):

- ``cctv:health:cameras`` (set): ids of every camera that has reported health.
- ``cctv:health:<camera_id>`` (hash), rewritten about once a second by the worker that owns the camera:

  ========================  ==================================================================================
  ``status``                ``connecting`` | ``online`` | ``reconnecting`` | ``offline`` | ``stopped``
  ``status_since``          when ``status`` last changed
  ``last_frame_time``       when the last analysis frame was decoded (0 if never)
  ``input_fps``             frames per second arriving from the camera (measured)
  ``analysed_fps``          frames per second sampled and published for analysis (measured)
  ``dropped_frames``        frames dropped by the frame bus because the analytics side was behind
  ``published_frames``      frames handed to the frame bus
  ``reconnects``            reconnection attempts since the worker started
  ``last_error``            last error, credentials redacted (``rtsp://user:***@host``), '' if none
  ``last_error_time``       when ``last_error`` happened
  ``recording``             ``on`` while segments are being written, ``failed`` while they cannot be (a full
                            disk: analysis goes on without recording, recording is retried with backoff), else
                            ``off`` (or ``disabled``)
  ``recording_error``       why recording failed, no path (``disk full (No space left on device)``); cleared
                            when a segment is indexed again
  ``recording_error_time``  when recording last failed (0 if never)
  ``last_segment_end``      end time of the last recording segment indexed
  ``snapshot_errors``       failed writes of the camera's latest snapshot (``snapshots/<camera>/latest.jpg``)
  ``snapshot_error``        the last one: that relative path and the cause, '' if none
  ``snapshot_error_time``   when it happened (0 if never)
  ``url``                   the analysis URL, credentials redacted
  ``decode``                analysis decode: ``keyframes`` (keyframes only) or ``all`` (every frame)
  ``decode_reason``         why: the measured keyframe interval against ``analysis_fps`` (or the setting)
  ``keyframe_interval_s``   seconds between the stream's keyframes, measured at connection ('' if not measured)
  ``analysis_size``         ``WxH`` of the latest analysis frame: follows the stream's resolution when it changes
                            mid-stream (fitted into ``ingest.max_width``, aspect ratio kept); '' before the first
  ``analysis_rate_note``    '' unless the camera sends fewer frames than ``analysis_fps`` (each frame is then analysed
                            once, none repeated: ``analysed_fps`` is the camera's rate)
  ``worker_pid``            process id of the capture worker
  ``worker``                multi-host (``--role worker``): id of the worker holding the camera's lease
  ``host``                  multi-host: host name of that worker
  ``lease_token``           multi-host: the fencing token of that lease (grows at every hand-over)
  ``updated_at``            when this hash was written
  ========================  ==================================================================================

:func:`read_camera_health` returns these hashes as dicts with numbers parsed and a ``stale`` flag (``updated_at``
older than :data:`STALE_AFTER_S`, i.e. the worker is gone or hung). Its text fields pass through
:func:`pipeline.secrets.redact_text` once more on the way out (with the reader's registered secrets), so a hash
written by an older worker cannot put a credential in an API response.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from pipeline.secrets import redact_text

logger = logging.getLogger(__name__)

CAMERAS_KEY = "cctv:health:cameras"
STALE_AFTER_S = 15.0
RECONNECT_GRACE_S = 20.0
"""A camera whose last frame is less than this old (seconds since ``last_frame_time``, or ``last_segment_end`` when
later: a record-only camera decodes no frame) still counts as online in
:func:`camera_state` whatever its status says (``reconnecting``, ``offline`` after three refused connections,
``connecting``), unless the camera refused the login: a stream that drops and comes back within a few back-off
steps is not an outage."""
CAMERA_STATES = ("online", "offline", "stale", "unknown")
GRACED_STATUSES = frozenset({"reconnecting", "offline", "connecting"})
"""Statuses :data:`RECONNECT_GRACE_S` applies to (not ``stopped`` or ``disabled``: nobody is trying to reconnect)."""
RECORDING_STATES = ("recording", "failed", "disabled", "unknown")
# what the capture worker writes as ``last_error`` when the camera refused the login (AUTH_FAILED_MESSAGE, 403)
_AUTH_ERROR = re.compile(r"^(401 Unauthorized|403 Forbidden)\b")
_FLOAT_FIELDS = ("status_since", "last_frame_time", "input_fps", "analysed_fps", "last_error_time",
                 "last_segment_end", "updated_at", "keyframe_interval_s", "recording_error_time",
                 "snapshot_error_time")  # fmt: skip
_INT_FIELDS = ("dropped_frames", "published_frames", "reconnects", "worker_pid", "lease_token", "snapshot_errors")
_TEXT_FIELDS = ("last_error", "url", "recording_error", "snapshot_error")


def health_key(camera_id: str) -> str:
    """Redis key of one camera's health hash."""
    return f"cctv:health:{camera_id}"


def write_camera_health(client: Any, camera_id: str, fields: dict[str, Any]) -> None:
    """Write (merge) health fields of a camera; values are stringified, ``updated_at`` is set to now."""
    mapping = {k: ("" if v is None else str(v)) for k, v in fields.items()}
    mapping["updated_at"] = f"{time.time():.3f}"
    pipe = client.pipeline()
    pipe.sadd(CAMERAS_KEY, camera_id)
    pipe.hset(health_key(camera_id), mapping=mapping)
    pipe.execute()


def read_camera_health(client: Any, camera_id: str | None = None) -> list[dict[str, Any]]:
    """Health of one camera (``camera_id``) or of every camera (``None``), sorted by id.

    Each dict has ``camera_id``, the fields of the module docstring (numbers parsed) and ``stale``. A camera
    that never reported is absent from the list.
    """
    if camera_id is not None:
        ids = [camera_id]
    else:
        ids = sorted(_decode(m) for m in client.smembers(CAMERAS_KEY))
    pipe = client.pipeline()
    for cam in ids:
        pipe.hgetall(health_key(cam))
    now = time.time()
    out: list[dict[str, Any]] = []
    for cam, raw in zip(ids, pipe.execute(), strict=True):
        if not raw:
            continue
        record: dict[str, Any] = {"camera_id": cam}
        for key, value in raw.items():
            record[_decode(key)] = _decode(value)
        for name in _FLOAT_FIELDS:
            record[name] = _to_number(record.get(name), float)
        for name in _INT_FIELDS:
            record[name] = _to_number(record.get(name), int)
        for name in _TEXT_FIELDS:
            if record.get(name):
                record[name] = redact_text(record[name])
        record["stale"] = record["updated_at"] is None or now - record["updated_at"] > STALE_AFTER_S
        out.append(record)
    return out


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _to_number(value: str | None, kind: type) -> float | int | None:
    if value in (None, ""):
        return None
    try:
        return kind(float(value)) if kind is int else kind(value)
    except ValueError:
        return None


def camera_state(record: dict[str, Any] | None, now: float | None = None) -> str:
    """The one rule for whether a camera is up, shared by the health route and the Prometheus gauge: ``unknown``
    (never reported), ``stale`` (its worker stopped writing), ``online`` (status ``online``, or a camera trying to
    get its stream back, status ``reconnecting``, ``offline`` or ``connecting``, whose last frame, or the end of its
    last recorded segment for a record-only camera, is less than :data:`RECONNECT_GRACE_S` old, unless the camera
    refused the login) or ``offline`` (anything else: a camera
    never online, down for longer than the grace, refusing the login, ``stopped``)."""
    if record is None:
        return "unknown"
    if record.get("stale"):
        return "stale"
    status = str(record.get("status") or "").lower()
    if status == "online":
        return "online"
    if status in GRACED_STATUSES and _frame_within_grace(record, now) and not _login_refused(record):
        return "online"
    return "offline"


def _last_alive(record: dict[str, Any]) -> float:
    """When the stream last delivered: its last analysis frame, or the end of its last indexed segment (a
    record-only camera decodes no frame); 0 if never."""
    times = [t for t in (record.get("last_frame_time"), record.get("last_segment_end")) if isinstance(t, (int, float))]
    return max(times, default=0.0)


def _frame_within_grace(record: dict[str, Any], now: float | None) -> bool:
    """Whether the camera delivered less than :data:`RECONNECT_GRACE_S` ago (never: False)."""
    last_alive = _last_alive(record)
    return last_alive > 0 and (time.time() if now is None else now) - last_alive < RECONNECT_GRACE_S


def _login_refused(record: dict[str, Any]) -> bool:
    """Whether the camera's latest error, after it last delivered, is a refused login (401 / 403): no outage to wait
    out, its credentials are wrong or its account is locked."""
    if not _AUTH_ERROR.match(str(record.get("last_error") or "")):
        return False
    error_time = record.get("last_error_time")
    return not isinstance(error_time, (int, float)) or error_time >= _last_alive(record)


def recording_state(record: dict[str, Any] | None, enabled: bool = True) -> str:
    """The one rule for whether a camera records, shared by the health route and the Prometheus gauge:
    ``disabled`` (recording off in the configuration, ``enabled`` False, or the hash says ``disabled``),
    ``unknown`` (no report, a stale one, or no ``recording`` field), ``failed`` (the worker cannot write segments,
    a full disk: ``recording_error`` says why) or ``recording`` (``on``, or ``off`` before the first segment)."""
    if not enabled:
        return "disabled"
    if record is None or record.get("stale"):
        return "unknown"
    recording = str(record.get("recording") or "").lower()
    if recording == "disabled":
        return "disabled"
    if not recording:
        return "unknown"
    return "failed" if recording == "failed" else "recording"
