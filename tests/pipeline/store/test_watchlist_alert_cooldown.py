"""WatchlistStore.claim_alert: the engine's plate alert cooldown kept in Redis (real Redis)."""

from __future__ import annotations

import time

import pytest
import redis

from pipeline.store import WatchlistStore
from pipeline.store.watchlists import cooldown_key

pytestmark = pytest.mark.timeout(60)


def test_claim_alert_opens_one_window_and_lets_its_own_alert_through_again(redis_url: str) -> None:
    wl = WatchlistStore(redis.Redis.from_url(redis_url))
    key = cooldown_key("wl", "entry", "cam-1", "1กข1234")
    assert key != cooldown_key("wl", "entry", "cam-2", "1กข1234")
    assert wl.claim_alert(key, "alert-a", 0.3)
    assert wl.claim_alert(key, "alert-a", 0.3)  # the holder again (re-raised after a restart)
    assert not wl.claim_alert(key, "alert-b", 0.3)
    assert 0 < wl.client.pttl(key) <= 300
    time.sleep(0.4)
    assert wl.claim_alert(key, "alert-b", 0.3)
    assert not wl.claim_alert(key, "alert-a", 0.3)
