"""Live video WebSocket and the video wall layout against the real API, Redis and real RTSP test cameras: what a
viewer gets (hello, init JSON with the codec, the init segment, keyframe-first fragments), what an attacker gets
(no token, a bad token, the token in the URL, another camera, crafted ids), audit of every session, one upstream
for many viewers, the info route and the saved layout."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore
from pipeline.testcams import TestCameraServer
from tests.conftest import wait_for

CLIP = "short_hamilton_clip"
PASSWORD = "correct horse battery"
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def cams(shared_dir: Path) -> Iterator[TestCameraServer]:
    with TestCameraServer(shared_dir / "data" / "videos", 0, names=[CLIP], aliases={"cam2": CLIP}) as server:
        yield server


@pytest.fixture()
def live_client(cams: TestCameraServer, redis_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, dict]]:
    config = tmp_path / "cameras.yaml"
    config.write_text("cameras:\n"
                      f"  - {{id: lobby, name: Lobby, url: '{cams.url(CLIP)}', sub_stream: '{cams.sub_url(CLIP)}'}}\n"
                      f"  - {{id: gate, name: Gate, url: '{cams.url('cam2')}'}}\n"
                      "  - {id: dead, name: Dead, url: 'rtsp://127.0.0.1:9/none'}\n", encoding="utf-8")
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config, scrypt_n=16,
                           ws_auth_timeout_s=1.0, live_linger_s=0.5, live_streams_per_user=3,
                           live_preload_default_wall=False)  # upstreams start only where a test asks
    store = ApiStore(redis.Redis.from_url(redis_url), scrypt_n=16)
    for name, role, limit in (("op", "operator", None), ("lim", "operator", ["lobby"]), ("adm", "admin", None)):
        store.put_user(name, role, PASSWORD, limit)
    with TestClient(create_app(settings)) as client:
        tokens = {}
        for name in ("op", "lim", "adm"):
            r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
            assert r.status_code == 200, r.text
            tokens[name] = r.json()["access_token"]
        yield client, tokens


def boxes(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        out.append(kind)
        pos += size
    return out


def refused(client: TestClient, path: str, first: str | None = None, headers: dict | None = None) -> tuple[int, str]:
    """(close code, reason) of a live WebSocket that the server refuses."""
    try:
        with client.websocket_connect(path, headers=headers or {}) as ws:
            if first is not None:
                ws.send_text(first)
            while True:
                message = ws.receive()
                if message["type"] == "websocket.close":
                    return message["code"], message.get("reason", "")
                assert "bytes" not in message or not message["bytes"], f"video sent to a refused viewer on {path}"
                text = message.get("text") or ""
                assert '"hello"' not in text and '"init"' not in text, f"{path}: stream opened: {text}"
    except WebSocketDisconnect as exc:
        return exc.code, exc.reason or ""


def split_fragments(message: bytes) -> list[bytes]:
    """The ``moof``+``mdat`` fragments of a binary live message (one or more; nothing else in it)."""
    out, pos = [], 0
    kinds = boxes(message)
    assert kinds and len(kinds) % 2 == 0 and kinds == [b"moof", b"mdat"] * (len(kinds) // 2), kinds
    while pos < len(message):
        moof = struct.unpack_from(">I", message, pos)[0]
        mdat = struct.unpack_from(">I", message, pos + moof)[0]
        out.append(message[pos:pos + moof + mdat])
        pos += moof + mdat
    return out


def watch(ws, fragments: int) -> dict:
    """Read a live socket: the hello, init JSON, init segment and at least ``fragments`` fragments (``messages``:
    the binary messages after the init segment, each one or more fragments)."""
    got = {"texts": [], "init": None, "fragments": [], "messages": []}
    while len(got["fragments"]) < fragments:
        message = ws.receive()
        assert message["type"] == "websocket.send", message
        if message.get("text") is not None:
            got["texts"].append(json.loads(message["text"]))
        elif got["init"] is None:
            got["init"] = message["bytes"]
        else:
            got["messages"].append(message["bytes"])
            got["fragments"] += split_fragments(message["bytes"])
    return got


def audit(rclient: redis.Redis, action: str) -> list[dict]:
    out = []
    for _, fields in rclient.xrange("audit"):
        if fields[b"action"].decode() == action:
            out.append({"user": fields[b"user"].decode(), **json.loads(fields[b"params"])})
    return out


def test_viewer_gets_codec_init_and_keyframe_first_fragments_and_the_session_is_audited(live_client, rclient):
    client, tokens = live_client
    with client.websocket_connect("/api/live/lobby/ws") as ws:
        ws.send_text(json.dumps({"token": tokens["op"]}))
        got = watch(ws, 30)
    hello, init = got["texts"][0], next(t for t in got["texts"] if t["type"] == "init")
    assert hello == {"type": "hello", "camera_id": "lobby", "name": "Lobby", "stream": "main"}
    assert init["codec"].startswith("avc1.") and init["mime"] == f'video/mp4; codecs="{init["codec"]}"'
    assert (init["width"], init["height"], init["mode"]) == (640, 360, "remux")
    assert boxes(got["init"]) == [b"ftyp", b"moov"]
    assert all(boxes(f) == [b"moof", b"mdat"] for f in got["fragments"])
    # the first fragment is a keyframe: trun's first-sample flags, or the default flags of tfhd, say "sync"
    from pipeline.live.fmp4 import fragment_facts

    facts = [fragment_facts(f) for f in got["fragments"]]
    assert facts[0].key and [f.decode_time for f in facts] == sorted(f.decode_time for f in facts)
    wait_for(lambda: audit(rclient, "live_stop"), 30, "the live_stop audit record")
    starts, stops = audit(rclient, "live_start"), audit(rclient, "live_stop")
    assert starts == [{"user": "op", "camera_id": "lobby", "stream": "main"}]
    assert stops and stops[0]["camera_id"] == "lobby" and stops[0]["bytes"] > 0 and stops[0]["user"] == "op"


def test_attackers_get_no_video(live_client, rclient):
    client, tokens = live_client
    # no token at all (nothing sent within the auth timeout), a bad token, garbage, the token in the URL
    assert refused(client, "/api/live/lobby/ws")[0] == 4401
    assert refused(client, "/api/live/lobby/ws", json.dumps({"token": "not-a-token"}))[0] == 4401
    assert refused(client, "/api/live/lobby/ws", "{not json")[0] == 4401
    assert refused(client, "/api/live/lobby/ws", json.dumps({"token": ["x"]}))[0] == 4401
    assert refused(client, f"/api/live/lobby/ws?token={tokens['op']}", "hello")[0] == 4401
    assert refused(client, "/api/live/lobby/ws", headers={"X-API-Key": "forged-key"})[0] == 4401
    # a camera-limited user asks for another camera, and for one that does not exist: the same answer
    code, reason = refused(client, "/api/live/gate/ws", json.dumps({"token": tokens["lim"]}))
    assert code == 4404 and "gate" in reason
    assert refused(client, "/api/live/nope/ws", json.dumps({"token": tokens["lim"]}))[0] == 4404
    assert refused(client, "/api/live/nope/ws", json.dumps({"token": tokens["op"]}))[0] == 4404
    # crafted camera ids and streams never reach the hub
    for path in ("/api/live/GATE/ws", "/api/live/gate%00/ws", "/api/live/-gate/ws", f"/api/live/{'a' * 65}/ws",
                 "/api/live/lobby/ws?stream=../../etc", "/api/live/lobby/ws?stream=MAIN"):
        assert refused(client, path, json.dumps({"token": tokens["op"]})) == (
            4422, "malformed camera id or stream (main or sub)"), path
    # an encoded slash matches no WebSocket route at all: closed without a stream
    assert refused(client, "/api/live/gate%2F..%2Flobby/ws", json.dumps({"token": tokens["op"]}))[0] == 1000
    hub = getattr(client.app.state, "live_hub", None)
    assert hub is None or not [k for k, s in hub.sources.items() if s.sessions], "a refused viewer got an upstream"
    refusals = audit(rclient, "live_refused")
    assert {"user": "lim", "camera_id": "gate", "reason": "not found or not permitted"} in refusals
    # the limited user does get their own camera
    with client.websocket_connect("/api/live/lobby/ws") as ws:
        ws.send_text(json.dumps({"token": tokens["lim"]}))
        assert watch(ws, 3)["fragments"]


def test_many_viewers_share_one_upstream_and_the_stream_cap_holds(live_client):
    client, tokens = live_client
    first = json.dumps({"token": tokens["op"]})
    with client.websocket_connect("/api/live/gate/ws") as a, client.websocket_connect("/api/live/gate/ws") as b:
        a.send_text(first)
        b.send_text(first)
        watch(a, 5)
        watch(b, 5)
        hub = client.app.state.live_hub
        source = hub.sources[("gate", "main")]
        assert source.sessions == 1 and len(hub.upstream_pids()) == 1 and len(source.viewers) == 2
        info = client.get("/api/live/gate/info", headers={"Authorization": f"Bearer {tokens['op']}"}).json()
        assert info["status"] == "live" and info["viewers"] == 2 and info["codec"].startswith("avc1.")
        with client.websocket_connect("/api/live/gate/ws") as c:
            c.send_text(first)
            watch(c, 1)
            assert refused(client, "/api/live/gate/ws", first)[0] == 4429  # CCTV_LIVE_STREAMS_PER_USER = 3


def test_dead_camera_says_offline_and_keeps_the_socket(live_client):
    client, tokens = live_client
    with client.websocket_connect("/api/live/dead/ws") as ws:
        ws.send_text(json.dumps({"token": tokens["op"]}))
        statuses = []
        while not any(s.get("status") == "offline" for s in statuses):
            message = ws.receive()
            assert message.get("bytes") is None
            statuses.append(json.loads(message["text"]))
        offline = statuses[-1]
        assert offline["reason"], offline


def test_info_and_layout(live_client):
    client, tokens = live_client
    op = {"Authorization": f"Bearer {tokens['op']}"}
    lim = {"Authorization": f"Bearer {tokens['lim']}"}
    info = client.get("/api/live/lobby/info?stream=sub", headers=op).json()
    assert info["stream"] == "sub" and info["has_sub_stream"] and info["status"] == "idle"
    assert client.get("/api/live/gate/info?stream=sub", headers=op).json()["stream"] == "main"  # no sub-stream
    assert client.get("/api/live/gate/info", headers=lim).status_code == 404
    assert client.get("/api/live/GATE/info", headers=op).status_code == 422
    assert client.get("/api/live/gate/info").status_code == 401
    # layouts: the default, a saved one (survives a new app = read back from Redis), refused cameras
    default = client.get("/api/live/layout", headers=lim).json()
    assert default == {"grid": "1", "tiles": ["lobby"], "stream": "auto", "saved": False, "updated_at": None}
    saved = client.put("/api/live/layout", headers=op, json={"grid": "2x2", "tiles": ["gate", None, "lobby"],
                                                             "stream": "sub"})
    assert saved.status_code == 200 and saved.json()["saved"]
    again = client.get("/api/live/layout", headers=op).json()
    assert (again["grid"], again["tiles"], again["stream"]) == ("2x2", ["gate", None, "lobby"], "sub")
    assert client.put("/api/live/layout", headers=lim, json={"grid": "2x2", "tiles": ["gate"]}).status_code == 422
    assert client.put("/api/live/layout", headers=op, json={"grid": "1", "tiles": ["gate", "lobby"]}).status_code == 422
    bad = client.put("/api/live/layout", headers=op, json={"grid": "2x2", "tiles": ["../etc"]})
    assert bad.status_code == 422 and "tiles[0]" in bad.json()["detail"]
    assert client.put("/api/live/layout", headers=op, json={"grid": "5x5"}).status_code == 422
    assert client.get("/api/live/layout", headers=lim).json()["saved"] is False  # per user


def test_a_client_that_stops_acknowledging_gets_no_more_and_resumes_at_a_keyframe(live_client):
    """Flow control: with {"ack": N} messages, at most CCTV_LIVE_ACK_WINDOW (30) fragments are in flight; a client
    that falls behind loses what queued meanwhile and resumes at a keyframe."""
    import time

    from pipeline.live.fmp4 import fragment_facts

    client, tokens = live_client
    with client.websocket_connect("/api/live/gate/ws") as ws:
        ws.send_text(json.dumps({"token": tokens["op"]}))
        ws.send_text(json.dumps({"ack": 0}))  # this client acknowledges (flow control from the start)
        got = watch(ws, 5)
        acked = len(got["fragments"])  # fragments, not messages: a message may carry several
        ws.send_text(json.dumps({"ack": acked}))  # ... and then stops acknowledging
        viewer = next(iter(client.app.state.live_hub.sources[("gate", "main")].viewers))
        deadline = time.monotonic() + 60
        while viewer.lag_drops == 0:  # 30 in flight, then the queue (50) fills and is dropped
            assert time.monotonic() < deadline, "the server kept sending to a client that stopped acknowledging"
            time.sleep(0.2)
        assert viewer.in_flight() == 30 and viewer.sent_fragments == acked + 30
        assert viewer.queued_fragments <= client.app.state.settings.live_queue_fragments
        received = len(got["fragments"])
        while received < acked + 30:  # exactly what was in flight is there to read, nothing more
            message = ws.receive()
            if message.get("bytes") is not None:
                received += len(split_fragments(message["bytes"]))
        assert received == acked + 30
        ws.send_text(json.dumps({"ack": received}))
        message = ws.receive()
        while message.get("bytes") is None:
            message = ws.receive()
        assert fragment_facts(split_fragments(message["bytes"])[0]).key, \
            "after a drop the stream did not resume at a keyframe"
        assert viewer.dropped > 0


def test_the_preload_set_follows_the_saved_layouts(live_client):
    """CCTV_LIVE_PRELOAD=layouts (the default): a saved wall's camera streams run with no viewer, the first viewer
    of one joins that upstream (no new ffmpeg) and starts at a keyframe; a new layout moves the preload."""
    client, tokens = live_client
    op = {"Authorization": f"Bearer {tokens['op']}"}
    from api.routes.live import live_hub

    hub = live_hub(client.app)  # the one the preload loop uses (made by whichever comes first)
    assert hub.preloaded() == []
    # a 2x2 wall on "auto" opens sub-streams; gate has none, so its main stream is what runs
    assert client.put("/api/live/layout", headers=op, json={"grid": "2x2", "tiles": ["gate"]}).status_code == 200
    wait_for(lambda: hub.preloaded() == ["gate/main"], 30, "gate preloaded after its layout was saved")
    info = {}

    def live_without_viewers() -> bool:
        info.update(client.get("/api/live/gate/info", headers=op).json())
        return info["status"] == "live"
    wait_for(live_without_viewers, 60, "the preloaded upstream live")
    assert info["preloaded"] and info["viewers"] == 0 and info["startup"]["first_fragment_s"] > 0
    source = hub.sources[("gate", "main")]
    with client.websocket_connect("/api/live/gate/ws") as ws:
        ws.send_text(json.dumps({"token": tokens["op"]}))
        from pipeline.live.fmp4 import fragment_facts

        assert fragment_facts(watch(ws, 1)["fragments"][0]).key
        assert source.sessions == 1  # served by the preloaded upstream
    # another user's one-tile wall on "auto" opens the main stream; op's new layout drops gate
    assert client.put("/api/live/layout", headers={"Authorization": f"Bearer {tokens['lim']}"},
                      json={"grid": "1", "tiles": ["lobby"]}).status_code == 200
    assert client.put("/api/live/layout", headers=op, json={"grid": "1", "tiles": []}).status_code == 200
    wait_for(lambda: hub.preloaded() == ["lobby/main"], 30, "the preload set following the layouts")
    wait_for(lambda: client.get("/api/live/gate/info", headers=op).json()["status"] == "idle", 60,
             "gate's upstream stopped once no layout holds it")


def test_a_viewer_that_fell_behind_gets_what_queued_in_one_message_and_acks_count_fragments(live_client):
    """Coalescing: fragments that queued while the client's window was full go out together in one binary message
    of whole moof+mdat fragments (consecutive frames); the client acknowledges fragments, and the server's count
    of fragments in flight agrees with it."""
    import dataclasses
    import time

    from api.routes.live import live_hub
    from pipeline.live.fmp4 import fragment_facts

    client, tokens = live_client
    hub = live_hub(client.app)
    hub.settings = dataclasses.replace(hub.settings, queue_age_s=30.0)  # no drop while this test holds back
    with client.websocket_connect("/api/live/gate/ws") as ws:
        ws.send_text(json.dumps({"token": tokens["op"]}))
        ws.send_text(json.dumps({"ack": 0}))
        got = watch(ws, 30)  # the window (30) is full now: the server waits for an ack
        received = len(got["fragments"])
        viewer = next(iter(hub.sources[("gate", "main")].viewers))
        deadline = time.monotonic() + 60
        while viewer.queued_fragments < 5:  # frames queue meanwhile
            assert time.monotonic() < deadline, "nothing queued while the window was full"
            time.sleep(0.05)
        ws.send_text(json.dumps({"ack": received}))
        message = ws.receive()
        while message.get("bytes") is None:
            message = ws.receive()
        batch = split_fragments(message["bytes"])
        assert len(batch) >= 5, f"{len(batch)} fragment(s) in the message after the window opened"
        facts = [fragment_facts(f) for f in [got["fragments"][-1], *batch]]
        steps = {b.decode_time - a.decode_time for a, b in zip(facts, facts[1:], strict=False)}
        assert len(steps) == 1 and steps.pop() > 0, "the message is not the next consecutive frames"
        received += len(batch)
        ws.send_text(json.dumps({"ack": received}))
        wait_for(lambda: viewer.acked == received, 30, "the server taking the fragment count as acknowledged")
        assert viewer.sent_fragments - viewer.in_flight() == received and viewer.dropped == 0


def test_the_served_api_does_not_negotiate_permessage_deflate(cams: TestCameraServer, redis_url: str,
                                                              tmp_path: Path) -> None:
    """H.264 does not deflate: the API as pipeline.service serves it declines the permessage-deflate that
    browsers and the websockets client offer (uvicorn's default would accept it), and the live socket works."""
    import asyncio

    import websockets

    from tests.api.web.serving import served

    config = tmp_path / "cameras.yaml"
    config.write_text(f"cameras:\n  - {{id: gate, name: Gate, url: '{cams.url('cam2')}'}}\n", encoding="utf-8")
    settings = ApiSettings(redis_url=redis_url, recordings_dir=tmp_path / "rec", config_path=config, scrypt_n=16,
                           live_linger_s=0.5, live_preload="none")
    ApiStore(redis.Redis.from_url(redis_url), scrypt_n=16).put_user("op", "operator", PASSWORD, None)
    with served(create_app(settings), "live-deflate") as base:
        import httpx

        token = httpx.post(f"{base}/api/auth/login", json={"username": "op", "password": PASSWORD},
                           timeout=30).json()["access_token"]

        async def handshake() -> tuple[str | None, str | None, dict]:
            async with websockets.connect(base.replace("http", "ws", 1) + "/api/live/gate/ws",
                                          compression="deflate") as ws:
                offered = ws.request.headers.get("Sec-WebSocket-Extensions")
                await ws.send(json.dumps({"token": token}))
                hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
                return offered, ws.response.headers.get("Sec-WebSocket-Extensions"), hello

        offered, accepted, hello = asyncio.run(handshake())
    assert offered and "permessage-deflate" in offered  # the client did offer it
    assert accepted is None, f"the server negotiated {accepted}"
    assert hello["type"] == "hello" and hello["camera_id"] == "gate"


def test_the_preload_policy_orders_caps_and_follows_the_setting(rclient, tmp_path: Path) -> None:
    """preload_wanted: CCTV_LIVE_PRELOAD_CAMERAS first, then the saved layouts newest first with the stream each
    wall opens, then (all) every enabled camera; duplicates once; none reads no layout; malformed records are skipped; the hub keeps the cap."""
    import asyncio
    from types import SimpleNamespace

    from api.routes.live import LAYOUT_KEY, preload_wanted
    from pipeline.config import parse_config
    from pipeline.live.hub import LiveHub, LiveSettings

    config = parse_config("cameras:\n" + "".join(
        f"  - {{id: c{i}, name: C{i}, url: 'rtsp://127.0.0.1:9/c{i}'{', enabled: false' if i == 4 else ''}}}\n"
        for i in range(5)))
    layouts = {"old": {"grid": "2x2", "tiles": ["c1", None, "c2"], "stream": "auto", "updated_at": 100},
               "new": {"grid": "1", "tiles": ["c2"], "stream": "auto", "updated_at": 200},
               "odd": {"grid": "2x2", "tiles": ["c3"], "stream": "main", "updated_at": 50}}
    for user, layout in layouts.items():
        rclient.set(LAYOUT_KEY.format(username=user), json.dumps(layout))
    rclient.set(LAYOUT_KEY.format(username="broken"), "{not json")
    rclient.set(LAYOUT_KEY.format(username="list"), "[1, 2]")
    rclient.set(LAYOUT_KEY.format(username="odd-time"), json.dumps({"grid": "1", "tiles": [], "updated_at": "x"}))

    def wanted(**settings) -> list[tuple[str, str]]:
        settings.setdefault("live_preload_default_wall", False)
        app = SimpleNamespace(state=SimpleNamespace(camera_config=config, settings=ApiSettings(**settings)))
        return preload_wanted(app, rclient)

    assert wanted(live_preload_cameras=["c3"]) == [("c3", "sub"), ("c2", "main"), ("c1", "sub"), ("c2", "sub"),
                                                   ("c3", "main")]
    assert wanted(live_preload="none", live_preload_cameras=["c0"]) == [("c0", "sub")]
    assert wanted(live_preload="all")[-2:] == [("c0", "sub"), ("c3", "sub")]  # c4 is disabled; c1, c2 came before
    assert ("c4", "sub") not in wanted(live_preload="all")
    # the default wall (users without a saved layout): c0-c3 enabled -> 2x2 on sub-streams, after the saved layouts
    assert wanted(live_preload_default_wall=True) == [("c2", "main"), ("c1", "sub"), ("c2", "sub"), ("c3", "main"),
                                                      ("c0", "sub"), ("c3", "sub")]
    assert wanted(live_preload="none", live_preload_default_wall=True) == []

    async def capped() -> list[str]:
        hub = LiveHub(config, LiveSettings(preload_max=2, linger_s=0.1, backoff_initial_s=5.0))
        try:  # the camera URLs answer nothing: the upstreams only retry; the cap and the order are what counts
            return hub.set_preload([("c4", "sub"), *wanted(live_preload="all")])
        finally:
            await hub.close()
    assert asyncio.run(capped()) == ["c2/main", "c1/main"]  # c4 unknown (disabled); c1 has no sub-stream: main


def test_a_camera_added_by_a_pushed_configuration_plays_and_a_refused_viewer_leaves_no_slot(live_client, cams):
    """The API follows a pushed camera configuration (``api.clusterconfig``) while its live hub already runs: a
    camera added afterwards plays, and no viewer of it keeps a stream slot after leaving (a leaked slot per try
    would lock the user out of live video with 4429 until the API restarts)."""
    from pipeline.config import parse_config

    client, tokens = live_client
    app = client.app
    assert client.get("/api/live/lobby/info", headers={"Authorization": f"Bearer {tokens['op']}"}).status_code == 200
    assert getattr(app.state, "live_hub", None) is not None  # the hub exists before the configuration changes
    app.state.camera_config = parse_config("cameras:\n"
                                           f"  - {{id: lobby, name: Lobby, url: '{cams.url(CLIP)}'}}\n"
                                           f"  - {{id: yard, name: Yard, url: '{cams.url('cam2')}'}}\n")
    for _ in range(4):  # more tries than the user's 3 slots
        with client.websocket_connect("/api/live/yard/ws") as ws:
            ws.send_text(json.dumps({"token": tokens["op"]}))
            got = watch(ws, 2)
        assert got["texts"][0]["type"] == "hello" and got["texts"][0]["camera_id"] == "yard"
        assert boxes(got["init"]) == [b"ftyp", b"moov"]
    wait_for(lambda: app.state.live_slots.total == 0, 20, "every live slot given back")
    # a camera the pushed configuration removed is no longer streamed to anyone
    assert refused(client, "/api/live/gate/ws", json.dumps({"token": tokens["op"]}))[0] == 4404
