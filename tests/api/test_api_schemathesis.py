"""Schemathesis against the live API: its own OpenAPI document, fetched from a running uvicorn, with a real admin token.

For every operation Schemathesis generates requests from the schema (at most ``MAX_EXAMPLES`` each, derandomised so
CI runs the same cases; driven from one test because Schemathesis' pytest plugin does not load under pytest 9) and checks: no 5xx, every status code is documented, every body matches its documented
schema and content type. A second test calls every operation without credentials and expects 401 (except login,
health and the static page). Left out: ``POST /api/auth/logout`` (it would revoke the token the run uses) and the
endless ``GET /api/alerts/stream`` (covered by the alert tests).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore
from tests.conftest import RedisServer, free_port

pytestmark = pytest.mark.schemathesis

REPO = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 25
ADMIN = "st-admin-q7"
PASSWORD = "schemathesis horse battery"
EXCLUDED = {("POST", "/api/auth/logout"), ("GET", "/api/alerts/stream")}
PUBLIC = {("POST", "/api/auth/login"), ("GET", "/api/health")}
CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.response_schema_conformance, schemathesis.checks.content_type_conformance]


class LiveServer:
    """The API under uvicorn in a thread on a free loopback port."""

    def __init__(self, settings: ApiSettings) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="live-api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the live API did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def live_api(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, admin bearer token) of a live API on a flushed Redis."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    ApiStore(client, scrypt_n=16).put_user(ADMIN, "admin", PASSWORD)
    rec = tmp_path_factory.mktemp("st-rec")
    settings = ApiSettings(redis_url=redis_server.url, recordings_dir=rec, config_path=REPO / "cameras.yaml",
                           scrypt_n=16, login_max_per_user=1000, login_max_per_ip=100000, ws_poll_s=0.2)
    with LiveServer(settings) as server:
        r = httpx.post(f"{server.url}/api/auth/login", json={"username": ADMIN, "password": PASSWORD}, timeout=30)
        assert r.status_code == 200, r.text
        yield server.url, r.json()["access_token"]
    client.close()


def _runner(operation, base_url: str, headers: dict[str, str]):
    """A Hypothesis test of one operation and the list it appends one item to per case run."""
    seen: list[int] = []

    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        seen.append(1)
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=60)

    return run, seen


def test_api_matches_its_schema(live_api: tuple[str, str]) -> None:
    """Every operation: generated cases, each checked; failures are collected per operation and reported together."""
    base_url, token = live_api
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    operations = cases = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        operations += 1
        run, seen = _runner(operation, base_url, headers)
        try:
            run()
        except BaseException as exc:  # noqa: BLE001 - one operation's failures are reported, the others still run
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
        cases += len(seen)
    print(f"schemathesis: {operations} operations, {cases} cases, {len(failures)} failing operations")
    assert operations >= 50
    assert failures == [], "\n\n".join(failures)


def test_every_route_refuses_anonymous_calls(live_api: tuple[str, str]) -> None:
    base_url, _ = live_api
    document = httpx.get(f"{base_url}/openapi.json", timeout=30).json()
    refused, checked = [], 0
    for path, operations in document["paths"].items():
        for method in operations:
            if (method.upper(), path) in PUBLIC:
                continue
            url = base_url + path.replace("{", "").replace("}", "")  # any value: authentication comes first
            r = httpx.request(method.upper(), url, json={} if method in ("post", "put", "patch") else None,
                              timeout=60)
            checked += 1
            if r.status_code != 401:
                refused.append(f"{method.upper()} {path}: {r.status_code}")
    assert checked >= 50
    assert refused == [], refused
    assert httpx.get(f"{base_url}/api/health", timeout=30).status_code == 200
    assert httpx.get(f"{base_url}/", timeout=30).status_code == 200
