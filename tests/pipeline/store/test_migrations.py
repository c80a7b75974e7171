"""The one-time backfill of ``alerts:face_media`` (:mod:`pipeline.store.migrations`) on a real Redis: face alerts
written before the index existed (the old publisher: XADD + ``alerts:idx`` only) get their crops indexed, newest alert
per crop, in pages, once, by one process at a time, without undoing what the publisher wrote meanwhile."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import redis

from pipeline.events import Alert
from pipeline.store import EventStore, keys
from pipeline.store.migrations import backfill_face_alert_media, face_alert_media_indexed

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _alert(n: int, kind: str = "face", crop: str | None = None) -> Alert:
    return Alert(kind=kind, watchlist_id="wl1", entry_id="p1", event_id=f"ev{n}", camera_id="walkway-01",
                 label="wanted", score=0.8, crop_path=crop if crop is not None else f"snapshots/walkway-01/d/{n}.jpg")


def _old_publish(client: redis.Redis, alert: Alert) -> str:
    """Store an alert as the publisher did before ``alerts:face_media`` existed; returns its stream id."""
    sid = client.xadd(keys.ALERT_STREAM, {"alert": json.dumps(alert.model_dump(mode="json"))}).decode()
    client.hset(keys.ALERT_INDEX, alert.alert_id, sid)
    return sid


def _media(client: redis.Redis) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(keys.FACE_ALERT_MEDIA).items()}


def test_old_face_alerts_are_indexed_newest_per_crop_in_pages(rclient: redis.Redis) -> None:
    """Face alerts with a crop enter the index (a crop named by several alerts: the newest); plate alerts, face
    alerts without a crop and malformed entries do not. Pages of 2 walk all of them."""
    sids = [_old_publish(rclient, _alert(n)) for n in range(5)]
    again = _old_publish(rclient, _alert(9, crop="snapshots/walkway-01/d/1.jpg"))
    _old_publish(rclient, _alert(6, kind="plate"))
    _old_publish(rclient, _alert(7, crop=""))
    rclient.xadd(keys.ALERT_STREAM, {"alert": b"not json"})
    assert backfill_face_alert_media(rclient, page=2)
    expected = {f"snapshots/walkway-01/d/{n}.jpg": sid for n, sid in enumerate(sids)}
    expected["snapshots/walkway-01/d/1.jpg"] = again
    assert _media(rclient) == expected
    assert face_alert_media_indexed(rclient)
    assert not rclient.exists(keys.FACE_ALERT_MEDIA_BACKFILL_LOCK)


def test_done_once_then_skipped(rclient: redis.Redis) -> None:
    """Once done it does not rescan: an entry removed later (say by the retention pass) is not written back."""
    crop = _alert(1).crop_path
    _old_publish(rclient, _alert(1))
    assert backfill_face_alert_media(rclient)
    rclient.hdel(keys.FACE_ALERT_MEDIA, crop)
    assert backfill_face_alert_media(rclient)
    assert _media(rclient) == {}


def test_empty_store_is_marked_done(rclient: redis.Redis) -> None:
    assert backfill_face_alert_media(rclient) and face_alert_media_indexed(rclient)


def test_budget_stops_and_the_next_start_goes_on(rclient: redis.Redis) -> None:
    """A walk out of time keeps its cursor; the next one indexes the rest without starting over."""
    sids = [_old_publish(rclient, _alert(n)) for n in range(6)]
    ticks = iter([0.0, 0.0, 10.0])  # deadline at 1 s: the first page fits, the second runs out
    assert not backfill_face_alert_media(rclient, page=2, budget_s=1.0, clock=lambda: next(ticks, 10.0))
    assert len(_media(rclient)) == 4 and not face_alert_media_indexed(rclient)
    assert rclient.hget(keys.FACE_ALERT_MEDIA_BACKFILL, "cursor").decode() == sids[3]
    assert backfill_face_alert_media(rclient, page=2)
    assert sorted(_media(rclient).values()) == sids


def test_newer_publisher_entry_is_kept(rclient: redis.Redis) -> None:
    """A crop the new publisher indexed for a newer alert keeps that alert's id (the backfill writes only older
    ones)."""
    old = _alert(1)
    _old_publish(rclient, old)
    assert EventStore(rclient).publish_alert(_alert(2, crop=old.crop_path))
    newest = rclient.xrevrange(keys.ALERT_STREAM, count=1)[0][0].decode()
    assert backfill_face_alert_media(rclient)
    assert _media(rclient) == {old.crop_path: newest}


def test_another_process_holding_the_lock_is_left_to_it(rclient: redis.Redis) -> None:
    _old_publish(rclient, _alert(1))
    rclient.set(keys.FACE_ALERT_MEDIA_BACKFILL_LOCK, "other", px=60_000)
    assert not backfill_face_alert_media(rclient)
    assert _media(rclient) == {} and not face_alert_media_indexed(rclient)
    assert rclient.get(keys.FACE_ALERT_MEDIA_BACKFILL_LOCK) == b"other"


def test_processes_starting_at_once(redis_url: str, rclient: redis.Redis) -> None:
    """Several processes starting together: the index ends complete and right, and done is marked."""
    sids = [_old_publish(rclient, _alert(n)) for n in range(300)]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def start() -> None:
        client = redis.Redis.from_url(redis_url)
        try:
            barrier.wait()
            backfill_face_alert_media(client, page=7)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(_media(rclient).values()) == sids
    assert face_alert_media_indexed(rclient)
