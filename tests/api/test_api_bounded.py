"""Bounded work: bodies refused before they are read, the export queue, alert-stream caps and re-checks."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
import redis
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore
from tests.api.conftest import PASSWORD


def _asgi_post(app, path: str, headers: dict[str, str], chunks: Iterator[bytes]) -> tuple[int, bytes, int]:
    """POST straight through the ASGI app: (status, body, body chunks the app pulled)."""
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        chunk = next(chunks, None)
        pulled += 1
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1234), "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, pulled


def _endless(chunk: int = 65536, multipart: bool = False) -> Iterator[bytes]:
    """An endless body: zeros, or one multipart file part that never ends (boundary ``x``)."""
    if multipart:
        yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
    while True:
        yield b"\0" * chunk


def test_anonymous_upload_is_refused_before_the_body_is_read(client: TestClient) -> None:
    status, body, pulled = _asgi_post(client.app, "/api/faces/search",
                                      {"content-type": "multipart/form-data; boundary=x",
                                       "content-length": "5000000"}, _endless())
    assert status == 401 and b"not authenticated" in body
    assert pulled == 0
    status, _, pulled = _asgi_post(client.app, "/api/persons", {"content-type": "multipart/form-data; boundary=x",
                                                                "transfer-encoding": "chunked",
                                                                "authorization": "Bearer nonsense"}, _endless())
    assert status == 401 and pulled == 0


def test_declared_oversize_is_413_before_the_body_is_read(client: TestClient, tokens: dict,
                                                          api_settings: ApiSettings) -> None:
    limit = api_settings.max_upload_bytes * api_settings.max_photos + 64 * 1024
    headers = {"content-type": "multipart/form-data; boundary=x", "content-length": str(limit + 1),
               "authorization": tokens["inv"]["Authorization"]}
    status, body, pulled = _asgi_post(client.app, "/api/faces/search", headers, _endless())
    assert status == 413 and b"larger than" in body and pulled == 0
    json_headers = {"content-type": "application/json", "content-length": str(api_settings.max_body_bytes + 1),
                    "authorization": tokens["adm"]["Authorization"]}
    status, _, pulled = _asgi_post(client.app, "/api/watchlists", json_headers, _endless())
    assert status == 413 and pulled == 0


def test_chunked_body_is_stopped_at_the_limit(client: TestClient, tokens: dict, api_settings: ApiSettings) -> None:
    limit = api_settings.max_upload_bytes * api_settings.max_photos + 64 * 1024
    headers = {"content-type": "multipart/form-data; boundary=x", "transfer-encoding": "chunked",
               "authorization": tokens["inv"]["Authorization"]}
    status, body, pulled = _asgi_post(client.app, "/api/faces/search", headers, _endless(multipart=True))
    assert status == 413, body
    assert pulled <= limit // 65536 + 2  # stopped as soon as the limit was passed, not read to the end
    json_headers = {"content-type": "application/json", "transfer-encoding": "chunked",
                    "authorization": tokens["adm"]["Authorization"]}
    status, _, pulled = _asgi_post(client.app, "/api/watchlists", json_headers, _endless())
    assert status == 413 and pulled <= api_settings.max_body_bytes // 65536 + 2


def test_small_bodies_still_work(client: TestClient, tokens: dict) -> None:
    r = client.post("/api/watchlists", headers=tokens["adm"], json={"kind": "plate", "name": "ok"})
    assert r.status_code == 201, r.text
    r = client.post("/api/auth/login", json={"username": "op", "password": PASSWORD})  # public: no token needed
    assert r.status_code == 200


def test_image_decoding_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi import UploadFile

    from api import images

    threads: list[str] = []
    monkeypatch.setattr(images, "decode_image", lambda data, field, px: threads.append(
        threading.current_thread().name) or data)

    async def run() -> str:
        await images.load_image(UploadFile(io.BytesIO(b"abc")), "image", 1000, 1000)
        return threading.current_thread().name

    loop_thread = asyncio.run(run())
    assert threads and threads[0] != loop_thread


@pytest.fixture()
def small_app(api_settings: ApiSettings, rclient: redis.Redis) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """An app with one export worker, one waiting place, one stream per user, 3 streams in all, quick re-checks."""
    settings = api_settings.model_copy(update={"export_workers": 1, "export_queue": 1, "alert_streams_per_user": 1,
                                               "alert_streams_total": 3, "stream_recheck_s": 0.5,
                                               "ws_auth_timeout_s": 1.0})
    store = ApiStore(rclient, scrypt_n=16)
    for name in ("inv", "op", "op2"):
        store.put_user(name, "investigator" if name == "inv" else "operator", PASSWORD)
    with TestClient(create_app(settings)) as tc:
        tokens = {n: tc.post("/api/auth/login", json={"username": n, "password": PASSWORD}).json()["access_token"]
                  for n in ("inv", "op", "op2")}
        yield tc, tokens


def test_exports_run_in_a_bounded_queue(small_app, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.routes import exports

    client, tokens = small_app
    release = threading.Event()
    monkeypatch.setattr(exports, "run_export", lambda *args: release.wait(30))
    headers = {"Authorization": f"Bearer {tokens['inv']}"}
    body = {"camera_id": "bkk-night-01", "start": 1000.0, "end": 1010.0}
    from pipeline.recording.index import Segment, add_segment  # an export of a window never recorded is a 404

    add_segment(client.app.state.redis, "bkk-night-01",
                Segment("bkk-night-01/1970-01-01/00/bkk-night-01_19700101T001640.000Z.mkv", 1000.0, 1060.0, 1000))
    first = client.post("/api/exports", headers=headers, json=body)
    second = client.post("/api/exports", headers=headers, json=body)
    assert first.status_code == 202 and second.status_code == 202, (first.text, second.text)
    deadline = time.monotonic() + 20
    while client.app.state.export_queue.load() != (1, 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get(f"/api/exports/{second.json()['id']}", headers=headers).json()["queue_position"] == 1
    third = client.post("/api/exports", headers=headers, json=body)
    assert third.status_code == 429 and int(third.headers["Retry-After"]) > 0
    assert "queue is full" in third.json()["detail"]
    release.set()
    while client.app.state.export_queue.load() != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.post("/api/exports", headers=headers, json=body).status_code == 202


@contextmanager
def _ws_open(client: TestClient, token: str) -> Iterator:
    """A WebSocket to the alert feed that sends its token as the first message (closed on exit)."""
    with client.websocket_connect("/api/alerts/ws") as ws:
        ws.send_json({"token": token})
        yield ws


def _wait_slots(client: TestClient, total: int) -> None:
    deadline = time.monotonic() + 20
    slots = None
    while time.monotonic() < deadline:
        slots = getattr(client.app.state, "alert_slots", None)
        if slots is not None and slots.total == total:
            return
        time.sleep(0.05)
    raise AssertionError(f"expected {total} open streams, found {slots and slots.total}")


def _refused(ws) -> WebSocketDisconnect:
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    return closed.value


def test_alert_streams_are_capped_per_user_and_share_one_pool(small_app) -> None:
    client, tokens = small_app
    with _ws_open(client, tokens["op"]):
        _wait_slots(client, 1)
        with _ws_open(client, tokens["op"]) as second:
            refused = _refused(second)
        assert refused.code == 4429 and "streams open" in refused.reason
        sse = client.get("/api/alerts/stream", headers={"Authorization": f"Bearer {tokens['op']}"})
        assert sse.status_code == 429 and sse.headers["Retry-After"]
        with _ws_open(client, tokens["op2"]):  # another user still gets a stream, from the same pool
            _wait_slots(client, 2)
            assert client.app.state.stream_redis[1].connection_pool.max_connections == 3 + 4
    _wait_slots(client, 0)


def test_alert_stream_total_cap(small_app, rclient: redis.Redis) -> None:
    client, tokens = small_app
    store = ApiStore(rclient, scrypt_n=16)
    with ExitStack() as stack:
        for i in range(3):
            store.put_user(f"watch{i}", "operator", PASSWORD)
            token = client.post("/api/auth/login", json={"username": f"watch{i}", "password": PASSWORD}).json()
            stack.enter_context(_ws_open(client, token["access_token"]))
            _wait_slots(client, i + 1)
        with _ws_open(client, tokens["op"]) as late:
            refused = _refused(late)
        assert refused.code == 4429 and "too many" in refused.reason


def test_websocket_token_in_the_url_is_not_accepted(small_app) -> None:
    client, tokens = small_app
    with client.websocket_connect(f"/api/alerts/ws?token={tokens['op']}") as ws:
        assert _refused(ws).code == 4401  # no first message within ws_auth_timeout_s


@pytest.mark.parametrize("how", ["delete", "revoke"])
def test_open_websocket_closes_when_the_session_ends(small_app, rclient: redis.Redis, how: str) -> None:
    client, tokens = small_app
    with _ws_open(client, tokens["op"]) as ws:
        _wait_slots(client, 1)
        store = ApiStore(rclient, scrypt_n=16)
        if how == "delete":
            store.delete_user("op")
        else:
            store.revoke_token(tokens["op"])
        started = time.monotonic()
        assert _refused(ws).code == 4401
        assert time.monotonic() - started < 20
    _wait_slots(client, 0)


def test_open_sse_stream_ends_when_the_user_is_deleted(small_app, rclient: redis.Redis) -> None:
    client, tokens = small_app
    seen = []
    with client.stream("GET", "/api/alerts/stream", headers={"Authorization": f"Bearer {tokens['op2']}"}) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            seen.append(line)
            if line.startswith(": keep-alive") and len(seen) == 1:
                ApiStore(rclient, scrypt_n=16).delete_user("op2")
            if line.startswith("event: end"):
                break
    assert "event: end" in seen
    _wait_slots(client, 0)
