"""Live video follows a pushed camera configuration while viewers watch: a viewer of a camera removed by the push is
told and its socket closed (4404), not left on a dead source. Real RTSP camera, real ffmpeg, real Redis."""

from __future__ import annotations

import json

import pytest

from pipeline.config import parse_config
from tests.api.live_ws import until_closed
from tests.api.test_api_live import CLIP, cams, live_client, watch  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(240)


async def _follow(app) -> None:
    """What the configuration loop does in the app's event loop after loading a pushed version."""
    from api.routes.live import follow_live_config

    follow_live_config(app)


def test_a_viewer_of_a_camera_removed_by_a_push_is_ended_with_4404(live_client, cams) -> None:  # noqa: F811
    client, tokens = live_client
    app = client.app
    with client.websocket_connect("/api/live/gate/ws") as ws:
        ws.send_text(json.dumps({"token": tokens["op"]}))
        watch(ws, 2)
        app.state.camera_config = parse_config(f"cameras:\n  - {{id: lobby, name: Lobby, url: '{cams.url(CLIP)}'}}\n")
        client.portal.call(_follow, app)
        texts, code = until_closed(ws)
    assert code == 4404
    assert {"type": "end", "reason": "camera removed", "reason_code": "removed"} in texts
    assert not app.state.live_hub.upstream_pids()
