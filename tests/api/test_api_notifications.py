"""Alert webhooks through the API: the lifespan's workers (exactly one delivery per alert with two app instances
sharing Redis), the admin-only state and test routes (audited), and the dead-letter count of /api/health."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from api.store import ApiStore
from pipeline.events import Alert
from pipeline.store import EventStore, keys
from pipeline.store.audit import AUDIT_STREAM
from tests.api.conftest import PASSWORD, REPO
from tests.conftest import wait_for
from tests.webhook_support import hook_server

SECRET = "api-hook-secret-4242"


def settings_with_hook(api_settings: ApiSettings, tmp_path: Path, url: str) -> ApiSettings:
    config = tmp_path / "cameras.yaml"
    config.write_text((REPO / "cameras.yaml").read_text() + "\nnotifications:\n  webhooks:\n"
                      f"    - name: dispatch\n      url: {url}\n      secret_env: CCTV_TEST_HOOK_SECRET\n"
                      "      allow_http: true\n      backoff_initial_s: 0.05\n      min_severity: high\n")
    return api_settings.model_copy(update={"config_path": config})


def login(tc: TestClient, user: str, password: str) -> dict[str, str]:
    r = tc.post("/api/auth/login", json={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCTV_TEST_HOOK_SECRET", SECRET)


def test_two_api_instances_deliver_each_alert_once(api_settings: ApiSettings, tmp_path: Path,
                                                   rclient: redis.Redis) -> None:
    with hook_server() as server:
        settings = settings_with_hook(api_settings, tmp_path, server.url())
        with TestClient(create_app(settings)), TestClient(create_app(settings)):
            alerts = [Alert(kind="plate", watchlist_id="w1", entry_id=f"e{i}", event_id=f"ev{i}",
                            camera_id="bkk-night-01", severity="high" if i % 2 else "low", label="1กข1234")
                      for i in range(10)]
            for a in alerts:
                EventStore(rclient).publish_alert(a)
            wanted = [a.alert_id for a in alerts if a.severity == "high"]
            wait_for(lambda: all(server.deliveries(i) for i in wanted), 60, "every high alert delivered")
            wait_for(lambda: rclient.xpending(keys.ALERT_STREAM, "notify:dispatch")["pending"] == 0, 30,
                     "every alert acknowledged")
    assert sorted(r.headers["x-cctv-delivery"] for r in server.received) == sorted(wanted)


def test_admin_routes_state_test_event_and_health(api_settings: ApiSettings, tmp_path: Path,
                                                  rclient: redis.Redis) -> None:
    ApiStore(rclient, scrypt_n=16).put_user("op", "operator", PASSWORD)
    with hook_server(lambda r, _n: (200, {}) if r.json()["type"] == "test" else (400, {})) as server:
        settings = settings_with_hook(api_settings, tmp_path, server.url() + "?token=tok-in-query")
        with TestClient(create_app(settings)) as tc:
            admin, op = login(tc, "root", "bootstrap-pass"), login(tc, "op", PASSWORD)
            assert tc.get("/api/notifications", headers=op).status_code == 403
            assert tc.post("/api/notifications/dispatch/test", headers=op).status_code == 403
            assert tc.post("/api/notifications/nope/test", headers=admin).status_code == 404
            r = tc.post("/api/notifications/dispatch/test", headers=admin)
            assert r.status_code == 200 and r.json() | {"error": ""} == {
                "name": "dispatch", "delivered": True, "outcome": "ok", "status": 200, "error": ""}
            EventStore(rclient).publish_alert(Alert(kind="plate", watchlist_id="w1", entry_id="e", event_id="ev",
                                                    camera_id="bkk-night-01", severity="critical", label="X"))
            wait_for(lambda: tc.get("/api/health").json()["webhook_dead_letters"] == 1, 60, "the dead letter")
            [hook] = tc.get("/api/notifications", headers=admin).json()
    assert hook["name"] == "dispatch" and hook["dead_letters"] == 1 and hook["secret_set"] is True
    assert hook["last_success_at"] and hook["recent_dead_letters"][0]["error"] == "HTTP 400"
    assert "tok-in-query" not in json.dumps(hook) and hook["pending"] == 0
    actions = {f[b"action"].decode() for _id, f in rclient.xrange(AUDIT_STREAM)}
    assert {"notifications_test", "notifications_list"} <= actions
