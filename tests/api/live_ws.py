"""Helpers of the tests that talk to the live video WebSocket through FastAPI's test client."""

from __future__ import annotations

import json

from starlette.websockets import WebSocketDisconnect


def until_closed(ws) -> tuple[list[dict], int | None]:  # noqa: ANN001 (a test client WebSocket session)
    """The JSON text messages a live WebSocket sends until it closes, and its close code."""
    texts, code = [], None
    try:
        while code is None:
            message = ws.receive()
            if message["type"] == "websocket.close":
                code = message["code"]
            elif message.get("text") is not None:
                texts.append(json.loads(message["text"]))
    except WebSocketDisconnect as exc:
        code = exc.code
    return texts, code


def hello(ws, token: str) -> None:  # noqa: ANN001
    """Authenticate a live WebSocket with ``token`` and check the server's hello."""
    ws.send_text(json.dumps({"token": token}))
    assert json.loads(ws.receive_text())["type"] == "hello"
