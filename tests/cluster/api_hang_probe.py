"""A control-room desk on its own namespace host, for the tests of an API whose Redis primary hangs.

    python -m tests.cluster.api_hang_probe requests --base URL --token-file F --what search,alerts,page,health,login
    python -m tests.cluster.api_hang_probe flood --base URL --token-file F --n 60 --out OUT
    python -m tests.cluster.api_hang_probe websocket --base URL --token-file F --out OUT

- ``login``: sign in (``--user``, password in the environment variable ``--password-env``) and write the bearer
  token to ``--token-file``.
- ``requests``: one request of each kind named in ``--what``, one after another; prints one JSON line
  ``{kind: {"code", "s"}}`` (``code``: the HTTP status, or the name of the client error).
- ``flood``: ``--n`` plate searches at once, and while they are in flight the static page (``GET /``) several times;
  JSON in ``--out`` with every answer's status and time.
- ``websocket``: the live alert WebSocket (``/api/alerts/ws``) until SIGTERM, reconnecting when it closes; JSON in
  ``--out``: the alert ids received (with the time each arrived) and every close (code, time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

TIMEOUT_S = 120.0
"""The desk's own limit per request: far above what the server may take, so the server's time is what is measured."""
PATHS = {
    "search": ("GET", "/api/plates/search", {"q": "1กข1234", "reason": "hang test"}),
    "alerts": ("GET", "/api/alerts", {}),
    "page": ("GET", "/", {}),
    "health": ("GET", "/api/health", {}),
    "me": ("GET", "/api/auth/me", {}),
}


def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON (readers never see half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def timed(http: httpx.Client, kind: str, token: str | None, password: str | None = None,
          user: str | None = None) -> dict[str, Any]:
    """One request of ``kind`` (see :data:`PATHS`, or ``login``): its status (or client error) and duration."""
    started = time.monotonic()
    try:
        if kind == "login":
            code: Any = http.post("/api/auth/login", json={"username": user, "password": password}).status_code
        else:
            method, path, params = PATHS[kind]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            code = http.request(method, path, params=params, headers=headers).status_code
    except httpx.HTTPError as exc:
        code = type(exc).__name__
    return {"code": code, "s": round(time.monotonic() - started, 3), "at": time.time()}


def cmd_login(args: argparse.Namespace) -> int:
    with httpx.Client(base_url=args.base, timeout=TIMEOUT_S) as http:
        answer = http.post("/api/auth/login", json={"username": args.user,
                                                    "password": os.environ[args.password_env]})
        answer.raise_for_status()
        Path(args.token_file).write_text(answer.json()["access_token"])
    return 0


def cmd_requests(args: argparse.Namespace) -> int:
    token = Path(args.token_file).read_text().strip()
    password = os.environ.get(args.password_env) if args.password_env else None
    out: dict[str, Any] = {}
    with httpx.Client(base_url=args.base, timeout=TIMEOUT_S) as http:
        for kind in args.what.split(","):
            out[kind] = timed(http, kind, token, password, args.user)
    print(json.dumps(out))
    return 0


def cmd_flood(args: argparse.Namespace) -> int:
    """``--n`` plate searches at once (each on its own connection), and the static page meanwhile."""
    token = Path(args.token_file).read_text().strip()
    searches: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    lock = threading.Lock()

    def search() -> None:
        with httpx.Client(base_url=args.base, timeout=TIMEOUT_S) as http:
            answer = timed(http, "search", token)
        with lock:
            searches.append(answer)

    threads = [threading.Thread(target=search, daemon=True) for _ in range(args.n)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(args.page_after_s)  # the searches reach the server and wait on Redis
    with httpx.Client(base_url=args.base, timeout=TIMEOUT_S) as http:
        for _ in range(args.pages):
            pages.append(timed(http, "page", None))
    for thread in threads:
        thread.join(TIMEOUT_S)
    write_json(Path(args.out), {"searches": searches, "pages": pages, "s": round(time.monotonic() - started, 3)})
    return 0


async def _websocket(args: argparse.Namespace, stop: asyncio.Event) -> None:
    import websockets

    token = Path(args.token_file).read_text().strip()
    url = args.base.replace("http://", "ws://") + "/api/alerts/ws"
    state: dict[str, Any] = {"alerts": [], "closes": [], "opened": []}
    out = Path(args.out)
    while not stop.is_set():
        try:
            async with websockets.connect(url, open_timeout=30) as ws:
                await ws.send(json.dumps({"token": token}))
                state["opened"].append(time.time())
                write_json(out, state)
                while not stop.is_set():
                    try:
                        message = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    state["alerts"].append([json.loads(message)["alert"]["alert_id"], time.time()])
                    write_json(out, state)
        except websockets.ConnectionClosed as exc:
            state["closes"].append([exc.rcvd.code if exc.rcvd else None, time.time()])
        except (OSError, websockets.WebSocketException, TimeoutError) as exc:
            state["closes"].append([type(exc).__name__, time.time()])
        write_json(out, state)
        if not stop.is_set():
            await asyncio.sleep(1.0)


def cmd_websocket(args: argparse.Namespace) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await _websocket(args, stop)

    asyncio.run(main())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(prog="tests.cluster.api_hang_probe")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("login", "requests", "flood", "websocket"):
        p = sub.add_parser(name)
        p.add_argument("--base", required=True)
        p.add_argument("--token-file", required=True)
        p.add_argument("--user", default="root")
        p.add_argument("--password-env", default="ADMIN_PW")
    sub.choices["requests"].add_argument("--what", default="search,alerts,page,health")
    sub.choices["flood"].add_argument("--n", type=int, default=60)
    sub.choices["flood"].add_argument("--pages", type=int, default=3)
    sub.choices["flood"].add_argument("--page-after-s", type=float, default=1.0)
    sub.choices["flood"].add_argument("--out", required=True)
    sub.choices["websocket"].add_argument("--out", required=True)
    args = parser.parse_args(argv)
    return {"login": cmd_login, "requests": cmd_requests, "flood": cmd_flood, "websocket": cmd_websocket}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
