"""Alert webhooks against a real local HTTP server and a real Redis: signed delivery, retries with backoff and
Retry-After, dead letters, exactly-once across replicas, resumption after a restart, no secret in logs."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import pytest
import redis

from pipeline.config import ConfigError, Webhook, parse_config
from pipeline.events import Alert
from pipeline.notify.webhooks import (
    Notifier,
    dead_key,
    dead_letter_total,
    group_name,
    retry_key,
    webhook_status,
)
from pipeline.store import EventStore, keys
from tests.conftest import wait_for
from tests.webhook_support import hook_server

SECRET = "s3cret-signing-key-123"
TOKEN = "querytoken987"
ENV = {"HOOK_SECRET": SECRET}
FAST = {"block_ms": 100, "claim_idle_s": 30.0}


def make_hook(url: str, **extra) -> Webhook:
    fields = {"name": "dispatch", "url": f"{url}?token={TOKEN}", "secret_env": "HOOK_SECRET", "allow_http": True,
              "backoff_initial_s": 0.05, "backoff_max_s": 60.0, "timeout_s": 5.0} | extra
    return Webhook(**fields)


def alert(i: int = 0, **extra) -> Alert:
    return Alert(kind="plate", watchlist_id="w1", entry_id=f"e{i}", event_id=f"ev{i}", camera_id="cam-1",
                 severity="high", label="1กข1234", crop_path="crops/cam-1/x.jpg", **extra)


@pytest.fixture()
def rc(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def running(rc: redis.Redis, hooks: list[Webhook], **options) -> Notifier:
    notifier = Notifier(rc, hooks, environ=ENV, **(FAST | options))
    notifier.start()
    return notifier


def pending(rc: redis.Redis, name: str = "dispatch") -> int:
    return int(rc.xpending(keys.ALERT_STREAM, group_name(name))["pending"])


def test_delivery_is_signed_and_carries_the_alert_once(rc: redis.Redis) -> None:
    with hook_server() as server:
        hook = make_hook(server.url())
        notifier = running(rc, [hook])
        try:
            a = alert()
            assert EventStore(rc).publish_alert(a)
            wait_for(lambda: server.deliveries(a.alert_id), 30, "the delivery")
            wait_for(lambda: pending(rc) == 0, 30, "the acknowledgement")
        finally:
            notifier.stop()
    [got] = server.received
    ts, signature = got.headers["x-cctv-timestamp"], got.headers["x-cctv-signature"]
    expected = hmac.new(SECRET.encode(), f"{ts}.".encode() + got.body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    assert got.headers["idempotency-key"] == a.alert_id and got.path == f"/hook?token={TOKEN}"
    body = got.json()
    assert body["type"] == "alert" and body["alert"]["alert_id"] == a.alert_id
    assert body["media"] == "/api/media/crops/cam-1/x.jpg" and SECRET not in got.body.decode()
    state = webhook_status(rc, hook, ENV)
    assert state["delivered"] == 1 and state["last_success_at"] and state["pending"] == 0
    assert TOKEN not in state["url"]


def test_filters_skip_alerts_below_the_severity(rc: redis.Redis) -> None:
    with hook_server() as server:
        notifier = running(rc, [make_hook(server.url(), min_severity="critical")])
        try:
            low, top = alert(1), alert(2, )
            top = top.model_copy(update={"severity": "critical"})
            assert EventStore(rc).publish_alert(low) and EventStore(rc).publish_alert(top)
            wait_for(lambda: server.deliveries(top.alert_id), 30, "the critical alert")
            wait_for(lambda: pending(rc) == 0, 30, "both acknowledged")
        finally:
            notifier.stop()
    assert not server.deliveries(low.alert_id)


def test_retry_after_503_then_success(rc: redis.Redis) -> None:
    with hook_server(lambda _r, n: (503, {}) if n == 0 else (200, {})) as server:
        hook = make_hook(server.url())
        notifier = running(rc, [hook])
        try:
            a = alert()
            EventStore(rc).publish_alert(a)
            wait_for(lambda: len(server.deliveries(a.alert_id)) == 2, 30, "the retry")
            wait_for(lambda: pending(rc) == 0, 30, "the acknowledgement")
        finally:
            notifier.stop()
    state = webhook_status(rc, hook, ENV)
    assert state["delivered"] == 1 and state["dead_letters"] == 0 and state["last_error"] == "HTTP 503"
    assert rc.zcard(retry_key("dispatch")) == 0


def test_no_retry_on_400_makes_a_dead_letter(rc: redis.Redis) -> None:
    with hook_server(lambda _r, _n: (400, {})) as server:
        hook = make_hook(server.url())
        notifier = running(rc, [hook])
        try:
            a = alert()
            EventStore(rc).publish_alert(a)
            wait_for(lambda: rc.llen(dead_key("dispatch")) == 1, 30, "the dead letter")
            time.sleep(0.5)  # room for a (wrong) retry: backoff_initial_s is 0.05 s
        finally:
            notifier.stop()
    assert len(server.deliveries(a.alert_id)) == 1
    letter = json.loads(rc.lindex(dead_key("dispatch"), 0))
    assert letter["alert_id"] == a.alert_id and letter["error"] == "HTTP 400" and letter["attempts"] == 1
    assert pending(rc) == 0 and dead_letter_total(rc, [hook]) == 1


def test_retry_after_header_is_honoured(rc: redis.Redis) -> None:
    with hook_server(lambda _r, n: (429, {"Retry-After": "2"}) if n == 0 else (200, {})) as server:
        notifier = running(rc, [make_hook(server.url())])
        try:
            a = alert()
            EventStore(rc).publish_alert(a)
            wait_for(lambda: server.deliveries(a.alert_id), 30, "the first attempt")
            first_seen = time.time()
            wait_for(lambda: len(server.deliveries(a.alert_id)) == 2, 30, "the retry")
            second_seen = time.time()
        finally:
            notifier.stop()
    # not the 0.05 s backoff: the 2 s asked for (a lower bound only; a loaded machine can only make it later)
    assert second_seen - first_seen >= 1.5


def test_gives_up_after_max_attempts(rc: redis.Redis) -> None:
    with hook_server(lambda _r, _n: (500, {})) as server:
        notifier = running(rc, [make_hook(server.url(), max_attempts=3)])
        try:
            a = alert()
            EventStore(rc).publish_alert(a)
            wait_for(lambda: rc.llen(dead_key("dispatch")) == 1, 30, "the dead letter")
        finally:
            notifier.stop()
    assert len(server.deliveries(a.alert_id)) == 3 and pending(rc) == 0


def test_exactly_once_across_two_replicas(rc: redis.Redis, redis_url: str) -> None:
    other = redis.Redis.from_url(redis_url)
    with hook_server(lambda _r, n: (503, {}) if n == 0 else (200, {})) as server:
        hook = make_hook(server.url())
        first, second = running(rc, [hook]), running(other, [hook])
        try:
            alerts = [alert(i) for i in range(20)]
            store = EventStore(rc)
            for a in alerts:
                store.publish_alert(a)
            wait_for(lambda: int(rc.hget("notify:dispatch:state", "delivered") or 0) == 20, 60, "every delivery")
            wait_for(lambda: pending(rc) == 0, 30, "every acknowledgement")
        finally:
            first.stop()
            second.stop()
            other.close()
    for a in alerts:  # one failed attempt and one success each, never more
        assert [r.headers["x-cctv-delivery"] for r in server.deliveries(a.alert_id)] == [a.alert_id] * 2
    consumers = {c["name"].decode() for c in rc.xinfo_consumers(keys.ALERT_STREAM, group_name("dispatch"))}
    assert len(consumers) == 2


def test_resumes_entries_a_stopped_consumer_left_pending(rc: redis.Redis) -> None:
    with hook_server() as server:
        hook = make_hook(server.url())
        crashed = Notifier(rc, [hook], consumer="crashed", environ=ENV, **FAST)
        crashed.workers[0].ensure_group()
        a = alert()
        EventStore(rc).publish_alert(a)
        # the crashed replica read it and died before delivering: it stays pending to that consumer
        assert rc.xreadgroup(group_name("dispatch"), "crashed", {keys.ALERT_STREAM: ">"}, count=10)
        assert pending(rc) == 1
        notifier = running(rc, [hook], claim_idle_s=0.5)
        try:
            wait_for(lambda: server.deliveries(a.alert_id), 30, "the resumed delivery")
            wait_for(lambda: pending(rc) == 0, 30, "the acknowledgement")
        finally:
            notifier.stop()
    assert len(server.deliveries(a.alert_id)) == 1


def test_a_scheduled_retry_survives_a_restart(rc: redis.Redis) -> None:
    answers = {"status": 503}
    with hook_server(lambda _r, _n: (answers["status"], {})) as server:
        hook = make_hook(server.url(), backoff_initial_s=1.0)
        notifier = running(rc, [hook])
        a = alert()
        EventStore(rc).publish_alert(a)
        wait_for(lambda: rc.zcard(retry_key("dispatch")) == 1, 30, "the scheduled retry")
        notifier.stop()
        answers["status"] = 200
        restarted = running(rc, [hook])
        try:
            wait_for(lambda: pending(rc) == 0, 30, "the delivery after the restart")
        finally:
            restarted.stop()
    statuses = [r.headers["x-cctv-delivery"] for r in server.deliveries(a.alert_id)]
    assert len(statuses) == 2 and webhook_status(rc, hook, ENV)["delivered"] == 1


def test_redirect_and_metadata_addresses_are_refused(rc: redis.Redis) -> None:
    with hook_server(lambda _r, _n: (302, {"Location": "http://203.0.113.9/steal"})) as server:
        redirected = make_hook(server.url())
        metadata = make_hook("http://169.254.169.254/latest", name="meta")
        notifier = running(rc, [redirected, metadata])
        try:
            a = alert()
            EventStore(rc).publish_alert(a)
            wait_for(lambda: rc.llen(dead_key("dispatch")) == 1 and rc.llen(dead_key("meta")) == 1, 30,
                     "both dead letters")
        finally:
            notifier.stop()
    assert len(server.received) == 1
    assert "redirects are not followed" in json.loads(rc.lindex(dead_key("dispatch"), 0))["error"]
    assert "link-local" in json.loads(rc.lindex(dead_key("meta"), 0))["error"]


def test_secret_and_query_token_never_logged(rc: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with hook_server(lambda _r, n: (500, {}) if n == 0 else (404, {})) as server:
        notifier = running(rc, [make_hook(server.url())])
        try:
            EventStore(rc).publish_alert(alert())
            wait_for(lambda: rc.llen(dead_key("dispatch")) == 1, 30, "the dead letter")
        finally:
            notifier.stop()
    assert "dead letter" in caplog.text and "/hook?***" in caplog.text
    assert SECRET not in caplog.text and TOKEN not in caplog.text


def test_a_missing_secret_variable_starts_no_worker(rc: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(rc, [make_hook("http://127.0.0.1:9/hook")], environ={})
    assert notifier.workers == [] and "HOOK_SECRET" in caplog.text


CAMERAS = "cameras:\n  - id: cam-1\n    name: Cam\n    url: rtsp://cam.example/1\n"


@pytest.mark.parametrize(("hook", "line", "message"), [
    ("      url: http://hooks.example.com/x\n      secret_env: HOOK_SECRET\n", 7, "needs allow_http"),
    ("      url: https://user:pw@hooks.example.com/x\n      secret_env: HOOK_SECRET\n", 8, "credentials"),
    ("      url: https://hooks.example.com/x\n      secret_env: my-secret\n", 9, "secret_env"),
])
def test_config_errors_name_file_and_line(hook: str, line: int, message: str) -> None:
    text = CAMERAS + "notifications:\n  webhooks:\n    - name: dispatch\n" + hook
    with pytest.raises(ConfigError) as err:
        parse_config(text, "cameras.yaml")
    assert f"cameras.yaml:{line}:" in str(err.value) and message in str(err.value)
    assert "pw@" not in str(err.value)


def test_delivery_resumes_after_a_redis_restart(own_redis) -> None:
    """The group, the pending entry and its retry schedule are in Redis's AOF: a crashed and restarted Redis still
    has them, and the worker reconnects and delivers both the retried alert and a new one."""
    client = redis.Redis.from_url(own_redis.url, socket_timeout=10)
    answers = {"status": 503}
    with hook_server(lambda _r, _n: (answers["status"], {})) as server:
        hook = make_hook(server.url(), backoff_initial_s=1.0)
        notifier = running(client, [hook])
        try:
            first = alert(1)
            EventStore(client).publish_alert(first)
            wait_for(lambda: client.zcard(retry_key("dispatch")) == 1, 30, "the scheduled retry")
            own_redis.kill()
            own_redis.start()
            answers["status"] = 200
            second = alert(2)
            wait_for(lambda: _published(client, second), 30, "the second alert stored")
            wait_for(lambda: server.deliveries(first.alert_id)[-1:] and server.deliveries(second.alert_id), 60,
                     "both alerts delivered after the restart")
            wait_for(lambda: pending(client) == 0, 30, "both acknowledged")
            assert webhook_status(client, hook, ENV)["delivered"] == 2
        finally:
            notifier.stop()
            client.close()
    assert len(server.deliveries(second.alert_id)) == 1


def _published(client: redis.Redis, a: Alert) -> bool:
    try:
        EventStore(client).publish_alert(a)
    except redis.ConnectionError:
        return False
    return True


def test_the_readme_verification_snippet_accepts_a_real_delivery(rc: redis.Redis) -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    [snippet] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "def verify" in b]
    scope: dict = {}
    exec(snippet, scope)  # noqa: S102 - the README's own example
    with hook_server() as server:
        notifier = running(rc, [make_hook(server.url())])
        try:
            a = alert()
            EventStore(rc).publish_alert(a)
            wait_for(lambda: server.deliveries(a.alert_id), 30, "the delivery")
        finally:
            notifier.stop()
    [got] = server.received
    headers = {"X-CCTV-Timestamp": got.headers["x-cctv-timestamp"],
               "X-CCTV-Signature": got.headers["x-cctv-signature"]}
    assert scope["verify"](SECRET.encode(), headers, got.body)
    assert not scope["verify"](b"wrong", headers, got.body)


def test_consumers_of_gone_replicas_are_forgotten(rc: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.notify.webhooks as webhooks

    notifier = Notifier(rc, [make_hook("http://127.0.0.1:9/hook")], consumer="me", environ=ENV, **FAST)
    worker = notifier.workers[0]
    worker.ensure_group()
    rc.xgroup_createconsumer(keys.ALERT_STREAM, group_name("dispatch"), "gone")
    monkeypatch.setattr(webhooks, "CONSUMER_FORGET_MS", -1)
    worker.run_once()
    names = {c["name"].decode() for c in rc.xinfo_consumers(keys.ALERT_STREAM, group_name("dispatch"))}
    assert "gone" not in names
    worker.http.close()
