"""cameras.yaml: strict pydantic models, checked once at start-up.

Errors name the YAML key path and the line, e.g.::

    cameras.yaml:14: cameras[1].analysis_fps: Input should be less than or equal to 30 (got 90)

Credentials belong in the environment: a URL references a variable (``${CAM3_PASSWORD}``) that is expanded,
percent-encoded, only when the stream is opened (see :mod:`pipeline.secrets`). :meth:`Config.warnings` lists what
``check-config`` warns about without failing: unset variables, a password written in clear, a user-info that
URL parsers would cut differently from what its author meant.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline.secrets import MASK, redact_text, redact_url, referenced_variables, url_warnings

CAMERA_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
RESERVED_CAMERA_IDS = frozenset({"exports", "snapshots", "cache"})  # folder names under the recordings dir
STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https", "file")
URL_FIELDS = frozenset({"url", "sub_stream"})
# what URL parsers and ffmpeg take for a protocol: "name:", and ffmpeg's "subfile,options:" form
_SCHEME_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)(?::|,.*:)")
# a URL whose ":" is missing (``rtsp//host``; ``rtsp:/host`` is refused by the config's validation already)
_MISTYPED_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{1,15})//")


def _is_number_field(annotation: Any) -> bool:
    """Whether a field's type is a number (``int``, ``float`` or either of them or None)."""
    return any(arg in (int, float) for arg in (get_args(annotation) or (annotation,)))


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, and so are values YAML built with a type no key
    takes as it is (a yes/no where a number is expected: ``retention_days: yes`` is not one day; ``!!binary``)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_number_or_bytes(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bytes):
            raise ValueError("a !!binary value is not text")
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and _is_number_field(field.annotation):
            raise ValueError("a number is expected, not a yes/no value")
        return value


def check_stream_url(url: str) -> str:
    """Validate a stream URL: rtsp(s), http(s), ``file://`` or a plain file path; host required for network ones."""
    if not url.strip():
        raise ValueError("stream URL is empty")
    if any(ord(char) < 32 or ord(char) == 127 for char in url):
        raise ValueError("the URL holds a control character (a line break, a tab): write it on one line")
    if "://" not in url:
        return _check_file_path(url)
    parts = urlsplit(url)
    if parts.scheme not in STREAM_SCHEMES:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r}; expected one of {', '.join(STREAM_SCHEMES)}")
    if parts.scheme != "file" and not parts.hostname:
        raise ValueError("URL has no host")
    try:
        _ = parts.port
    except ValueError:
        # the parser's message would echo what it took for a port: part of a password holding '/', '?' or '#'
        raise ValueError("bad port in URL (a password holding '/', '?' or '#' must be written percent-encoded, "
                         "or put in an environment variable)") from None
    return url  # a password written in clear is a warning (Config.warnings): percent-encoded, it works


def stream_path_warning(url: str) -> str | None:
    """What ``check-config`` says about a stream that is a local file (a plain path or a ``file://`` URL) that does
    not exist (relative paths from the current directory, as the service opens them): most often a mistyped network
    URL (``htp//host``, ``rtsp:host``) taken for a file name. Never echoes the text (it may hold a password); a
    path built from environment variables is not judged."""
    if "://" in url and not url.lower().startswith("file://"):
        return None
    path = unquote(urlsplit(url).path) if "://" in url else url
    if referenced_variables(url):  # the rest is unknown here, but the text before the first variable is not
        if "://" not in url and (match := _MISTYPED_SCHEME.match(url.split("${", 1)[0])) is not None:
            known = match.group(1).lower()
            what = f"'{known}'" if known in STREAM_SCHEMES else "a URL scheme"
            return (f"the stream starts with {what} and '//' but no ':' (a mistyped URL?): "
                    "it would be opened as a local file; write " + (f"{known}://" if known in STREAM_SCHEMES else
                    " or ".join(s + "://" for s in STREAM_SCHEMES)))  # fmt: skip
        return None
    if Path(path).exists():
        return None
    return (f"no file of this name exists (relative to the current directory): a stream is a URL starting with "
            f"{', '.join(s + '://' for s in STREAM_SCHEMES)} or an existing file; a mistyped URL?")


def _check_file_path(path: str) -> str:
    """A local file path (tests, replays); refused when it starts like a URL (``rtsp:/host``, ``concat:``,
    ``pipe:``): ffmpeg would read that as a protocol, and a password in it would escape redaction."""
    match = _SCHEME_PREFIX.match(path)
    if match is None:
        return path
    scheme = match.group(1).lower()
    if scheme in STREAM_SCHEMES:
        raise ValueError(f"'{scheme}:' is not followed by '//': write {scheme}://host/...")
    raise ValueError(f"unsupported URL scheme {scheme!r}; expected one of {', '.join(STREAM_SCHEMES)} "
                     "(a local file named like this: write ./ before it)")


def check_path_text(path: str) -> str:
    """A file or folder path of the config (a model, the spool): refused when it holds a NUL or another control
    character (no model file is named so; a NUL would cut the path short, a line break would forge log lines).
    Where it points stays the operator's choice."""
    bad = next((char for char in path if unicodedata.category(char) == "Cc"), None)
    if bad is not None:
        name = "a NUL" if bad == "\0" else f"a control character (U+{ord(bad):04X})"
        raise ValueError(f"the path holds {name}: write the file's real name on one line")
    return path


StreamUrl = Annotated[str, Field(min_length=1, max_length=2048)]


class Location(StrictModel):
    """Where a camera is."""

    description: str = Field(default="", max_length=200, description="Free text, e.g. 'Sukhumvit Soi 21 junction'.")
    lat: float | None = Field(default=None, ge=-90, le=90, description="Latitude in degrees (WGS84).")
    lon: float | None = Field(default=None, ge=-180, le=180, description="Longitude in degrees (WGS84).")

    @model_validator(mode="after")
    def _lat_lon_together(self) -> Location:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon must be given together")
        return self


class Analytics(StrictModel):
    """Which analytics run on a camera."""

    plates: bool = Field(default=True, description="Detect vehicles and read Thai licence plates.")
    faces: bool = Field(default=False, description="Detect and embed faces of people.")


class Zone(StrictModel):
    """A polygon, in coordinates normalised to the frame (0..1), where analytics apply."""

    name: str = Field(min_length=1, max_length=64, description="Zone name.")
    points: list[tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]]] = Field(
        min_length=3, max_length=64, description="Polygon vertices [x, y], each in 0..1 of frame width/height."
    )


class Recording(StrictModel):
    """Continuous recording of a camera's main stream (stream copy, no re-encoding)."""

    enabled: bool = Field(default=True, description="Record continuously.")
    retention_days: int = Field(default=7, ge=1, le=3650, description="Days of recordings kept for this camera.")


class Camera(StrictModel):
    """One camera."""

    id: str = Field(pattern=CAMERA_ID_PATTERN, description="Unique id: lower-case letters, digits, '-' and '_'.")
    name: str = Field(min_length=1, max_length=120, description="Display name shown to operators.")
    url: StreamUrl = Field(description="Main stream (recording; also analysis unless sub_stream is given).")
    sub_stream: StreamUrl | None = Field(default=None, description="Lower-resolution stream used for analysis.")
    enabled: bool = Field(default=True, description="Whether the camera is ingested at all.")
    location: Location = Field(default_factory=Location, description="Where the camera is.")
    analytics: Analytics = Field(default_factory=Analytics, description="Which analytics run.")
    analysis_fps: float = Field(default=5.0, gt=0, le=30, description="Frames per second sampled for analysis.")
    analysis_width: int | None = Field(default=None, ge=160, le=7680, description="Analysis frames of this camera are downscaled to fit this width (at most ingest.max_width, the frame bus slot); default ingest.max_width.")
    decode: Literal["auto", "keyframes", "all"] = Field(default="auto", description="Analysis decode: keyframes = decode only keyframes (ffmpeg -skip_frame nokey) when the keyframe interval measured at connection fits analysis_fps (within ingest.keyframe_tolerance), else every frame, said in a log line and in the health's decode_reason; auto = the same, measured only when analysis_fps is low enough for a plausible keyframe interval (0.5 s or more); all = decode every frame. Recording is never affected (stream copy).")
    zones: list[Zone] = Field(default_factory=list, max_length=32, description="Analytics apply only inside these.")
    recording: Recording = Field(default_factory=Recording, description="Continuous recording settings.")

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_CAMERA_IDS:
            raise ValueError(f"camera id {value!r} is reserved (a folder of the recordings dir)")
        return value

    @field_validator("url", "sub_stream")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        return None if value is None else check_stream_url(value)

    @property
    def analysis_url(self) -> str:
        """The stream decoded for analytics."""
        return self.sub_stream or self.url


class IngestConfig(StrictModel):
    """How streams are pulled and decoded."""

    stall_timeout_s: float = Field(default=10.0, ge=1, le=300, description="No frame for this long = stalled.")
    connect_timeout_s: float = Field(default=10.0, ge=1, le=120, description="Time allowed to open a stream.")
    backoff_initial_s: float = Field(default=1.0, ge=0.1, le=60, description="First reconnect delay.")
    backoff_max_s: float = Field(default=30.0, ge=1, le=600, description="Cap of the exponential reconnect delay.")
    queue_size: int = Field(default=4, ge=1, le=64, description="Frames waiting per camera before the oldest drops.")
    freshest_when_full: bool = Field(default=True, description="When the engine has fallen behind a camera (its queue_size frames waiting, or waiting frames spanning freshest_lag_s), it takes that camera's newest frame and drops the older waiting ones (counted as dropped): an overloaded server analyses each camera's latest picture instead of one several frame intervals old (event latency). Off: always the oldest first.")
    freshest_lag_s: float = Field(default=1.0, ge=0, le=60, description="Capture time spanned by a camera's waiting frames from which the engine counts as behind it (freshest_when_full); 0: only a full queue counts.")

    def bus_options(self) -> dict[str, Any]:
        """Keyword arguments of the frame bus (``FrameBus`` / ``LaneBus``) these settings ask for."""
        return {"queue_size": self.queue_size, "max_width": self.max_width,
                "freshest_when_full": self.freshest_when_full, "freshest_lag_s": self.freshest_lag_s}
    max_width: int = Field(default=1280, ge=160, le=7680, description="Analysis frames are downscaled to this width.")
    segment_seconds: int = Field(default=10, ge=2, le=60, description="Length of a recording segment.")
    recordings_quota_gb: float = Field(default=100.0, gt=0, le=100_000, description="Disk quota for recordings.")
    recordings_min_free_gb: float = Field(default=1.0, ge=0, le=100_000, description="Free space kept on the recordings filesystem: when less is free (other files, a disk smaller than the quota), retention deletes this host's oldest segments not under legal hold until this much is free again, whatever the quota; 0: the quota only.")
    cameras_per_worker: int = Field(default=8, ge=1, le=64, description="Cameras handled by one capture process.")
    keyframe_tolerance: float = Field(default=1.2, ge=1.0, le=4.0, description="Keyframe-only decode is used when the measured keyframe interval is at most this times 1/analysis_fps (a little fewer frames than asked).")
    keyframe_probe_s: float = Field(default=5.0, ge=1.0, le=30.0, description="Longest time spent measuring a stream's keyframe interval before its keyframe-only decode starts.")


class EngineConfig(StrictModel):
    """Batched inference and event publication."""

    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="Where models run.")
    max_batch_size: int = Field(default=8, ge=1, le=256, description="Largest batch gathered across cameras.")
    max_wait_ms: float = Field(default=50.0, ge=0, le=2000, description="Longest wait to fill a batch.")
    motion_threshold: float = Field(default=0.002, ge=0, le=1, description="Changed-pixel fraction that wakes up the detector.")
    detector_model: str = Field(default="yolo/yolov8n_int8.onnx", min_length=1, description="Vehicle/person detector, relative to the model dir.")
    plate_detector_model: str = Field(default="plate/license_plate_detector_int8.onnx", min_length=1, description="Plate detector, relative to the model dir.")
    model_precision: Literal["auto", "int8", "fp32", "int8-static"] = Field(default="auto", description="Variant of the int8 detectors: int8 (upstream arithmetic, bit-exact), fp32 (dequantised weights, ~1.7x faster on CPU, same plate recall, runs on CUDA), int8-static (int8 with activation ranges calibrated on the sample clips, detection head float: batches of plate windows ~1.5x faster than fp32 on a CPU with VNNI, boxes moved a little: one Thai scene photo of 11 lost) or auto (fp32).")
    detector_canvas: Literal["fit", "square"] = Field(default="fit", description="Input canvas of the vehicle/person detector: fit = each frame letterboxed to the smallest canvas (multiples of 32) that holds it, with the network's anchor grid rewritten for it (384x640 for 16:9 frames: about 40 % less detector time than the square, the same boxes; Ultralytics' own rect letterbox); square = the export's 640x640 for every frame.")
    detector_upscale: bool = Field(default=False, description="Enlarge frames smaller than the vehicle/person detector's input (640 px) to it, as Ultralytics does; off: such a frame (a small sub-stream, a photo) runs at its own size on a canvas that just holds it, never enlarged (on the 432x432 motorcycle photos: the same plate recall through the cascade, precision 0.879 -> 0.895, a fifth less cascade time per plate found). Frames of 640 px and more are not affected.")
    plate_canvas: Literal["fit", "square"] = Field(default="fit", description="Input canvas of the plate detector: fit = a search window (a vehicle crop, a tile, a whole frame) that fills at most 256 of the 320 px one way runs on 256x320 (or 320x256) with the network's anchor grid rewritten for it, the rest on the square (plate search per plate found 12-14 % faster on the OpenALPR and Thai motorcycle photos, the same plates found or one more); square = the export's 320x320 for every window.")
    runtime: Literal["auto", "onnxruntime", "openvino", "openvino-bf16", "torch", "torch-fp16"] = Field(default="auto", description="What runs the ONNX models: torch / torch-fp16 (the same ONNX files converted to PyTorch by onnx2torch, optional extra `pip install .[gpu]`, on the GPU with engine.device cuda where ONNX Runtime has no CUDA build; falls back to onnxruntime with a logged reason where it is not installed or cannot convert a model), onnxruntime, openvino (the OpenVINO runtime in f32, optional extra `pip install .[openvino]`; falls back to onnxruntime with a logged reason where it is not installed, the device is CUDA or it cannot compile a model), openvino-bf16 (OpenVINO in bfloat16 on CPUs with AMX, f32 elsewhere: about 3x faster detectors, boxes within IoU 0.9 but a plate read lost here and there) or auto (per model and kind of CPU the runtime measured fastest with the same answers by benchmarks.runtimes and the plate benchmarks: onnxruntime for every model on AVX2 CPUs; on CPUs with AMX openvino for the vehicle and plate detectors and the face embedder: identical outputs, 1.04-1.26x faster).")
    face_model_pack: str = Field(default="insightface/models/buffalo_s", min_length=1, description="InsightFace pack folder, relative to the model dir.")
    plate_reader: Literal["crnn", "easyocr"] = Field(default="crnn", description="Plate reader backend.")
    vehicle_confidence: float = Field(default=0.3, ge=0, le=1, description="Minimum vehicle detection score.")
    plate_confidence: float = Field(default=0.25, ge=0, le=1, description="Minimum plate detection score.")
    face_confidence: float = Field(default=0.5, ge=0, le=1, description="Minimum face detection score.")
    plate_rectification: bool = Field(default=True, description="Find each plate's four corners and its layout (car or motorcycle) between the plate detector and the reader, and read it warped upright (angled and rotated plates); off: the reader reads the detector's crop as cut.")
    plates_whole_frame: Literal["off", "window", "tiles"] = Field(default="window", description="On plate cameras, also search every analysed frame that has vehicles whole for plates outside all vehicle boxes (close-up motorcycles and cars the vehicle detector misses): window = one detector window (cheap, finds large plates), tiles = that window plus overlapping tiles (small plates too, several detector windows a frame), off = vehicle crops only.")
    plate_regrow: bool = Field(default=True, description="When the rectifier places a plate's corners beyond the plate detector's box (more than 5 % of the plate's width past its left or right side, or 10 % of its height past its top or bottom), the box cut the plate (the number of a plate whose series stands apart, a motorcycle plate's number line): the box is grown along the plate's own edges on the cut side, rectified and read again, and that read replaces the cut one when valid and more probable, or when it holds the cut read and more (needs plate_rectification).")
    plate_second_look: bool = Field(default=True, description="Search a vehicle crop (or a frame without vehicles) in which no plate was found again, turned by -25 and +25 degrees: plates rolled too far for the upright plate detector (dashcams, tilted cameras, angled mounts). Costs two more detector windows per miss; misses back off per track.")
    plate_search: Literal["coarse_first", "all_windows"] = Field(default="coarse_first", description="How the plate detector searches a vehicle crop larger than its tile (a close vehicle, a bus) and a whole frame searched in tiles (a frame without vehicles, a closer look): coarse_first = the whole crop or frame first, then all its overlapping tiles only where that look found no plate, one tile centred on the plate where it found one small (to sharpen its box), nothing more where it found one at least 64 input pixels wide (one or two detector windows instead of five or more for most close vehicles); all_windows = the whole crop and every tile in one call.")
    plates_closer_look: bool = Field(default=True, description="On plate cameras, when a frame's vehicles (and its whole-frame window, if it had one) showed no plate although there were vehicles to search, give the camera's next frame with vehicles a closer look: the whole frame searched in tiles (at most half the frame's longer side, 480 px for 960-wide frames), at most every 2 s per camera. Finds plates the vehicle boxes miss (night scenes, parked motorcycles) and plates too small for one window; off: never.")
    plates_without_vehicle: bool = Field(default=True, description="On plate cameras, search the whole frame for plates when the detector finds no vehicle (close-up gate views) and track those plates on their own.")
    person_tracks_for_faces: bool = Field(default=False, description="Also run the object detector on face-only cameras and attach faces to person tracks (steadier through head turns, one more detector pass per frame); off: faces are tracked by themselves.")
    face_search: Literal["frame", "person_boxes"] = Field(default="frame", description="Where the face detector looks on a frame whose persons the object detector found (face cameras with person_tracks_for_faces, or cameras that also read plates): frame = always the whole frame; person_boxes = the upper part of each person box, at the analysis frame's own resolution (faces of a 1280-wide frame seen twice as large as in the whole frame fitted to 640 px), with the whole frame searched when no person is found, when the regions would cost more than the whole frame, and at least once a second per camera. On the walkway and stage clips (3 fps, person tracks on) person_boxes found 1440 faces where the whole frame found 1470 and matched 79 of the every-frame reference's 125 face events against 94, for no face time saved (13.8 against 14.2 ms a frame): so frame is the default. Face-only cameras without person tracks always search the whole frame.")
    track_lost_s: float = Field(default=2.0, ge=0.1, le=60, description="A track unseen this long has ended.")
    publish_after_s: float = Field(default=10.0, ge=0.5, le=600, description="Publish a long track after this, then update it.")
    snapshot_retention_days: int = Field(default=30, ge=1, le=3650, description="Days snapshots and crops are kept.")
    watchlist_alert_cooldown_s: float = Field(default=300.0, ge=0.0, le=86_400.0, description="A watchlist plate entry alerts once per this many seconds for the same plate read on the same camera, a face entry once per person and camera (a vehicle whose track is lost and found again does not alert twice); another camera alerts at once; 0 alerts on every event.")
    events_maxlen: int = Field(default=1_000_000, ge=1000, le=100_000_000, description="Approximate max entries per event stream.")
    events_retention_days: int = Field(default=0, ge=0, le=3650, description="Delete plate and face events (records and every search index entry) older than this many days, hourly; 0 keeps them until events_maxlen trims the streams.")
    spool_max_mb: float = Field(default=256.0, gt=0, le=100_000, description="Local spool size while Redis is unreachable.")
    detector_keepalive_s: float = Field(default=2.0, ge=0.1, le=60, description="Run the detector at least this often per camera, even on static scenes.")
    min_track_hits: int = Field(default=2, ge=1, le=100, description="Detections a track needs before it can produce an event.")
    plate_reads_per_track: int = Field(default=8, ge=1, le=1000, description="Stop reading a vehicle's plate after this many agreeing reads.")
    plate_settle_reads: int = Field(default=3, ge=1, le=1000, description="A vehicle's plate is settled after this many agreeing reads when its vote and province are both at plate_settle_confidence or better; a settled plate is read again only when the vehicle's box grows by half (approaching), and the adaptive detection schedule may thin frames whose tracks are all settled.")
    plate_settle_confidence: float = Field(default=0.75, ge=0, le=1, description="Vote and province confidence a plate needs to count as settled (see plate_settle_reads).")
    detection_schedule: Literal["every_frame", "adaptive"] = Field(default="adaptive", description="adaptive: a moving frame skips the object detector (its tracks predicted by the tracker) while every track of the camera is settled and the motion stays inside them, at most settled_detect_interval_s; new motion, an empty scene, unsettled tracks and person or face tracks are always detected; a frame with vehicles is searched whole for plates (plates_whole_frame) at most every 2 s, and on every frame for 10 s after that search found a plate the vehicle crops did not. every_frame: every frame the motion gate passes is detected (and searched whole).")
    settled_detect_interval_s: float = Field(default=1.0, ge=0.1, le=30, description="With the adaptive schedule, the longest a camera whose tracks are all settled goes without the detector.")
    spool_dir: str = Field(default="var/spool", min_length=1, max_length=1024, description="Folder of the local event spool (relative to the project root unless absolute).")
    metrics_port: int = Field(default=9108, ge=0, le=65535, description="Prometheus endpoint port on 127.0.0.1 (0 disables it).")
    metrics_interval_s: float = Field(default=2.0, ge=0.5, le=60, description="How often engine metrics are written to Redis.")

    @field_validator("detector_model", "plate_detector_model", "face_model_pack", "spool_dir")
    @classmethod
    def _plain_path(cls, value: str) -> str:
        """Model and spool paths hold no NUL nor control character (see :func:`check_path_text`)."""
        return check_path_text(value)

    @field_validator("plates_whole_frame", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        """YAML 1.1 reads an unquoted ``off`` as False: take it as the ``off`` it was meant to be."""
        return "off" if value is False else value


class ClusterConfig(StrictModel):
    """Several worker hosts sharing the cameras (``pipeline run --role worker``; see pipeline.cluster)."""

    lease_ttl_s: float = Field(default=5.0, ge=1, le=120, description="A camera's lease lives this long unless its worker renews it; a dead worker's cameras are free after it (keep it above a Redis failover's duration with Sentinel).")
    renew_interval_s: float = Field(default=1.5, ge=0.1, le=60, description="How often a worker renews its leases and its heartbeat (at most a third of lease_ttl_s).")
    rebalance_interval_s: float = Field(default=10.0, ge=1, le=3600, description="A worker holding more than its fair share gives up at most one camera this often (bounded churn).")
    orphan_grace_s: float = Field(default=2.0, ge=0, le=120, description="A free camera no worker under its fair share took within this long is taken by any worker with a free slot.")
    config_poll_s: float = Field(default=2.0, ge=0.2, le=300, description="How often workers look for a new configuration version in Redis.")
    clock_warn_s: float = Field(default=2.0, gt=0, le=3600, description="A worker whose clock is further than this off the Redis server's (checked at start and every clock_check_s) logs an ERROR and shows in cluster status and /api/health (degraded).")
    clock_refuse_s: float = Field(default=30.0, gt=0, le=86400, description="A worker whose clock is further than this off the Redis server's takes no camera lease until it is right (a healthy host records the camera instead).")
    clock_check_s: float = Field(default=30.0, ge=1, le=3600, description="How often a worker checks its clock against Redis TIME.")

    @model_validator(mode="after")
    def _renew_often_enough(self) -> ClusterConfig:
        if self.renew_interval_s * 3 > self.lease_ttl_s:
            raise ValueError("renew_interval_s must be at most a third of lease_ttl_s")
        return self


WEBHOOK_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]{0,127}$"
SEVERITIES = ("low", "medium", "high", "critical")


class Webhook(StrictModel):
    """One outbound alert webhook (see :mod:`pipeline.notify.webhooks`): every alert that passes the filters is
    POSTed once, signed with the secret read from the environment variable ``secret_env``."""

    name: str = Field(pattern=WEBHOOK_NAME_PATTERN, description="Unique name (lower case, digits, _ and -): the "
                      "delivery state and the admin routes use it.")
    url: str = Field(min_length=8, max_length=2048, description="Where alerts are POSTed: https; http only with "
                     "allow_http, to a loopback or private address. A token in the query string is redacted in logs.")
    secret_env: str = Field(pattern=ENV_NAME_PATTERN, description="NAME of the environment variable holding the "
                            "signing secret (never the secret itself).")
    enabled: bool = Field(default=True, description="Deliver to this webhook.")
    min_severity: Literal["low", "medium", "high", "critical"] = Field(
        default="low", description="Only alerts of this severity or higher.")
    watchlists: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=1000, description="Only alerts of these watchlist ids (empty: any).")
    cameras: list[Annotated[str, Field(pattern=CAMERA_ID_PATTERN)]] = Field(
        default_factory=list, max_length=2000, description="Only alerts of these cameras (empty: any).")
    timeout_s: float = Field(default=10.0, ge=0.5, le=60, description="Longest wait of one delivery attempt.")
    max_attempts: int = Field(default=20, ge=1, le=1000, description="Attempts before the alert is a dead letter.")
    max_age_s: float = Field(default=86400.0, ge=10, le=7 * 86400, description="An alert not delivered within this "
                             "long of its first attempt is a dead letter.")
    backoff_initial_s: float = Field(default=5.0, ge=0.05, le=3600, description="Wait before the first retry; "
                                     "doubled after each failure.")
    backoff_max_s: float = Field(default=3600.0, ge=0.05, le=86400, description="Longest wait between attempts "
                                 "(a longer Retry-After is cut to it).")
    allow_http: bool = Field(default=False, description="Allow http:// to loopback and private addresses only.")
    allow_link_local: bool = Field(default=False, description="Allow addresses in 169.254.0.0/16, fe80::/10 and "
                                   "cloud metadata addresses (refused by default).")

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if any(ord(c) < 33 or ord(c) == 127 for c in url):
            raise ValueError("the URL holds a space or a control character")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an https:// (or, with allow_http, http://) URL with a host")
        if "@" in parts.netloc:
            raise ValueError("credentials in the URL are refused: the secret goes in secret_env")
        return url

    @model_validator(mode="after")
    def _check_policy(self) -> Webhook:
        if urlsplit(self.url).scheme == "http" and not self.allow_http:
            raise ValueError("http:// needs allow_http: true (and then only loopback or private addresses)")
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("backoff_initial_s must not exceed backoff_max_s")
        return self


class NotificationsConfig(StrictModel):
    """Outbound alert notifications."""

    webhooks: list[Webhook] = Field(default_factory=list, max_length=50, description="Alert webhooks.")

    @model_validator(mode="after")
    def _unique_names(self) -> NotificationsConfig:
        names = [w.name for w in self.webhooks]
        if len(names) != len(set(names)):
            raise ValueError(f"webhook names must be unique: {sorted({n for n in names if names.count(n) > 1})}")
        return self


class Config(StrictModel):
    """The whole cameras.yaml."""

    version: Literal[1] = Field(default=1, description="Schema version of this file.")
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="Stream ingest and recording.")
    engine: EngineConfig = Field(default_factory=EngineConfig, description="Analytics engine.")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description="Camera leases across worker hosts.")
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig,
                                               description="Outbound alert webhooks.")
    cameras: list[Camera] = Field(min_length=1, max_length=2000, description="The cameras.")
    _lines: dict[tuple[Any, ...], int] = PrivateAttr(default_factory=dict)

    def camera(self, camera_id: str) -> Camera:
        """Return the camera with this id or raise ``KeyError``."""
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(camera_id)

    def stream_urls(self) -> list[str]:
        """Every stream URL of the file (main and sub-streams), as written."""
        return [url for cam in self.cameras for url in (cam.url, cam.sub_stream) if url]

    def warnings(self, environ: Mapping[str, str] | None = None) -> list[ConfigIssue]:
        """Problems that do not stop the service, with key path and line: credentials (see
        :func:`pipeline.secrets.url_warnings`) and stream files that do not exist (:func:`stream_path_warning`), judged against ``environ`` (default: the process environment)."""
        out: list[ConfigIssue] = []
        for i, cam in enumerate(self.cameras):
            for key in ("url", "sub_stream"):
                url = getattr(cam, key)
                if url:
                    loc = ("cameras", i, key)
                    messages = [*url_warnings(url, environ), stream_path_warning(url)]
                    out += [ConfigIssue(_format_path(loc), _line_for(loc, self._lines), message)
                            for message in messages if message]  # fmt: skip
        return out


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file, located by key path and line."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "line ?"
        return f"{where}: {self.path or '<root>'}: {self.message}"


class ConfigError(ValueError):
    """A config file failed validation; ``issues`` lists every problem found."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        lines = "\n".join(f"  {source}:{i.line or '?'}: {i.path or '<root>'}: {i.message}" for i in issues)
        super().__init__(f"{source}: {len(issues)} error(s) in configuration\n{lines}")


def load_config(path: str | Path) -> Config:
    """Read and validate a cameras.yaml file; raise :class:`ConfigError` listing every problem."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(str(path), [ConfigIssue("", None, f"cannot read file: {exc.strerror}")]) from None
    _check_size(len(raw), str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(str(path), [ConfigIssue("", line, f"not UTF-8 text: {exc.reason} (byte {exc.start + 1}; "
                                                             "save the file as UTF-8)")]) from None
    return parse_config(text, source=str(path))


NON_SCALAR_KEY = "keys must be plain scalars, not a list or a mapping"
MAX_YAML_VALUES = 100_000
"""Most values a config file may hold once its aliases are expanded (a real one holds a few thousand): a file of a
few hundred bytes can otherwise name billions through nested anchors."""
MAX_CONFIG_BYTES = 2 * 1024 * 1024
"""Largest config file read (2000 cameras with zones take a few hundred KiB): the YAML library reads about 50 KiB a
second of dense YAML, so a bigger file would hold the start-up for minutes before any check could refuse it."""


def _check_size(size: int, source: str) -> None:
    """ConfigError when a file of ``size`` bytes is over :data:`MAX_CONFIG_BYTES`."""
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(source, [ConfigIssue("", None, f"the file is larger than {MAX_CONFIG_BYTES // 1024} KiB "
                                                         "(a configuration is a few hundred KiB at most)")])


def parse_config(text: str, source: str = "<string>") -> Config:
    """Validate YAML text; raise :class:`ConfigError` listing every problem with key path and line."""
    _check_size(len(text), source)  # characters: a quick bound, checked before any encoding work
    try:
        return _parse_config(text, source)
    except RecursionError:  # the YAML library and the checks walk the tree recursively
        raise ConfigError(source, [ConfigIssue("", None, "the YAML is nested too deeply")]) from None


def _parse_config(text: str, source: str) -> Config:
    root = _compose(text, source)
    if root is None:
        raise ConfigError(source, [ConfigIssue("", 1, "file is empty; expected a mapping with a 'cameras' list")])
    _check_aliases(root, source)
    lines: dict[tuple[Any, ...], int] = {}
    issues = list(_index_lines(root, (), lines))
    if any(i.message == NON_SCALAR_KEY for i in issues):  # the data cannot be built from such a tree
        raise ConfigError(source, issues)
    data = _construct(root, source)
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigIssue("", root.start_mark.line + 1, "top level must be a mapping")])
    issues += _duplicate_camera_ids(data.get("cameras"), lines)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        issues += [_issue_from_pydantic(err, lines) for err in exc.errors()]
        raise ConfigError(source, sorted(issues, key=lambda i: i.line or 0)) from None
    issues += _semantic_issues(config, lines)
    if issues:
        raise ConfigError(source, issues)
    config._lines = lines
    return config


def _yaml_line(exc: yaml.YAMLError, text: str | None = None) -> int | None:
    """The line an error of the YAML library points at (its problem mark, or a reader error's position)."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return mark.line + 1
    position = getattr(exc, "position", None)
    if text is not None and isinstance(position, int):
        return text.count("\n", 0, position) + 1
    return None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What the YAML library found wrong, without the snippet of the file it quotes (a camera URL's password)."""
    if isinstance(exc, yaml.reader.ReaderError):
        if isinstance(exc.character, bytes):
            return f"a byte is not valid {exc.encoding}"
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return f"character #x{code:04x} is not allowed in YAML"
    problem = getattr(exc, "problem", None)
    return problem if isinstance(problem, str) and problem else type(exc).__name__


class _CountingLoader(yaml.SafeLoader):
    """A safe loader that stops composing once the file holds more than :data:`MAX_YAML_VALUES` nodes (a dense
    file is refused after that many values, not after all of them)."""

    nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:  # type: ignore[override]
        """Compose one node, counting it."""
        self.nodes += 1
        if self.nodes > MAX_YAML_VALUES:
            mark = self.peek_event().start_mark
            raise _TooManyValues(mark.line + 1)
        return super().compose_node(parent, index)


class _TooManyValues(Exception):
    """Raised by :class:`_CountingLoader` with the line it stopped at."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _compose(text: str, source: str) -> yaml.Node | None:
    """The YAML node tree of ``text`` (aliases shared, not expanded); ConfigError where it is not YAML."""
    loader: _CountingLoader | None = None
    try:
        loader = _CountingLoader(text)  # the reader checks every character here
        return loader.get_single_node()
    except _TooManyValues as exc:
        raise ConfigError(source, [ConfigIssue("", exc.line, f"the file holds more than {MAX_YAML_VALUES} values")]) \
            from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [ConfigIssue("", _yaml_line(exc, text), f"invalid YAML: {_yaml_problem(exc)}")]) \
            from None
    finally:
        if loader is not None:
            loader.dispose()


def _construct(root: yaml.Node, source: str) -> Any:
    """Python values of the composed tree (the safe loader's types); ConfigError naming the line of a tag it does
    not know or a value it cannot convert, never the value itself."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [ConfigIssue("", _yaml_line(exc), f"invalid YAML: {_yaml_problem(exc)}")]) \
            from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of thousands of digits, a date out of range
        message = str(exc).split(":")[0]
        raise ConfigError(source, [ConfigIssue("", _unreadable_scalar_line(root), f"a value cannot be read: "
                                                                                   f"{message}")]) from None
    finally:
        loader.dispose()


def _unreadable_scalar_line(root: yaml.Node) -> int | None:
    """The line of the first scalar of the tree that the safe loader cannot convert, or None."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                yaml.SafeLoader("").construct_object(node)
            except (ValueError, OverflowError, yaml.YAMLError):
                return node.start_mark.line + 1
        elif isinstance(node, yaml.MappingNode):
            stack += [n for pair in reversed(node.value) for n in reversed(pair)]
        elif isinstance(node, yaml.SequenceNode):
            stack += list(reversed(node.value))
    return None


def _check_aliases(root: yaml.Node, source: str) -> None:
    """ConfigError when an alias refers to a node that holds it (a loop) or when the aliases expand the file to
    more than :data:`MAX_YAML_VALUES` values."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ConfigError(source, [ConfigIssue("", node.start_mark.line + 1,
                                                   "an alias refers to a node that contains it (a loop)")])
        open_nodes.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_YAML_VALUES:
                raise ConfigError(source, [ConfigIssue("", child.start_mark.line + 1,
                                                       f"the file's aliases expand it to more than "
                                                       f"{MAX_YAML_VALUES} values")])
        open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root)


def _index_lines(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int],
                 seen_nodes: set[int] | None = None) -> Iterator[ConfigIssue]:
    """Record the line of every key path; yield issues for duplicate mapping keys and for keys that are not plain
    scalars. A node reached again through an alias is not walked again (its lines are those of its anchor)."""
    seen_nodes = set() if seen_nodes is None else seen_nodes
    lines[path] = node.start_mark.line + 1
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                yield ConfigIssue(_format_path(path), key_node.start_mark.line + 1, NON_SCALAR_KEY)
                continue
            key = key_node.value
            if key in seen:
                yield ConfigIssue(_format_path((*path, key)), key_node.start_mark.line + 1, "duplicate key")
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            yield from _index_lines(value_node, (*path, key), lines, seen_nodes)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _index_lines(item, (*path, i), lines, seen_nodes)


def _format_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_for(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _issue_from_pydantic(err: Any, lines: dict[tuple[Any, ...], int]) -> ConfigIssue:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "required key is missing"
    elif "input" in err and not isinstance(err["input"], dict | list):
        message = f"{message} (got {_shown_input(err['input'], loc)[:80]})"
        if err["type"] == "string_type" and isinstance(err["input"], bool | int | float):
            message += "; YAML read it as a number or yes/no: write it in quotes"
    return ConfigIssue(_format_path(loc), _line_for(loc, lines), message)


def _shown_input(value: Any, loc: tuple[Any, ...]) -> str:
    """``repr`` of a value an error is about, without credentials: a URL field's user-info is masked even where the
    URL lacks its ``//`` (``rtsp:/admin:pw@host``), which text redaction does not recognise."""
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    if loc and loc[-1] in URL_FIELDS and isinstance(value, str):
        if "://" in value:
            value = redact_url(value)
        elif "@" in value:
            value = MASK + value[value.rfind("@"):]
    return redact_text(repr(value))


def _duplicate_camera_ids(cameras: Any, lines: dict[tuple[Any, ...], int]) -> list[ConfigIssue]:
    """Report every camera id used twice, even when other errors stop full validation."""
    if not isinstance(cameras, list):
        return []
    issues: list[ConfigIssue] = []
    first_seen: dict[str, int] = {}
    for i, cam in enumerate(cameras):
        cam_id = cam.get("id") if isinstance(cam, dict) else None
        if not isinstance(cam_id, str):
            continue
        if cam_id in first_seen:
            loc = ("cameras", i, "id")
            message = f"duplicate camera id {cam_id!r} (first used by cameras[{first_seen[cam_id]}])"
            issues.append(ConfigIssue(_format_path(loc), _line_for(loc, lines), message))
        else:
            first_seen[cam_id] = i
    return issues


def _semantic_issues(config: Config, lines: dict[tuple[Any, ...], int]) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for i, cam in enumerate(config.cameras):
        if not (cam.analytics.plates or cam.analytics.faces) and not cam.recording.enabled:
            loc = ("cameras", i)
            issues.append(ConfigIssue(_format_path(loc), _line_for(loc, lines), "camera neither analysed nor recorded"))
    for i, cam in enumerate(config.cameras):
        if cam.analysis_width is not None and cam.analysis_width > config.ingest.max_width:
            loc = ("cameras", i, "analysis_width")
            issues.append(ConfigIssue(_format_path(loc), _line_for(loc, lines),
                                      f"must not exceed ingest.max_width ({config.ingest.max_width}, the frame bus slot)"))  # fmt: skip
    if config.ingest.backoff_initial_s > config.ingest.backoff_max_s:
        loc = ("ingest", "backoff_initial_s")
        issues.append(ConfigIssue(_format_path(loc), _line_for(loc, lines), "must not exceed ingest.backoff_max_s"))
    return issues
