"""Every live offline reason carries a stable machine code (for the page to translate) next to the English text."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.config import parse_config
from pipeline.live.hub import LiveHub, LiveSettings, StatusMessage, explain, explain_code

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("stderr", "code"), [
    ("[tcp @ 0x55d0c0a1b2c0] Connection to tcp://127.0.0.1:9?timeout=10000000 failed: Connection refused",
     "refused"),
    ("[rtsp @ 0x55d0c0a1b2c0] method DESCRIBE failed: 401 Unauthorized", "unauthorized"),
    ("[rtsp @ 0x55d0c0a1b2c0] method DESCRIBE failed: 404 Not Found", "not_found"),
    ("[rtsp @ 0x55d0c0a1b2c0] method DESCRIBE failed: 403 Forbidden", "forbidden"),
    ("[tcp @ 0x55d0c0a1b2c0] Connection to tcp://10.0.0.9:554 failed: Connection timed out", "timeout"),
    ("[tcp @ 0x55d0c0a1b2c0] Connection to tcp://10.9.9.9:554 failed: No route to host", "unreachable"),
    ("Invalid data found when processing input", "ended"),
    ("", "ended"),
])
def test_explain_code_gives_a_stable_code_and_the_english_text(stderr: str, code: str) -> None:
    got_code, text = explain_code(stderr)
    assert got_code == code
    assert text == explain(stderr) and text  # the English text is kept as it was
    assert "0x55" not in text


def test_refused_camera_reports_code_refused_to_viewers() -> None:
    config = parse_config("cameras:\n  - {id: dead, name: Dead, url: 'rtsp://127.0.0.1:9/none'}\n")

    async def run() -> StatusMessage:
        hub = LiveHub(config, LiveSettings(linger_s=0.5, backoff_initial_s=0.5, backoff_max_s=1.0,
                                           stall_s=3.0, connect_timeout_s=3.0))
        viewer = hub.subscribe("dead")
        try:
            async def offline() -> StatusMessage:
                while True:
                    item = await viewer.get()
                    if isinstance(item, StatusMessage) and item.status == "offline":
                        return item
            message = await asyncio.wait_for(offline(), 30)
            assert hub.info("dead")["reason_code"] == "refused"
            return message
        finally:
            hub.unsubscribe(viewer)
            await hub.close()

    message = asyncio.run(run())
    assert message.code == "refused"
    assert message.reason == "the camera refused the connection (is it on, and is the port right?)"
