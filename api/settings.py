"""API settings from the environment (prefix ``CCTV_``); pipeline settings stay in :mod:`pipeline.settings`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.config import CAMERA_ID_PATTERN
from pipeline.settings import PROJECT_ROOT


class ApiSettings(BaseSettings):
    """Settings of the control-room API."""

    model_config = SettingsConfigDict(env_prefix="CCTV_", extra="ignore")

    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis connection URL.")
    recordings_dir: Path = Field(default=PROJECT_ROOT / "recordings", description="Media root served by /api/media.")
    config_path: Path = Field(default=PROJECT_ROOT / "cameras.yaml", description="cameras.yaml with the cameras.")
    camera_config_source: Literal["cluster", "file"] = Field(
        default="cluster",
        description="Where the camera list comes from: ``cluster`` follows the configuration pushed to Redis "
                    "(``pipeline run --role api``; config_path until one is pushed), ``file`` serves config_path "
                    "only and ignores pushes (the single-host ``pipeline run --role all`` sets it: its workers "
                    "run that file).")
    session_ttl_s: int = Field(default=8 * 3600, ge=60, le=30 * 86400,
                               description="Bearer token lifetime (absolute: activity does not extend it).")
    session_idle_s: int = Field(default=30 * 60, ge=60, le=86400,
                                description="A bearer token unused this long ends before its lifetime is over "
                                            "(an open live-alert or video stream counts as use). A change "
                                            "applies at once, to tokens already issued too.")
    api_key_max_days: int = Field(default=365, ge=1, le=3650,
                                  description="Longest lifetime of a new API key, admins' included (every key "
                                              "expires); non-admins are held to at most 90 days below this. A key "
                                              "made before every key had to expire ends this long after its "
                                              "creation (one without a creation time is refused as expired).")
    scrypt_n: int = Field(default=2**17, ge=2, le=2**20,
                          description="scrypt cost N (power of two; OWASP: 2^17 with r=8, p=1). Stored hashes with "
                                      "a smaller N are re-hashed at the user's next login.")
    max_upload_bytes: int = Field(default=10 * 2**20, ge=1024, description="Largest accepted upload.")
    max_image_pixels: int = Field(default=40_000_000, ge=1, description="Largest accepted image (w*h).")
    max_photos: int = Field(default=10, ge=1, le=100, description="Photos per enrolment.")
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins.")
    login_max_per_user: int = Field(default=5, ge=1, description="Failed logins of one user from one client "
                                    "address before each further attempt there waits (exponential backoff).")
    login_max_per_ip: int = Field(default=20, ge=1, description="Failed logins from one client address (any user "
                                  "name) before each further attempt from there waits.")
    login_window_s: int = Field(default=900, ge=1, description="Failures are forgotten this long after the last "
                                "one's wait has passed.")
    login_backoff_base_s: float = Field(default=2.0, gt=0, le=60, description="First wait after the free failures; "
                                        "it doubles with every further failure.")
    login_backoff_max_s: float = Field(default=900.0, gt=0, le=86400, description="Longest wait (no lockout is "
                                       "permanent; a right password from another address is never held up).")
    first_admin_user: str = Field(default="admin", pattern=r"^[A-Za-z0-9_.@-]{1,64}$",
                                  description="Name of the admin created at first run when no user exists.")
    face_threshold: float = Field(default=0.45, ge=-1, le=1, description="Default face search similarity threshold.")
    face_min_det_score: float = Field(default=0.5, ge=0, le=1, description="Detector score of a usable face.")
    face_min_size: int = Field(default=32, ge=8, description="Smallest usable face (pixels, shorter box side).")
    admin_user: str | None = Field(default=None, description="Bootstrap admin user name (CCTV_ADMIN_USER).")
    admin_password: str | None = Field(default=None, description="Bootstrap admin password (CCTV_ADMIN_PASSWORD).")
    export_dir: Path | None = Field(default=None, description="Where exports/cases go (default recordings/exports).")
    audit_spool_dir: Path = Field(default=PROJECT_ROOT / "var" / "audit-spool",
                                  description="Where audit records wait (files 0600) while Redis is down; they are "
                                              "appended to the audit trail, in order and once, when it is back.")
    audit_spool_max_bytes: int = Field(default=64 * 2**20, ge=8192, le=2**40,
                                       description="Largest audit spool per API process; beyond it the oldest "
                                                   "records are dropped (logged, and counted in an "
                                                   "'audit_records_lost' record once Redis is back).")
    audit_spool_retry_s: float = Field(default=5.0, gt=0, le=300,
                                       description="How often spooled audit records are offered to Redis again.")
    camera_events_scan: int = Field(default=5000, ge=100, le=1_000_000,
                                    description="Most stream entries one recent-events-of-a-camera request reads.")
    alert_filter_scan: int = Field(default=20_000, ge=100, le=10_000_000,
                                   description="Most alerts one filtered alert-list request (entry/watchlist) reads.")
    ws_poll_s: float = Field(default=1.0, gt=0, le=30, description="Live-alert poll interval when idle.")
    max_body_bytes: int = Field(default=1 * 2**20, ge=1024,
                                description="Largest JSON (non-upload) request body; uploads: max_upload_bytes.")
    case_package_max_bytes: int = Field(
        default=4 * 2**30, ge=2**20, le=2**40,
        description="Largest case package (GET /api/cases/{id}/package): the bytes of the clips, pictures and event "
                    "records it would hold, before compression. A larger case is refused (413) before any zip is "
                    "written; split it into several cases or raise this limit (the zip is staged in the temp "
                    "folder).")
    export_workers: int = Field(default=2, ge=1, le=32, description="Exports cut at the same time (ffmpeg each).")
    export_queue: int = Field(default=8, ge=0, le=1000,
                              description="Exports waiting for a worker; beyond that a new export gets 429.")
    alert_streams_per_user: int = Field(default=4, ge=1, le=100,
                                        description="Open live-alert streams (WebSocket + SSE) per user.")
    alert_streams_total: int = Field(default=200, ge=1, le=10_000,
                                     description="Open live-alert streams in total (one shared Redis pool).")
    playback_streams_per_user: int = Field(default=8, ge=1, le=32,
                                           description="Recorded-playback streams (ffmpeg remuxers) one user runs "
                                                       "at once (4 cameras side by side need 4; more tabs more); "
                                                       "32 run at most in all per API process.")
    playback_stall_s: float = Field(default=60.0, ge=1, le=3600,
                                    description="A playback stream whose player reads nothing for this long (send "
                                                "blocked) is ended and its slot given back; the page asks for the "
                                                "rest when it needs it.")
    stream_recheck_s: float = Field(default=30.0, gt=0, le=30,
                                    description="How often an open alert stream re-checks its user and token.")
    ws_auth_timeout_s: float = Field(default=5.0, gt=0, le=60,
                                     description="Time a WebSocket has to send its first message {\"token\": ...}.")
    live_linger_s: float = Field(default=10.0, ge=0, le=600,
                                 description="A camera's live upstream (ffmpeg) is kept this long after its last "
                                             "viewer left.")
    live_queue_fragments: int = Field(default=50, ge=4, le=2000,
                                      description="Live video fragments (frames) queued per viewer; a viewer that "
                                                  "falls further behind resumes at the next keyframe.")
    live_queue_bytes: int = Field(default=8 * 2**20, ge=2**16, le=2**30,
                                  description="Bytes of live video queued per viewer at most.")
    live_queue_age_s: float = Field(default=1.0, gt=0, le=30,
                                    description="A viewer whose oldest queued live fragment waited longer than this "
                                                "is behind: its queue is dropped and it resumes at the next keyframe.")
    live_stale_s: float = Field(default=3.0, gt=0, le=60,
                                description="A live camera stream whose newest frame is older than this (the "
                                            "camera's connection is open but no video comes) is reported offline "
                                            "(reason_code no_video) to its viewers, and a viewer joining then "
                                            "gets no cached old frames; live again with the next frame. Keep it a "
                                            "few frame intervals above the slowest camera's (3 s suits 1 fps and "
                                            "up), and below the page's own 4 s check.")
    live_streams_per_user: int = Field(default=32, ge=1, le=256,
                                       description="Open live video WebSockets per user (a 4x4 wall needs 16).")
    live_streams_total: int = Field(default=400, ge=1, le=10_000,
                                    description="Open live video WebSockets in this API process.")
    live_ack_window: int = Field(default=30, ge=2, le=1000,
                                 description="Live video fragments in flight to a client that acknowledges "
                                             "({\"ack\": N}); beyond that its queue fills and it drops to the next "
                                             "keyframe.")
    live_max_transcodes: int = Field(default=2, ge=0, le=64,
                                     description="H.265 cameras without an H.264 sub-stream transcoded to H.264 for "
                                                 "the browser at the same time.")
    live_preload: Literal["none", "layouts", "all"] = Field(
        default="layouts",
        description="Camera streams whose upstream (ffmpeg + RTSP) runs with no viewer, so that a wall opening "
                    "shows them at once from the hub's keyframe cache instead of waiting for the upstream to start "
                    "and the camera's next keyframe (go2rtc's preload). layouts: the streams of every user's saved "
                    "video wall layout (the sub-stream of a multi-tile grid, the main stream of a one-tile wall, as "
                    "the wall opens them); all: those, then every enabled camera's wall stream; none: only "
                    "CCTV_LIVE_PRELOAD_CAMERAS. At most CCTV_LIVE_PRELOAD_MAX in all. A preloaded camera costs "
                    "its remux ffmpeg and the parsing of its fragments (benchmarks.video: "
                    "cpu_cores_per_preloaded_camera).")
    live_preload_default_wall: bool = Field(
        default=False,
        description="With CCTV_LIVE_PRELOAD layouts or all, also preload the default wall (what a user who saved no "
                    "layout opens: the first 16 enabled cameras on the smallest grid that holds them), after the "
                    "saved layouts. Off by default: up to 16 more upstreams per API process whether or not anyone "
                    "uses that wall; turn it on where operators open the wall without saving one.")
    live_preload_cameras: list[Annotated[str, Field(pattern=CAMERA_ID_PATTERN)]] = Field(
        default_factory=list, max_length=2000,
        description="Camera ids whose wall stream is always preloaded, first (JSON list in the environment).")
    live_preload_max: int = Field(default=32, ge=0, le=2000,
                                  description="Camera streams preloaded at most (each one ffmpeg remux); the newest "
                                              "saved layouts come first.")
    live_preload_refresh_s: float = Field(default=30.0, ge=1, le=3600,
                                          description="How often the preload set is read again from the saved "
                                                      "layouts (a layout saved through this API process applies at "
                                                      "once; other API processes follow within this time).")

    def exports_root(self) -> Path:
        """The folder of export clips and case packages."""
        return self.export_dir or self.recordings_dir / "exports"
