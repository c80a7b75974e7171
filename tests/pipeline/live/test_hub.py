"""The live hub against real RTSP cameras: one upstream ffmpeg however many viewers, slow viewers dropped to the
next keyframe with bounded memory, an offline camera reported and recovered, and an H.265 camera with Digest
authentication shown through its H.264 sub-stream with no password in any process listing."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pipeline.config import Config, parse_config
from pipeline.live.fmp4 import Fmp4Splitter, Fragment, InitSegment
from pipeline.live.hub import LiveHub, LiveSettings, LiveSource, StatusMessage, Viewer
from pipeline.secrets import clear_registered_secrets, secret_forms
from pipeline.testcams import TestCameraServer, cached_transcode
from tests.pipeline.ingest.conftest import gst_rtsp_server  # noqa: F401 - fixture

CLIP = "short_hamilton_clip"  # 640x360, 25 fps, a keyframe every second
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def cams(shared_dir: Path) -> Iterator[TestCameraServer]:
    with TestCameraServer(shared_dir / "data" / "videos", 0, names=[CLIP], aliases={"cam2": CLIP}) as server:
        yield server


def config_for(cams: TestCameraServer) -> Config:
    return parse_config("cameras:\n"
                        f"  - {{id: lobby, name: Lobby, url: '{cams.url(CLIP)}', sub_stream: '{cams.sub_url(CLIP)}'}}\n"
                        f"  - {{id: gate, name: Gate, url: '{cams.url('cam2')}'}}\n")


async def next_of(viewer: Viewer, kind: type, timeout_s: float = 60.0, where=None):
    """The next item of ``kind`` (that satisfies ``where``) from a viewer, skipping the others."""
    async def find():
        while True:
            item = await viewer.get()
            if isinstance(item, kind) and (where is None or where(item)):
                return item
    return await asyncio.wait_for(find(), timeout_s)


def hub_ffmpegs() -> list[psutil.Process]:
    """This test process's live upstream ffmpeg processes (children writing fragmented MP4)."""
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() == "ffmpeg" and "frag_keyframe+frag_every_frame+empty_moov+default_base_moof" in \
                    " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


def test_splitter_cuts_every_frame_into_one_fragment_whatever_the_chunking(shared_dir: Path) -> None:
    """ffmpeg's fragmented MP4 of the real footage (cut into odd chunk sizes): one init segment with the H.264
    codec string, one fragment per frame, a keyframe fragment exactly where ffprobe sees keyframes."""
    source = cached_transcode(shared_dir / "data" / "videos" / f"{CLIP}.mp4")
    data = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(source), "-t", "4", "-map", "0:v:0", "-c",
                           "copy", "-f", "mp4", "-movflags", "frag_keyframe+frag_every_frame+empty_moov+"
                           "default_base_moof", "pipe:1"], capture_output=True, check=True, timeout=60).stdout
    flags = subprocess.run(["ffprobe", "-loglevel", "error", "-select_streams", "v:0", "-read_intervals", "%+4",
                            "-show_entries", "packet=flags", "-of", "csv=p=0", str(source)],
                           capture_output=True, check=True, text=True, timeout=60).stdout.split()
    splitter, pieces, pos, step = Fmp4Splitter(), [], 0, 1
    while pos < len(data):
        pieces += splitter.feed(data[pos:pos + step])
        pos, step = pos + step, (step * 7 + 3) % 9001 + 1
    inits = [p for p in pieces if isinstance(p, InitSegment)]
    frags = [p for p in pieces if isinstance(p, Fragment)]
    assert len(inits) == 1 and inits[0].codec.startswith("avc1.") and len(inits[0].codec) == 11
    assert (inits[0].width, inits[0].height) == (640, 360)
    assert len(frags) == len(flags) and all(f.samples == 1 for f in frags)
    assert [f.key for f in frags] == ["K" in f for f in flags]
    assert [f.decode_time for f in frags] == sorted(f.decode_time for f in frags)


def test_two_viewers_one_upstream_slow_viewer_dropped_to_next_keyframe(cams: TestCameraServer) -> None:
    async def run() -> None:
        hub = LiveHub(config_for(cams), LiveSettings(linger_s=1.0, queue_fragments=10, queue_bytes=2**20))
        fast, slow = hub.subscribe("lobby"), hub.subscribe("lobby")
        source = fast.source
        assert slow.source is source
        init = await next_of(fast, InitSegment)
        assert init.is_h264
        frags = [await next_of(fast, Fragment) for _ in range(60)]  # ~2.4 s of video, two keyframes at least
        assert frags[0].key and sum(f.key for f in frags) >= 2
        assert all(b.decode_time > a.decode_time for a, b in zip(frags, frags[1:], strict=False))
        # the slow viewer read nothing: it was capped at 10 fragments and dropped the rest
        assert slow.queued_fragments <= 10 and slow.queued_bytes <= 2**20
        assert slow.lag_drops >= 1 and slow.dropped >= 40
        # what it gets next (after its init) starts at a keyframe
        assert isinstance(await next_of(slow, InitSegment), InitSegment)
        assert (await next_of(slow, Fragment)).key
        # one upstream ffmpeg for both viewers, and a third viewer joins it too
        third = hub.subscribe("lobby")
        assert third.source is source and source.sessions == 1
        assert len(hub.upstream_pids()) == 1 and [p.pid for p in hub_ffmpegs()] == hub.upstream_pids()
        # the GOP cache: the newcomer starts at a keyframe at once
        assert (await next_of(third, Fragment, timeout_s=5)).key
        for viewer in (fast, slow, third):
            hub.unsubscribe(viewer)
        deadline = asyncio.get_running_loop().time() + 30
        while hub.upstream_pids() or hub_ffmpegs():
            assert asyncio.get_running_loop().time() < deadline, \
                f"upstream not stopped after the last viewer: {hub.upstream_pids()}, " \
                f"{[(p.pid, p.status()) for p in hub_ffmpegs()]}, {source.status}, {source._task}"
            await asyncio.sleep(0.2)
        assert source.status == "idle"
        await hub.close()

    asyncio.run(run())


def test_offline_camera_is_reported_and_recovers_by_itself(cams: TestCameraServer) -> None:
    async def run() -> None:
        hub = LiveHub(config_for(cams), LiveSettings(linger_s=0.5, backoff_initial_s=0.5, backoff_max_s=1.0,
                                                     stall_s=3.0, connect_timeout_s=3.0))
        viewer = hub.subscribe("gate")
        await next_of(viewer, Fragment)
        cams.stop_stream("cam2")
        try:
            offline = await next_of(viewer, StatusMessage, where=lambda m: m.status == "offline")
            assert offline.reason  # says why (stream ended, 404, no video for N s)
            assert hub.info("gate")["status"] == "offline"
        finally:
            cams.start_stream("cam2")
        # a new upstream session: a new init segment, then video from a keyframe on, and the status is live again
        assert isinstance(await next_of(viewer, InitSegment, timeout_s=90), InitSegment)
        assert (await next_of(viewer, Fragment)).key
        assert hub.info("gate")["status"] == "live" and hub.info("gate")["reason"] == ""
        assert viewer.source.sessions >= 2
        hub.unsubscribe(viewer)
        await hub.close()
        assert not hub.upstream_pids()

    asyncio.run(run())


def test_h265_camera_with_password_plays_its_h264_sub_stream_and_hides_the_password(
        gst_rtsp_server: None, shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from pipeline.gstcams import MAIN_STREAM, SUB_STREAM, GstCameraServer

    password = "Adm!n@2024#x/:% ก๊อป"
    monkeypatch.setenv("LIVE_CAM_PW", password)
    mounts = {MAIN_STREAM: (CLIP, "h265"), SUB_STREAM: (CLIP, "h264")}
    try:
        with GstCameraServer(shared_dir / "data" / "videos", {"admin": password}, mounts) as cam:
            config = parse_config("cameras:\n"
                                  f'  - {{id: hik, name: Hik, url: "{cam.url("admin", "${LIVE_CAM_PW}")}",'
                                  f' sub_stream: "{cam.url("admin", "${LIVE_CAM_PW}", SUB_STREAM)}"}}\n')

            async def run() -> None:
                hub = LiveHub(config, LiveSettings(linger_s=0.5))
                viewer = hub.subscribe("hik", "main")
                init = await next_of(viewer, InitSegment, timeout_s=90)
                assert init.is_h264, init.codec  # the main stream is H.265: the H.264 sub-stream is shown
                assert viewer.source.mode == "sub-stream"
                live = await next_of(viewer, StatusMessage, where=lambda m: m.status == "live")
                assert "sub-stream" in live.reason
                assert (await next_of(viewer, Fragment)).key
                listing = "\n".join(_cmdline(p) for p in psutil.process_iter())
                assert not [f for f in secret_forms(password) if f in listing], "a camera password is in ps"
                assert hub_ffmpegs(), "no upstream ffmpeg seen"
                hub.unsubscribe(viewer)
                await hub.close()

            asyncio.run(run())
    finally:
        clear_registered_secrets()


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def test_a_viewer_whose_queue_grows_old_drops_to_the_next_keyframe(cams: TestCameraServer) -> None:
    """Besides the count and byte caps, a queue whose oldest fragment waited longer than queue_age_s is dropped:
    a viewer that reads, but slower than the camera sends, stays within about a second of live."""
    async def run() -> None:
        hub = LiveHub(config_for(cams), LiveSettings(linger_s=0.5, queue_fragments=1000, queue_age_s=0.5))
        viewer = hub.subscribe("gate")
        await next_of(viewer, Fragment)
        got = []
        while viewer.lag_drops < 2:  # read one fragment every 0.1 s: 10 fps of a 25 fps camera
            await asyncio.sleep(0.1)
            item = viewer.pop()
            if isinstance(item, Fragment):
                got.append(item)
            assert len(got) < 300, "a slow reader was never dropped"
        resumed = await next_of(viewer, Fragment)
        assert resumed.key and viewer.dropped > 0
        hub.unsubscribe(viewer)
        await hub.close()

    asyncio.run(run())


def test_h265_camera_without_sub_stream_is_transcoded_within_the_limit(shared_dir: Path) -> None:
    """An H.265 camera with no sub-stream plays as a bounded H.264 transcode (said in the status); beyond
    ``max_transcodes`` a second such camera is offline with the reason instead of costing more CPU."""
    with TestCameraServer(shared_dir / "data" / "videos", 0, codec="h265", names=[CLIP], aliases={"h2": CLIP},
                          sub_streams=False) as server:
        config = parse_config("cameras:\n"
                              f"  - {{id: hevc, name: HEVC, url: '{server.url(CLIP)}'}}\n"
                              f"  - {{id: hevc2, name: HEVC 2, url: '{server.url('h2')}'}}\n")

        async def run() -> None:
            hub = LiveHub(config, LiveSettings(linger_s=0.5, max_transcodes=1, backoff_max_s=2.0))
            viewer = hub.subscribe("hevc")
            init = await next_of(viewer, InitSegment, timeout_s=90)
            assert init.is_h264 and viewer.source.mode == "transcode"
            assert (await next_of(viewer, Fragment)).key
            assert "transcoded" in hub.info("hevc")["reason"]
            other = hub.subscribe("hevc2")
            refused = await next_of(other, StatusMessage, timeout_s=90,
                                    where=lambda m: m.status == "offline" and "transcode" in m.reason)
            assert "limit" in refused.reason and hub.transcodes == 1
            for v in (viewer, other):
                hub.unsubscribe(v)
            await hub.close()
            assert hub.transcodes == 0

        asyncio.run(run())


def test_a_preloaded_stream_runs_without_viewers_serves_a_first_viewer_from_its_cache_and_recovers(
        cams: TestCameraServer) -> None:
    """Preload (go2rtc's ``preload``): the upstream runs with no viewer, at most ``preload_max`` of them; a first
    viewer finds the init segment and a keyframe fragment already queued when it subscribes; the last viewer
    leaving starts no linger; a camera outage is retried without viewers; leaving the preload set stops it."""
    async def run() -> None:
        hub = LiveHub(config_for(cams), LiveSettings(linger_s=0.5, preload_max=1, backoff_initial_s=0.5,
                                                     backoff_max_s=1.0, stall_s=3.0, connect_timeout_s=3.0))
        assert hub.set_preload([("nope", "main"), ("gate", "main"), ("lobby", "main")]) == ["gate/main"]  # the cap
        source = hub.sources[("gate", "main")]
        await until(lambda: source.status == "live" and source.gop and source.gop[0].key, "a preloaded upstream")
        assert not source.viewers and source.sessions == 1 and hub.preloaded() == ["gate/main"]
        assert [p.pid for p in hub_ffmpegs()] == hub.upstream_pids() == [source.pid]
        assert source.info()["preloaded"] and source.info()["startup"]["first_fragment_s"] > 0
        viewer = hub.subscribe("gate")
        # already queued when subscribe returns: no wait for ffmpeg, RTSP or the camera's next keyframe
        assert isinstance(viewer.pop(), InitSegment)
        first = viewer.pop()
        assert isinstance(first, Fragment) and first.key
        hub.unsubscribe(viewer)
        assert source._linger is None and source._task is not None and not source._task.done()
        cams.stop_stream("cam2")  # an outage with nobody watching: retried by itself
        try:
            await until(lambda: source.status == "offline", "the preloaded camera seen offline")
        finally:
            cams.start_stream("cam2")
        await until(lambda: source.status == "live" and source.sessions >= 2, "the preloaded camera back", 90)
        assert hub.set_preload([]) == [] and not source.preloaded
        await until(lambda: not hub.upstream_pids() and not hub_ffmpegs() and source.status == "idle",
                    "the upstream stopped after leaving the preload set",
                    state=lambda: (hub.upstream_pids(), [(p.pid, p.status()) for p in hub_ffmpegs()], source.status,
                                   source._task, source._linger))
        hub.set_preload([("lobby", "sub")])  # the hub's shutdown stops preloaded upstreams too
        await until(lambda: hub.upstream_pids(), "the sub-stream preloaded")
        await hub.close()
        assert not hub.upstream_pids() and not hub_ffmpegs()

    asyncio.run(run())


async def until(predicate, what: str, timeout_s: float = 60.0, state=None) -> None:
    """Poll ``predicate`` in the event loop until it is truthy (generous: CI is a loaded 2-core machine);
    ``state()`` says what was seen instead."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, \
            f"timed out waiting for {what}" + (f": {state()}" if state else "")
        await asyncio.sleep(0.1)


def test_queued_fragments_are_taken_together_up_to_the_count_bytes_and_the_next_message() -> None:
    """What one WebSocket message of a viewer that fell behind carries: the fragments at the head of its queue, at
    most ``max_count`` and ``max_bytes``, never past an init segment or status message, counted as sent."""
    async def run() -> None:
        config = parse_config("cameras:\n  - {id: x, name: X, url: 'rtsp://127.0.0.1:9/x'}\n")
        source = LiveSource(camera=config.cameras[0], variant="main", hub=LiveHub(config))
        viewer = Viewer(source, max_fragments=50, max_bytes=2**20)
        frags = [Fragment(data=bytes([i]) * 100, key=i == 0, decode_time=i, samples=1) for i in range(6)]
        for fragment in frags[:4]:
            viewer.offer(fragment)
        viewer.offer_status(StatusMessage("live"))
        for fragment in frags[4:]:
            viewer.offer(fragment)
        assert viewer.pop() is frags[0]
        assert viewer.pop_fragments(10, 250) == frags[1:3]  # the bytes cap: two more of 100 bytes
        assert viewer.pop_fragments(10, 2**20) == frags[3:4]  # stops at the status message
        assert isinstance(viewer.pop(), StatusMessage)
        assert viewer.pop_fragments(1, 2**20) == frags[4:5]  # the count cap
        assert viewer.sent_fragments == 5 and viewer.queued_fragments == 1 and viewer.sent_bytes == 500

    asyncio.run(run())


def test_a_url_that_cannot_be_handed_to_ffmpeg_is_reported_and_leaks_no_descriptor(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A camera URL whose secret holds a control character (a token read from a file with its newline) cannot go
    into the ffconcat script: every retry says so, and the pipe made for the script is closed again (the API process
    would otherwise lose one fd per retry for as long as anyone watches or preloads the camera)."""
    monkeypatch.setenv("LIVE_FD_PASSWORD", "pw-Lv31-never-shown")
    monkeypatch.setenv("LIVE_FD_TOKEN", "tok-9\n")
    config = parse_config("cameras:\n  - {id: door, name: Door, "
                          "url: 'rtsp://admin:${LIVE_FD_PASSWORD}@127.0.0.1:9/main?token=${LIVE_FD_TOKEN}'}\n")
    attempts: list[int] = []
    original = LiveSource._spawn

    async def counted(self: LiveSource, plan):  # noqa: ANN001, ANN202 - the real method, counted
        attempts.append(1)
        return await original(self, plan)

    monkeypatch.setattr(LiveSource, "_spawn", counted)

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def run() -> None:
        hub = LiveHub(config, LiveSettings(linger_s=0.2, backoff_initial_s=0.05, backoff_max_s=0.1))
        viewer = hub.subscribe("door")
        offline = await next_of(viewer, StatusMessage, where=lambda m: m.status == "offline")
        assert "control characters" in offline.reason and "pw-Lv31" not in offline.reason
        before, tried = open_fds(), len(attempts)
        deadline = asyncio.get_running_loop().time() + 60
        while len(attempts) < tried + 10 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        assert len(attempts) >= tried + 10, "the upstream was not retried"
        leaked = open_fds() - before
        hub.unsubscribe(viewer)
        await hub.close()
        assert leaked <= 1, f"{leaked} file descriptors leaked over {len(attempts) - tried} retries"

    asyncio.run(run())
