"""Outbound alert webhooks: durable, signed, retried delivery of the ``alerts`` stream.

Each webhook of ``notifications.webhooks`` (cameras.yaml) has its own Redis consumer group ``notify:<name>`` on the
``alerts`` stream, so with several API replicas every alert is POSTed once per webhook:

- new alerts come with ``XREADGROUP ... >``; a delivered (2xx) or dead (refused) alert is ``XACK``-ed;
- a retryable failure (timeout, connection error, 5xx, 408, 429) leaves the entry pending and schedules it in the
  sorted set ``notify:<name>:retry`` (exponential backoff, at least the ``Retry-After`` asked for, at most
  ``backoff_max_s``); the replica whose atomic ZREM+XCLAIM takes a due entry retries it;
- an entry a dead replica left pending (read, never acknowledged nor scheduled) is taken over with ``XAUTOCLAIM``
  once idle for ``claim_idle_s``;
- a failure that is permanent (a 4xx other than 408/429, a redirect, a refused address) or that outlived
  ``max_attempts`` / ``max_age_s`` is a dead letter: kept in the bounded list ``notify:<name>:dead`` and counted.

The group, its pending entries and the retry schedule live in Redis (persisted with the stream), so delivery
resumes after an API or a Redis restart. A request is ``POST`` JSON with ``X-CCTV-Timestamp`` and
``X-CCTV-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``; ``X-CCTV-Delivery`` (and
``Idempotency-Key``) is the alert id. No redirect is followed, and URLs resolving to link-local or cloud metadata
addresses are refused unless ``allow_link_local``; ``http://`` only to loopback or private addresses.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
import redis

from pipeline.config import SEVERITIES, Webhook
from pipeline.secrets import register_secrets
from pipeline.store import keys

logger = logging.getLogger(__name__)

DEAD_LETTERS_KEPT = 1000
"""Dead letters kept per webhook (the oldest go)."""
METADATA_ADDRESSES = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"),
                      ipaddress.ip_network("fd00:ec2::254/128"))
"""Link-local and cloud metadata addresses a webhook may not reach unless ``allow_link_local``."""
USER_AGENT = "cctv-control-room-webhooks/1"
CONSUMER_FORGET_MS = 86_400_000
"""A consumer without pending alerts not heard of for this long is removed from the group."""

_CLAIM_ABANDONED = """
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5], 'JUSTID')
local out = {}
for _, id in ipairs(r[2]) do
  if not redis.call('ZSCORE', KEYS[2], id) then table.insert(out, id) end
end
return {r[1], out, r[3] or {}}
"""
"""Pending entries idle for long, not scheduled for a retry: what a dead consumer left (atomic with a take)."""

_TAKE_RETRY = """
if redis.call('ZREM', KEYS[2], ARGV[3]) == 0 then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""
"""Take one due retry: only the replica whose ZREM removed it retries it (its idle time restarts)."""


def group_name(name: str) -> str:
    """The consumer group of webhook ``name`` on the alerts stream."""
    return f"notify:{name}"


def retry_key(name: str) -> str:
    """Sorted set of the stream ids waiting for a retry (score: when)."""
    return f"notify:{name}:retry"


def tries_key(name: str) -> str:
    """Hash stream id -> JSON {attempts, first} of the alerts being retried."""
    return f"notify:{name}:tries"


def state_key(name: str) -> str:
    """Hash of the delivery state: last_success_at, last_error, last_error_at, delivered, dead."""
    return f"notify:{name}:state"


def dead_key(name: str) -> str:
    """List of the newest dead letters (JSON), newest first, at most :data:`DEAD_LETTERS_KEPT`."""
    return f"notify:{name}:dead"


def safe_url(url: str) -> str:
    """``url`` fit for a log line or an answer: the query string and fragment (tokens) replaced by ``***``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "***" if parts.query else "",
                       "***" if parts.fragment else ""))


class _QueryRedactor(logging.Filter):
    """Masks the query string of every URL that the HTTP client's own loggers print (``httpx`` logs each request's
    full URL at INFO: a webhook's token would be in the log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(safe_url(str(a)) if isinstance(a, httpx.URL) or (isinstance(a, str) and "://" in a)
                                else a for a in record.args)
        return True


_REDACTOR = _QueryRedactor()


def install_http_log_redaction() -> None:
    """Attach the query-string mask to the ``httpx`` and ``httpcore`` loggers (once)."""
    for name in ("httpx", "httpcore"):
        target = logging.getLogger(name)
        if _REDACTOR not in target.filters:
            target.addFilter(_REDACTOR)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-CCTV-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def matches(hook: Webhook, alert: Mapping[str, Any]) -> bool:
    """Whether ``alert`` passes the webhook's filters (severity, watchlists, cameras)."""
    severity = alert.get("severity", "medium")
    rank = SEVERITIES.index(severity) if severity in SEVERITIES else 1
    return (rank >= SEVERITIES.index(hook.min_severity)
            and (not hook.watchlists or alert.get("watchlist_id") in hook.watchlists)
            and (not hook.cameras or alert.get("camera_id") in hook.cameras))


class AddressRefused(Exception):
    """The webhook's host resolves to an address its policy refuses (permanent)."""


def check_address(hook: Webhook) -> None:
    """Resolve the webhook's host; raise :class:`AddressRefused` for a link-local/metadata address (unless
    allowed) or, over http, for one that is not loopback or private; ``OSError`` when it does not resolve."""
    parts = urlsplit(hook.url)
    infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                               type=socket.SOCK_STREAM)
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not hook.allow_link_local and (address.is_link_local
                                          or any(address in net for net in METADATA_ADDRESSES)):
            raise AddressRefused(f"{parts.hostname} resolves to {address}, a link-local or metadata address "
                                 f"(allow_link_local is off)")
        if parts.scheme == "http" and not (address.is_loopback or address.is_private):
            raise AddressRefused(f"{parts.hostname} resolves to {address}: http:// is allowed only to loopback "
                                 f"and private addresses")


@dataclass(frozen=True)
class Outcome:
    """The result of one delivery attempt."""

    kind: Literal["ok", "retry", "fail"]
    error: str = ""
    status: int | None = None
    retry_after_s: float | None = None


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def post(http: httpx.Client, hook: Webhook, secret: str, body: bytes, delivery_id: str) -> Outcome:
    """POST ``body`` once (signed, no redirect followed) and classify the answer."""
    try:
        check_address(hook)
    except AddressRefused as exc:
        return Outcome("fail", str(exc))
    except OSError as exc:
        return Outcome("retry", f"cannot resolve {urlsplit(hook.url).hostname}: {exc.strerror or exc}")
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-CCTV-Timestamp": timestamp,
               "X-CCTV-Signature": sign(secret, timestamp, body), "X-CCTV-Delivery": delivery_id,
               "Idempotency-Key": delivery_id}
    try:
        answer = http.post(hook.url, content=body, headers=headers, timeout=hook.timeout_s)
    except httpx.TimeoutException:
        return Outcome("retry", f"no answer within {hook.timeout_s:g} s")
    except httpx.HTTPError as exc:
        return Outcome("retry", f"connection failed: {type(exc).__name__}")
    code = answer.status_code
    if 200 <= code < 300:
        return Outcome("ok", status=code)
    if 300 <= code < 400:
        return Outcome("fail", f"HTTP {code}: redirects are not followed", code)
    wait = retry_after(answer.headers.get("Retry-After"))
    if code in (408, 429) or code >= 500:
        return Outcome("retry", f"HTTP {code}", code, wait)
    return Outcome("fail", f"HTTP {code}", code)


def alert_payload(client: redis.Redis, stream_id: str, alert: dict[str, Any], kind: str = "alert") -> bytes:
    """The JSON body of an alert: the alert as the API lists it (stream id, alert, watchlist name), the path of its
    crop on the API (never the bytes), and the event type."""
    name = client.hget(keys.watchlist(alert.get("watchlist_id", "")), "name") if alert.get("watchlist_id") else None
    crop = alert.get("crop_path")
    doc = {"type": kind, "id": stream_id, "alert": alert,
           "watchlist_name": name.decode() if isinstance(name, bytes) else name,
           "media": f"/api/media/{crop}" if crop else None}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def secret_of(hook: Webhook, environ: Mapping[str, str] | None = None) -> str | None:
    """The webhook's signing secret from the environment (registered for log redaction), or None when unset."""
    value = (os.environ if environ is None else environ).get(hook.secret_env)
    install_http_log_redaction()
    # the secret and the URL's query values (tokens) are masked in every log line once log redaction is installed
    register_secrets([value or "", *(v for _k, v in parse_qsl(urlsplit(hook.url).query) if len(v) >= 6)])
    return value or None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class WebhookWorker:
    """Delivers the alerts stream to one webhook (one thread, one request at a time)."""

    def __init__(self, client: redis.Redis, hook: Webhook, secret: str, consumer: str, *,
                 block_ms: int = 1000, batch: int = 16, claim_idle_s: float | None = None) -> None:
        self.client = client
        self.hook = hook
        self.secret = secret
        self.consumer = consumer
        self.block_ms = block_ms
        self.batch = batch
        self.claim_idle_ms = int(1000 * (claim_idle_s if claim_idle_s is not None
                                         else max(60.0, 3 * hook.timeout_s + 10)))
        self.group = group_name(hook.name)
        self._claim_cursor = "0-0"
        self._claim_abandoned = client.register_script(_CLAIM_ABANDONED)
        self._take_retry = client.register_script(_TAKE_RETRY)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.http = httpx.Client(follow_redirects=False, trust_env=False)

    # -- lifecycle --------------------------------------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the consumer group (from new alerts on) unless it exists."""
        try:
            self.client.xgroup_create(keys.ALERT_STREAM, self.group, id="$", mkstream=True)
            logger.info("webhook %s: consumer group %s created", self.hook.name, self.group)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def start(self) -> None:
        """Run :meth:`run` in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name=f"webhook-{self.hook.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the current attempt (what is unacknowledged stays pending for the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.http.close()

    def run(self) -> None:
        """Deliver until stopped; Redis failures are logged and retried with a growing pause."""
        pause = 0.5
        while not self._stop.is_set():
            try:
                self.ensure_group()
                while not self._stop.is_set():
                    self.run_once()
                    pause = 0.5
            except redis.RedisError as exc:
                logger.warning("webhook %s: Redis error (%s); retrying in %.1f s", self.hook.name, exc, pause)
            except Exception:  # noqa: BLE001 - the thread must outlive any one bad alert or answer
                logger.exception("webhook %s: delivery pass failed; retrying in %.1f s", self.hook.name, pause)
            self._stop.wait(pause)
            pause = min(pause * 2, 30.0)

    # -- one pass -----------------------------------------------------------------------------------------------
    def run_once(self) -> int:
        """Due retries, then entries abandoned by dead consumers, then new alerts (waiting up to ``block_ms``).
        Returns how many entries were handled."""
        return self._due_retries() + self._abandoned() + self._new()

    def _new(self) -> int:
        reply = self.client.xreadgroup(self.group, self.consumer, {keys.ALERT_STREAM: ">"}, count=self.batch,
                                       block=self.block_ms)
        handled = 0
        for _stream, entries in reply or []:
            for sid, fields in entries:
                if self._stop.is_set():
                    return handled  # left pending: taken over after claim_idle_s
                self._handle(_text(sid), fields)
                handled += 1
        return handled

    def _due_retries(self) -> int:
        due = self.client.zrangebyscore(retry_key(self.hook.name), "-inf", time.time(), start=0, num=self.batch)
        handled = 0
        for raw in due:
            sid = _text(raw)
            if self._stop.is_set():
                break
            if not int(self._take_retry(keys=[keys.ALERT_STREAM, retry_key(self.hook.name)],
                                        args=[self.group, self.consumer, sid])):
                continue  # another replica took it
            self._handle_id(sid)
            handled += 1
        return handled

    def _abandoned(self) -> int:
        cursor, ids, deleted = self._claim_abandoned(
            keys=[keys.ALERT_STREAM, retry_key(self.hook.name)],
            args=[self.group, self.consumer, self.claim_idle_ms, self._claim_cursor, self.batch])
        self._claim_cursor = _text(cursor)
        if self._claim_cursor == "0-0":  # a whole pass over the pending entries: forget consumers long gone
            self._forget_idle_consumers()
        for sid in deleted or []:
            self._dead(_text(sid), {}, "the alert left the stream (trimmed) before it was delivered", 0)
        for raw in ids:
            sid = _text(raw)
            logger.info("webhook %s: resuming alert entry %s left pending by a stopped consumer", self.hook.name,
                        sid)
            self._handle_id(sid)
        return len(ids)

    def _forget_idle_consumers(self) -> None:
        """Delete the group's consumers that hold nothing and were not heard of for a day (replicas restarted
        under a new name): the group stays small."""
        for consumer in self.client.xinfo_consumers(keys.ALERT_STREAM, self.group):
            name = _text(consumer["name"])
            if name != self.consumer and not int(consumer["pending"]) and int(consumer["idle"]) > CONSUMER_FORGET_MS:
                self.client.xgroup_delconsumer(keys.ALERT_STREAM, self.group, name)

    def _handle_id(self, sid: str) -> None:
        entries = self.client.xrange(keys.ALERT_STREAM, sid, sid)
        if not entries:
            self._dead(sid, {}, "the alert left the stream (trimmed) before it was delivered", 0)
            return
        self._handle(sid, entries[0][1])

    # -- one alert ----------------------------------------------------------------------------------------------
    def _handle(self, sid: str, fields: dict) -> None:
        try:
            alert = json.loads(fields[b"alert"])
        except (KeyError, ValueError) as exc:
            self._dead(sid, {}, f"unreadable alert entry ({type(exc).__name__})", 0)
            return
        if not matches(self.hook, alert):
            self.client.xack(keys.ALERT_STREAM, self.group, sid)
            return
        raw = self.client.hget(tries_key(self.hook.name), sid)
        tries = json.loads(raw) if raw else {"attempts": 0, "first": time.time()}
        outcome = post(self.http, self.hook, self.secret, alert_payload(self.client, sid, alert),
                       str(alert.get("alert_id", sid)))
        tries["attempts"] += 1
        if outcome.kind == "ok":
            self._delivered(sid, alert)
        elif outcome.kind == "fail":
            self._dead(sid, alert, outcome.error, tries["attempts"])
        else:
            self._schedule(sid, alert, outcome, tries)

    def _delivered(self, sid: str, alert: dict) -> None:
        name = self.hook.name
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(keys.ALERT_STREAM, self.group, sid)
        pipe.hdel(tries_key(name), sid)
        pipe.hset(state_key(name), "last_success_at", time.time())
        pipe.hincrby(state_key(name), "delivered", 1)
        pipe.execute()
        logger.info("webhook %s: alert %s delivered", name, alert.get("alert_id"))

    def _schedule(self, sid: str, alert: dict, outcome: Outcome, tries: dict) -> None:
        name = self.hook.name
        attempts = int(tries["attempts"])
        delay = min(self.hook.backoff_initial_s * 2 ** (attempts - 1), self.hook.backoff_max_s)
        if outcome.retry_after_s is not None:
            delay = min(max(delay, outcome.retry_after_s), self.hook.backoff_max_s)
        now = time.time()
        if attempts >= self.hook.max_attempts or now + delay - float(tries["first"]) > self.hook.max_age_s:
            self._dead(sid, alert, f"{outcome.error}; gave up after {attempts} attempt(s)", attempts)
            return
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(tries_key(name), sid, json.dumps(tries))
        pipe.zadd(retry_key(name), {sid: now + delay})
        pipe.hset(state_key(name), mapping={"last_error": outcome.error, "last_error_at": now})
        pipe.execute()
        logger.warning("webhook %s (%s): alert %s not delivered (%s); attempt %d, next in %.1f s", name,
                       safe_url(self.hook.url), alert.get("alert_id"), outcome.error, attempts, delay)

    def _dead(self, sid: str, alert: dict, error: str, attempts: int) -> None:
        name = self.hook.name
        letter = {"stream_id": sid, "alert_id": alert.get("alert_id"), "error": error, "attempts": attempts,
                  "at": time.time()}
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(dead_key(name), json.dumps(letter))
        pipe.ltrim(dead_key(name), 0, DEAD_LETTERS_KEPT - 1)
        pipe.hincrby(state_key(name), "dead", 1)
        pipe.hset(state_key(name), mapping={"last_error": error, "last_error_at": letter["at"]})
        pipe.hdel(tries_key(name), sid)
        pipe.zrem(retry_key(name), sid)
        pipe.xack(keys.ALERT_STREAM, self.group, sid)
        pipe.execute()
        logger.error("webhook %s (%s): alert %s is a dead letter: %s", name, safe_url(self.hook.url),
                     alert.get("alert_id"), error)


def send_test(client: redis.Redis, hook: Webhook, environ: Mapping[str, str] | None = None) -> Outcome:
    """POST one test event (``type: test``) now, once, without retry; the outcome is recorded in the state."""
    secret = secret_of(hook, environ)
    if secret is None:
        return Outcome("fail", f"the secret variable {hook.secret_env} is not set")
    now = time.time()
    alert = {"alert_id": f"test-{int(now * 1000)}", "kind": "plate", "watchlist_id": "test", "entry_id": "test",
             "event_id": "test", "camera_id": "test", "created_at": now, "severity": "low", "label": "TEST"}
    body = json.dumps({"type": "test", "id": None, "alert": alert, "watchlist_name": None, "media": None},
                      separators=(",", ":")).encode()
    with httpx.Client(follow_redirects=False, trust_env=False) as http:
        outcome = post(http, hook, secret, body, alert["alert_id"])
    field = {"last_success_at": now} if outcome.kind == "ok" else {"last_error": f"test: {outcome.error}",
                                                                    "last_error_at": now}
    client.hset(state_key(hook.name), mapping=field)
    return outcome


def webhook_status(client: redis.Redis, hook: Webhook, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Delivery state of one webhook: counts, last success and error, pending entries, newest dead letters."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(state_key(hook.name))
    pipe.zcard(retry_key(hook.name))
    pipe.llen(dead_key(hook.name))
    pipe.lrange(dead_key(hook.name), 0, 9)
    state, retrying, dead_kept, dead = pipe.execute()
    try:
        pending = int(client.xpending(keys.ALERT_STREAM, group_name(hook.name))["pending"])
    except redis.ResponseError:  # no group yet (never started) or no stream
        pending = 0
    state = {_text(k): _text(v) for k, v in state.items()}
    return {"name": hook.name, "url": safe_url(hook.url), "enabled": hook.enabled,
            "secret_set": bool((os.environ if environ is None else environ).get(hook.secret_env)),
            "delivered": int(state.get("delivered", 0)), "dead_letters": int(state.get("dead", 0)),
            "pending": pending, "retrying": int(retrying), "dead_letters_kept": int(dead_kept),
            "last_success_at": float(state["last_success_at"]) if "last_success_at" in state else None,
            "last_error": state.get("last_error"),
            "last_error_at": float(state["last_error_at"]) if "last_error_at" in state else None,
            "recent_dead_letters": [json.loads(d) for d in dead]}


def dead_letter_total(client: redis.Redis, hooks: list[Webhook]) -> int:
    """Dead letters counted over ``hooks`` (for /api/health)."""
    if not hooks:
        return 0
    pipe = client.pipeline(transaction=False)
    for hook in hooks:
        pipe.hget(state_key(hook.name), "dead")
    return sum(int(v or 0) for v in pipe.execute())


class Notifier:
    """The webhook workers of one process (one thread per enabled webhook with its secret set)."""

    def __init__(self, client: redis.Redis, hooks: list[Webhook], consumer: str | None = None,
                 environ: Mapping[str, str] | None = None, **worker_options: Any) -> None:
        self.client = client
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.workers: list[WebhookWorker] = []
        for hook in hooks:
            if not hook.enabled:
                continue
            secret = secret_of(hook, environ)
            if secret is None:
                logger.error("webhook %s: the environment variable %s (its signing secret) is not set: nothing "
                             "is delivered to it", hook.name, hook.secret_env)
                continue
            self.workers.append(WebhookWorker(client, hook, secret, self.consumer, **worker_options))

    def start(self) -> None:
        """Create the groups (so that alerts from now on are kept for delivery) and start the threads."""
        for worker in self.workers:
            try:
                worker.ensure_group()
            except redis.RedisError as exc:  # the thread tries again
                logger.warning("webhook %s: consumer group not created yet (%s)", worker.hook.name, exc)
            worker.start()
        if self.workers:
            logger.info("alert webhooks started: %s (consumer %s)", ", ".join(w.hook.name for w in self.workers),
                        self.consumer)

    def stop(self) -> None:
        """Stop every worker (each after its current attempt)."""
        for worker in self.workers:
            worker._stop.set()
        for worker in self.workers:
            worker.stop()
