"""Capture against an independent RTSP server that demands Digest authentication (GStreamer's gst-rtsp-server at a
Hikvision-style path, :mod:`pipeline.gstcams`): passwords holding any character log in, a wrong one is reported
as such and retried, a restarting camera comes back by itself, single-transport cameras work, and no secret
reaches a log line, Redis, the API or ``ps``."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.config import Camera, Config, IngestConfig, parse_config
from pipeline.gstcams import MAIN_STREAM, SUB_STREAM, GstCameraServer
from pipeline.ingest.capture import AUTH_FAILED_MESSAGE, CameraCapture, CameraState
from pipeline.ingest.framebus import FrameBus
from pipeline.ingest.health import read_camera_health
from pipeline.ingest.worker import CaptureWorkerProcess
from pipeline.secrets import clear_registered_secrets, encode_userinfo, secret_forms
from tests.conftest import wait_for

CLIP = "short_hamilton_clip"
GOOD_PASSWORD = "Adm!n@2024#x/:% ก๊อป"  # @ # / : % ! space and Thai: every character that broke or leaked
BAD_PASSWORD = "Wr0ng!@#/:% ผิด"  # what the misconfigured camera sends (the server knows another one)
TYPED_PASSWORD = "Adm!n@2024#x"  # typed unencoded into the URL, as in the issue: '#' cuts the URL, redaction leaked
OPERATOR_PASSWORD = "0perat0r-real-pw"
API_PASSWORD = "correct horse battery"  # the control-room operator's, for the API
# (user, password) pairs logged in at once by test_passwords_with_any_character_log_in (the closing note's table)
PASSWORD_TABLE = [
    ("admin", "Plain2024pass"),
    ("user02", "Adm!n@2024#x"),
    ("user03", "a/b?c#d@e"),
    ("user04", "p:a:ss:"),
    ("user05", "50%off"),
    ("user06", "x%41y"),
    ("user07", "with two  spaces "),
    ("ผู้ดูแล", "รหัสผ่าน2567"),
    ("user09", "quo\"te'back\\slash"),
    ("user10", "@#/:%! ~&=+$,;[]"),
    ("user11", "รหัสผ่านยาวมากสำหรับกล้องวงจรปิด"),
    ("ad min", "Pass🔒word"),
]


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """In-process captures and the API register this module's secrets: forget them for the tests that follow."""
    yield
    clear_registered_secrets()


def make_config(cameras_yaml: str) -> Config:
    return parse_config(
        "ingest: {stall_timeout_s: 3, connect_timeout_s: 5, backoff_initial_s: 0.5, backoff_max_s: 2,"
        " segment_seconds: 2, max_width: 320, queue_size: 4}\ncameras:\n" + cameras_yaml
    )



def health_of(client: redis.Redis, camera_id: str) -> dict:
    health = read_camera_health(client, camera_id)
    return health[0] if health else {}


def redis_dump(client: redis.Redis) -> str:
    """Every key and value of every type in Redis, as text."""
    out: list[bytes] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        out.append(key)
        if kind == "string":
            out.append(client.get(key) or b"")
        elif kind == "hash":
            out += [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == "list":
            out += client.lrange(key, 0, -1)
        elif kind == "set":
            out += list(client.smembers(key))
        elif kind == "zset":
            out += [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            out += [b for _, fields in client.xrange(key) for pair in fields.items() for b in pair]
    return b"\n".join(out).decode("utf-8", "replace")


def leaked(text: str, secrets: list[str]) -> list[str]:
    """The forms of ``secrets`` (as is, percent-encoded, escaped) found in ``text``."""
    return sorted({form for secret in secrets for form in secret_forms(secret) if form in text})


def command_lines() -> str:
    """Every process's command line and environment that ``ps`` (or /proc) shows us."""
    out: list[str] = []
    for proc in psutil.process_iter():
        try:
            out.append(" ".join(proc.cmdline()))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return "\n".join(out)


@pytest.mark.timeout(300)
def test_right_password_records_and_analyses_wrong_one_is_401_offline_and_no_secret_leaks(
    gst_rtsp_server: None, shared_dir: Path, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setenv("CAM_GOOD_PW", GOOD_PASSWORD)
    monkeypatch.setenv("CAM_BAD_PW", BAD_PASSWORD)
    caplog.set_level(logging.DEBUG)
    secrets = [GOOD_PASSWORD, BAD_PASSWORD, TYPED_PASSWORD]
    users = {"admin": GOOD_PASSWORD, "operator": OPERATOR_PASSWORD}
    mounts = {MAIN_STREAM: (CLIP, "h265"), SUB_STREAM: (CLIP, "h264")}  # H.265 main recorded, H.264 sub analysed
    with GstCameraServer(shared_dir / "data" / "videos", users, mounts) as cam:
        cameras_yaml = (
            f'  - {{id: good, name: Good, url: "{cam.url("admin", "${CAM_GOOD_PW}")}",'
            f' sub_stream: "{cam.url("admin", "${CAM_GOOD_PW}", SUB_STREAM)}", analysis_fps: 3}}\n'
            f'  - {{id: bad, name: Bad, url: "{cam.url("operator", "${CAM_BAD_PW}")}", analysis_fps: 3,'
            " recording: {enabled: false}}\n"
            f'  - {{id: typed, name: Typed, url: "{cam.url("admin", TYPED_PASSWORD)}", analysis_fps: 3,'
            " recording: {enabled: false}}\n"
        )
        config = make_config(cameras_yaml)
        warnings = [str(w) for w in config.warnings()]  # a variable may hold any character: only "typed" is warned
        assert [w for w in warnings if "cameras[2].url" not in w] == [] and len(warnings) == 2, warnings
        assert "an '@' after a '#'" in warnings[0] and "password written in clear" in warnings[1]
        client = redis.Redis.from_url(redis_url)
        with FrameBus(["good", "bad", "typed"], queue_size=4, max_width=320) as bus:
            worker = CaptureWorkerProcess(config.cameras, config.ingest, bus, redis_url, tmp_path / "rec").start()
            try:
                wait_for(lambda: health_of(client, "good").get("status") == "online", 90, "good camera online")
                items = bus.get_batch(4, timeout_s=10, copy=True)
                assert items and items[0].camera_id == "good" and items[0].frame.shape == (180, 320, 3)
                assert items[0].frame.std() > 5  # the real picture, decoded from the authenticated H.264 sub-stream
                faces = face_events_of(items + collect_frames(bus, 12), config, shared_dir, tmp_path)
                assert faces and {e.camera_id for e in faces} == {"good"}  # events from the authenticated camera
                wait_for(lambda: client.zcard("cctv:rec:good") >= 1, 90, "an H.265 segment of the main stream recorded")
                assert health_of(client, "good")["recording"] == "on"

                wait_for(lambda: health_of(client, "bad").get("status") == "offline", 60, "bad camera offline")
                wait_for(lambda: AUTH_FAILED_MESSAGE in health_of(client, "bad").get("last_error", ""), 30, "401")
                first = health_of(client, "bad")["reconnects"]
                started = time.monotonic()
                wait_for(lambda: health_of(client, "bad")["reconnects"] >= first + 2, 60, "the login retried")
                elapsed, retries = time.monotonic() - started, health_of(client, "bad")["reconnects"] - first
                assert retries <= elapsed / 2 + 1  # at the longest backoff (2 s here), not hammering the camera
                bad = health_of(client, "bad")
                assert bad["status"] == "offline" and bad["last_error"].startswith(
                    f"{AUTH_FAILED_MESSAGE} (rtsp://operator:***@127.0.0.1:{cam.port}{MAIN_STREAM})")
                wait_for(lambda: health_of(client, "typed").get("last_error"), 60, "the typed URL failing")
                assert health_of(client, "typed")["status"] in ("connecting", "reconnecting", "offline")
                assert worker.process.is_alive() and health_of(client, "good")["status"] == "online"

                ps_leaks = leaked(command_lines(), secrets)  # ffmpeg runs now, for both cameras
                api_text = api_camera_output(redis_url, tmp_path, cameras_yaml)
            finally:
                assert worker.stop() == 0
        dump = redis_dump(client)
        client.close()
    out, err = capfd.readouterr()
    assert "camera bad" in err and AUTH_FAILED_MESSAGE in err  # the worker's log really was captured
    assert f"admin:***@127.0.0.1:{cam.port}{SUB_STREAM}" in dump  # the redacted URL: the dump is the right data
    assert AUTH_FAILED_MESSAGE in api_text and "operator:***@" in api_text
    assert ps_leaks == []
    assert leaked(out + err + caplog.text, secrets) == []
    assert leaked(dump, secrets) == []
    assert leaked(api_text, secrets) == []
    assert "2024#x" not in out + err + caplog.text + dump + api_text  # the tail the issue saw leak
    assert "${CAM_GOOD_PW}" not in dump + api_text


def collect_frames(bus: FrameBus, n: int, timeout_s: float = 60.0) -> list:
    """Up to ``n`` more frames of the good camera from the frame bus (a few seconds at its analysis rate)."""
    frames: list = []
    deadline = time.monotonic() + timeout_s
    while len(frames) < n and time.monotonic() < deadline:
        frames += [f for f in bus.get_batch(4, timeout_s=2, copy=True) if f.camera_id == "good"]
    return frames


def face_events_of(frames: list, config: Config, shared_dir: Path, tmp_path: Path) -> list:
    """The engine (real face models, CPU) over the camera's frames: the face events it publishes."""
    from pipeline.config import EngineConfig
    from pipeline.engine.engine import Engine
    from pipeline.models.registry import load_model_set

    models = load_model_set(EngineConfig(), model_dir=shared_dir / "models", device="cpu")
    analysed = config.model_copy(update={"cameras": [
        cam.model_copy(update={"analytics": cam.analytics.model_copy(update={"plates": False, "faces": True})})
        for cam in config.cameras]})
    engine = Engine(analysed, models, None, recordings_dir=tmp_path / "engine")
    for frame in frames:
        engine.process_batch([frame])
    engine.finish()
    return [event for kind, event in engine.events if kind == "face"]


def api_camera_output(redis_url: str, tmp_path: Path, cameras_yaml: str) -> str:
    """The API's camera list and each camera's page (with live health), as served, for an operator."""
    from api.main import create_app
    from api.settings import ApiSettings
    from api.store import ApiStore

    config_path = tmp_path / "cameras.yaml"
    config_path.write_text("cameras:\n" + cameras_yaml)
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config_path, scrypt_n=16)
    client = redis.Redis.from_url(redis_url)
    ApiStore(client, scrypt_n=16).put_user("op", "operator", API_PASSWORD)
    client.close()
    texts: list[str] = []
    with TestClient(create_app(settings)) as api:
        login = api.post("/api/auth/login", json={"username": "op", "password": API_PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        for path in ("/api/cameras", "/api/cameras/good", "/api/cameras/bad", "/api/cameras/typed"):
            response = api.get(path, headers=headers)
            assert response.status_code == 200, response.text
            texts += [response.text, json.dumps(response.json())]
    return "\n".join(texts)


@pytest.mark.timeout(240)
def test_restarting_camera_comes_back_online_by_itself(
    gst_rtsp_server: None, shared_dir: Path, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAM_GOOD_PW", GOOD_PASSWORD)
    with GstCameraServer(shared_dir / "data" / "videos", {"admin": GOOD_PASSWORD}) as cam:
        config = make_config(f'  - {{id: reboot, name: R, url: "{cam.url("admin", "${CAM_GOOD_PW}")}",'
                             " analysis_fps: 3, recording: {enabled: false}}\n")  # fmt: skip
        client = redis.Redis.from_url(redis_url)
        with FrameBus(["reboot"], queue_size=4, max_width=320) as bus:
            worker = CaptureWorkerProcess(config.cameras, config.ingest, bus, redis_url, tmp_path).start()
            try:
                wait_for(lambda: health_of(client, "reboot").get("status") == "online", 90, "camera online")
                cam.restart(down_s=3)  # the camera reboots: every viewer is cut off, nothing listens for 3 s
                wait_for(lambda: health_of(client, "reboot").get("status") in ("reconnecting", "offline"), 60,
                         "camera seen down")  # fmt: skip
                wait_for(lambda: health_of(client, "reboot").get("status") == "online", 90, "camera back online")
                assert health_of(client, "reboot")["reconnects"] >= 1
                published = health_of(client, "reboot")["published_frames"]
                wait_for(lambda: health_of(client, "reboot")["published_frames"] > published, 30, "frames again")
            finally:
                assert worker.stop() == 0
        client.close()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("protocols", ["tcp", "udp"])
def test_camera_offering_a_single_transport(
    gst_rtsp_server: None, shared_dir: Path, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    protocols: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("CAM_GOOD_PW", GOOD_PASSWORD)
    with GstCameraServer(shared_dir / "data" / "videos", {"admin": GOOD_PASSWORD}, protocols=protocols) as cam:
        config = make_config(f'  - {{id: only-{protocols}, name: T, url: "{cam.url("admin", "${CAM_GOOD_PW}")}",'
                             " analysis_fps: 3}\n")  # fmt: skip
        camera_id = f"only-{protocols}"
        client = redis.Redis.from_url(redis_url)
        with FrameBus([camera_id], queue_size=4, max_width=320) as bus:
            worker = CaptureWorkerProcess(config.cameras, config.ingest, bus, redis_url, tmp_path).start()
            try:
                wait_for(lambda: health_of(client, camera_id).get("status") == "online", 90, f"{protocols} camera online")
                items = bus.get_batch(2, timeout_s=10, copy=True)
                assert items and items[0].frame.shape == (180, 320, 3) and items[0].frame.std() > 5
                wait_for(lambda: client.zcard(f"cctv:rec:{camera_id}") >= 1, 90, "a segment recorded")
                error = health_of(client, camera_id)["last_error"]
                if protocols == "udp":  # TCP is tried first and refused, then UDP
                    assert error.startswith("461 Unsupported transport: the camera refused RTSP over TCP"), error
                else:
                    assert error == ""
            finally:
                assert worker.stop() == 0
        client.close()


@pytest.mark.timeout(240)
def test_passwords_with_any_character_log_in(gst_rtsp_server: None, shared_dir: Path) -> None:
    """Every password of :data:`PASSWORD_TABLE` through the capture's real ffmpeg command (record-only sessions,
    all at once against one server), plus the same password typed percent-encoded in the URL and a wrong one."""
    results = run_password_table(shared_dir / "data" / "videos", PASSWORD_TABLE, timeout_s=120)
    assert {name: status for name, (status, _) in results.items()} == {
        **{f"{user}:{password}": "online" for user, password in PASSWORD_TABLE},
        "typed percent-encoded": "online",
        "wrong password": "offline",
    }
    assert results["wrong password"][1].startswith(AUTH_FAILED_MESSAGE)


def run_password_table(videos: Path, table: list[tuple[str, str]], timeout_s: float) -> dict[str, tuple[str, str]]:
    """Start one record-only :class:`CameraCapture` per ``(user, password)`` against a server knowing them all;
    return ``{"user:password": (status, last_error)}`` once every one is online or offline (or at the timeout)."""
    env = {f"PW_TABLE_{i}": password for i, (_, password) in enumerate(table)}
    env |= {f"USER_TABLE_{i}": user for i, (user, _) in enumerate(table)}
    with GstCameraServer(videos, dict(table)) as cam, pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        urls = {f"{user}:{password}": cam.url(f"${{USER_TABLE_{i}}}", f"${{PW_TABLE_{i}}}")
                for i, (user, password) in enumerate(table)}  # fmt: skip
        user, password = table[1]
        urls["typed percent-encoded"] = cam.url(user, encode_userinfo(password))
        urls["wrong password"] = cam.url(user, "${PW_TABLE_0}")
        ingest = IngestConfig(stall_timeout_s=5, connect_timeout_s=10, backoff_initial_s=0.5, backoff_max_s=2)
        stop = threading.Event()
        states: dict[str, CameraState] = {}
        threads = []
        for i, (name, url) in enumerate(urls.items()):
            camera = Camera(id=f"table-{i}", name=name, url=url, analytics={"plates": False}, recording={"enabled": True})
            states[name] = CameraState(camera.id, url)
            capture = CameraCapture(camera, ingest, states[name], stop, url)
            threads.append(threading.Thread(target=capture.run, daemon=True, name=f"capture-table-{i}"))
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: all(s.status in ("online", "offline") for s in states.values()), timeout_s,
                     "every password online or refused")  # fmt: skip
        except AssertionError:
            pass  # report what each reached
        finally:
            results = {name: (state.status, state.last_error) for name, state in states.items()}
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
    return results
