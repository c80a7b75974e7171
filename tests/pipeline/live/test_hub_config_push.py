"""The live hub follows a pushed camera configuration: a camera whose stream URL changed is pulled from the new URL
(its viewers resume on the new stream), a removed camera's upstream stops and its viewers are ended. Real RTSP
cameras, real ffmpeg upstreams, the API's own hub accessor."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from api.routes.live import live_hub
from api.settings import ApiSettings
from pipeline.config import Config, parse_config
from pipeline.live.fmp4 import Fragment, InitSegment
from pipeline.live.hub import StatusMessage
from pipeline.testcams import TestCameraServer
from tests.pipeline.live.test_hub import CLIP, hub_ffmpegs, next_of

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def cams(shared_dir: Path) -> Iterator[TestCameraServer]:
    with TestCameraServer(shared_dir / "data" / "videos", 0, names=[CLIP], aliases={"moved": CLIP}) as server:
        yield server


def _config(url: str, *, with_lobby: bool = True) -> Config:
    lobby = f"  - {{id: lobby, name: Lobby, url: '{url}'}}\n" if with_lobby else ""
    return parse_config(f"cameras:\n{lobby}  - {{id: other, name: Other, url: '{url}', enabled: true}}\n")


def _app(config: Config) -> SimpleNamespace:
    """What :func:`live_hub` reads of the app: its settings and its (pushed) camera configuration."""
    settings = ApiSettings(live_linger_s=0.5, live_preload="none")
    return SimpleNamespace(state=SimpleNamespace(settings=settings, camera_config=config, live_hub=None))


async def _upstream_urls() -> list[str]:
    return [arg for p in hub_ffmpegs() for arg in p.cmdline() if arg.startswith("rtsp://")]


def test_a_pushed_stream_url_moves_the_live_upstream_and_its_viewers(cams: TestCameraServer) -> None:
    async def run() -> None:
        app = _app(_config(cams.url(CLIP)))
        hub = live_hub(app)
        viewer = hub.subscribe("lobby")
        await next_of(viewer, Fragment)
        assert await _upstream_urls() == [cams.url(CLIP)]
        app.state.camera_config = _config(cams.url("moved"))  # pushed (api.clusterconfig)
        assert live_hub(app) is hub  # what every live route and the preload loop call
        await next_of(viewer, StatusMessage, 10, where=lambda m: m.status == "connecting")
        assert isinstance(await next_of(viewer, InitSegment), InitSegment)
        assert (await next_of(viewer, Fragment)).key  # the new stream, from a keyframe
        assert await _upstream_urls() == [cams.url("moved")]
        cams.stop_stream(CLIP)  # the old URL is not what feeds the viewer any more
        try:
            for _ in range(50):
                await next_of(viewer, Fragment, 20)
        finally:
            cams.start_stream(CLIP)
        assert viewer.source is hub.source("lobby") and viewer.source.camera.url == cams.url("moved")
        hub.unsubscribe(viewer)
        await hub.close()

    asyncio.run(run())


def test_a_camera_removed_by_a_push_ends_its_viewers_and_its_upstream(cams: TestCameraServer) -> None:
    from api.routes.live import follow_live_config

    async def run() -> None:
        app = _app(_config(cams.url(CLIP)))
        hub = live_hub(app)
        viewer = hub.subscribe("lobby")
        await next_of(viewer, Fragment)
        app.state.camera_config = _config(cams.url(CLIP), with_lobby=False)
        follow_live_config(app)  # what the configuration loop does after loading a pushed version
        gone = await next_of(viewer, StatusMessage, 10, where=lambda m: m.status == "offline")
        assert "removed" in gone.reason and viewer.source.retired
        with pytest.raises(KeyError):
            hub.subscribe("lobby")
        deadline = asyncio.get_running_loop().time() + 30
        while hub_ffmpegs():
            assert asyncio.get_running_loop().time() < deadline, "the removed camera's upstream still runs"
            await asyncio.sleep(0.2)
        hub.unsubscribe(viewer)
        await hub.close()

    asyncio.run(run())
