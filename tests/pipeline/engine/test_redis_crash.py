"""Crash test with real processes: the durable Redis is SIGKILLed while the engine's publisher (store + on-disk spool,
wired as :func:`pipeline.engine.process.build_engine` wires it) publishes plate events and the API side writes
users, watchlists, cases and audit records; Redis is restarted on the same data folder.

Every record acknowledged more than a second before the kill must be there afterwards; the spool must deliver
everything that arrived while Redis was away exactly once. The figures are printed (``pytest -s``) for the
closing note.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from api.store import ApiStore
from pipeline.engine.process import redis_client
from pipeline.engine.publisher import SpooledPublisher
from pipeline.engine.spool import EventSpool
from pipeline.events import PlateEvent
from pipeline.store import EventStore, WatchlistStore, keys
from tests.conftest import wait_for

PROVINCE = "กรุงเทพมหานคร"


@dataclass
class Written:
    """What the writer thread did, with the monotonic time each write was acknowledged."""

    events: list[tuple[str, str, float, bool]] = field(default_factory=list)  # event_id, plate, t, direct
    side: list[tuple[str, str, float]] = field(default_factory=list)  # kind, id, t (acknowledged by Redis)
    side_refused: int = 0  # API writes refused while Redis was away (the API answers 503; nothing to lose)


def plate_event(i: int) -> PlateEvent:
    now = time.time()
    plate = f"{1 + i % 9}กข{i:04d}"
    return PlateEvent(camera_id="crash-cam", track_id=i, started_at=now - 1, ended_at=now, frame_time=now,
                      plate_text=plate, province=PROVINCE, confidence=0.9)


def writer(publisher: SpooledPublisher, api_client: redis.Redis, stop: threading.Event, out: Written) -> None:
    """Publish plate events through the spooled publisher and, every tenth event, one API-side record."""
    store = ApiStore(api_client, scrypt_n=16)
    watchlists = WatchlistStore(api_client)
    i = 0
    while not stop.is_set():
        event = plate_event(i)
        direct = publisher.publish("plate", event)
        out.events.append((event.event_id, event.plate_text, time.monotonic(), direct))
        publisher.flush()
        if i % 10 == 0:
            kind = ("user", "watchlist", "case", "audit")[(i // 10) % 4]
            try:
                if kind == "user":
                    ident = f"user{i}"
                    store.put_user(ident, "operator", f"password-{i}")
                elif kind == "watchlist":
                    ident = watchlists.create_watchlist("plate", f"list {i}")["id"]
                    watchlists.put_entry(ident, {"plate": event.plate_text, "reason": "crash test"})
                elif kind == "case":
                    ident = f"case{i}"
                    api_client.hset(f"case:{ident}", mapping={"id": ident, "name": f"case {i}", "created_by": "t",
                                                              "created_at": repr(time.time())})
                    api_client.zadd("cases", {ident: time.time()})
                else:
                    ident = f"audit{i}"
                    store.audit("crash-test", "plates.search", {"marker": ident})
                out.side.append((kind, ident, time.monotonic()))
            except (redis.ConnectionError, redis.TimeoutError):
                out.side_refused += 1
        i += 1
        time.sleep(0.003)


def stored_plate_events(client: redis.Redis) -> Counter[str]:
    """event_id -> number of stream entries holding it."""
    counts: Counter[str] = Counter()
    for _, fields in client.xrange(keys.PLATE_STREAM):
        counts[fields[b"event_id"].decode()] += 1
    return counts


def indexed(client: redis.Redis, event_id: str, plate: str) -> bool:
    """The event's idempotency record, its sighting in the plate's sorted set and the plate's last-seen entry."""
    record = client.hget(keys.PLATE_EVENTS, event_id)
    if record is None:
        return False
    member = record.decode().split("\t")[2]
    return (client.zscore(keys.plate_sightings(plate), member) is not None
            and client.zscore(keys.PLATE_LAST_SEEN, plate) is not None)


def side_present(client: redis.Redis, kind: str, ident: str, audit_markers: set[str]) -> bool:
    if kind == "user":
        return client.sismember("users", ident) and client.exists(f"user:{ident}") == 1
    if kind == "watchlist":
        return client.sismember(keys.WATCHLIST_IDS, ident) and client.hlen(keys.watchlist_entries(ident)) == 1
    if kind == "case":
        return client.zscore("cases", ident) is not None and client.exists(f"case:{ident}") == 1
    return ident in audit_markers



@pytest.mark.timeout(300)
def test_sigkill_of_redis_while_publishing_loses_nothing_and_spool_delivers_once(own_redis: Any,
                                                                                 tmp_path: Path) -> None:
    engine_client = redis_client(own_redis.url)  # the engine's own client (short timeouts)
    api_client = redis.Redis.from_url(own_redis.url, socket_timeout=2, socket_connect_timeout=0.5)
    publisher = SpooledPublisher(EventStore(engine_client), EventSpool(tmp_path / "spool", 64 * 2**20),
                                 retry_interval_s=0.2)
    out = Written()
    stop = threading.Event()
    thread = threading.Thread(target=writer, args=(publisher, api_client, stop, out), daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(out.events) >= 300 and len(out.side) >= 12, 120, "a store with records to lose")
        time.sleep(1.5)  # records acknowledged within the last second before the kill, too
        t_kill = time.monotonic()
        own_redis.kill()  # SIGKILL: no shutdown, no final save
        wait_for(lambda: publisher.pending >= 20, 60, "events spooled while Redis is down")
        own_redis.start()  # same port, same data folder (AOF + RDB)
        t_back = time.monotonic()
        wait_for(lambda: publisher.delivered_from_spool > 0 and len([e for e in out.events if e[2] > t_back]) >= 50,
                 120, "the spool draining and direct publishing again")
    finally:
        stop.set()
        thread.join(timeout=60)
    wait_for(lambda: publisher.flush(force=True) >= 0 and publisher.pending == 0, 60, "the spool delivered")

    check = redis.Redis.from_url(own_redis.url)
    stream = stored_plate_events(check)
    audit_markers = {json.loads(f[b"params"]).get("marker", "") for _, f in check.xrange("audit")}
    before = [e for e in out.events if e[3] and e[2] < t_kill - 1.0]
    last_second = [e for e in out.events if e[3] and t_kill - 1.0 <= e[2] < t_kill]
    spooled = [e for e in out.events if not e[3]]
    after = [e for e in out.events if e[3] and e[2] >= t_kill]

    def lost(events: list[tuple[str, str, float, bool]]) -> int:
        return sum(1 for eid, plate, _, _ in events if stream[eid] == 0 or not indexed(check, eid, plate))

    duplicated = sum(n - 1 for n in stream.values() if n > 1)
    side_before = [s for s in out.side if s[2] < t_kill - 1.0]
    side_last = [s for s in out.side if t_kill - 1.0 <= s[2] < t_kill]
    side_lost = [s for s in side_before if not side_present(check, s[0], s[1], audit_markers)]
    figures = {
        "events_written": len(out.events), "acked_more_than_1s_before_kill": len(before),
        "lost_of_those": lost(before), "acked_in_last_second": len(last_second),
        "lost_in_last_second": lost(last_second), "spooled_while_down": len(spooled),
        "spooled_lost": lost(spooled), "direct_after_restart": len(after), "lost_after_restart": lost(after),
        "stream_entries": sum(stream.values()), "distinct_events_stored": len(stream), "duplicated": duplicated,
        "api_records_acked_before_kill_minus_1s": len(side_before), "api_records_lost": len(side_lost),
        "api_records_acked_in_last_second": len(side_last),
        "api_records_lost_in_last_second": sum(1 for s in side_last
                                               if not side_present(check, s[0], s[1], audit_markers)),
        "api_writes_refused_while_down": out.side_refused,
        "by_kind_before_kill": dict(Counter(s[0] for s in side_before)),
    }
    print("\nREDIS CRASH FIGURES " + json.dumps(figures))
    assert figures["lost_of_those"] == 0 and not side_lost, figures
    assert figures["spooled_lost"] == 0 and figures["lost_after_restart"] == 0, figures
    assert duplicated == 0, figures
    assert len(stream) == len(out.events) == sum(stream.values()), figures  # every event exactly once
    assert len(spooled) >= 20 and publisher.spool.dropped == 0
    assert set(figures["by_kind_before_kill"]) == {"user", "watchlist", "case", "audit"}
