"""Legal holds against the real store: one damaged stored hold item must not break every other case's hold, and
what it held (unknown) stays held: all recording, until it is repaired."""

from __future__ import annotations

import json
import logging

import pytest
import redis

from pipeline.store import holds

pytestmark = pytest.mark.timeout(60)

DAMAGED = ["{not json", b"\xff\xfe not utf-8", json.dumps({"events": ["plate:x"]}), json.dumps(["a", "b"]), json.dumps({"events": 1,
           "paths": [], "windows": []}), json.dumps({"events": [], "paths": [], "windows": [5]})]


def _good_hold() -> holds.Hold:
    return holds.Hold(events=["plate:good"], paths=["cam/2024-01-01/00/a.jpg"], windows=[("cam", 10.0, 20.0)])


@pytest.mark.parametrize("damaged", DAMAGED)
def test_rebuild_keeps_every_hold_and_holds_everything_for_a_damaged_item(client: redis.Redis, damaged: str | bytes,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    holds.place(client, "case-a", "plate:good", _good_hold())
    client.hset(holds.case_key("case-b"), "clip:bad", damaged)
    client.sadd(holds.CASES, "case-b")
    with caplog.at_level(logging.WARNING, logger="pipeline.store.holds"):
        holds.rebuild(client)
    now = holds.held(client)
    assert now.events == frozenset({"plate:good"})
    assert now.path("cam/2024-01-01/00/a.jpg")
    assert now.segment("cam", 15.0, 16.0)
    assert now.everything and now.segment("other-cam", 1.0, 2.0)  # the damaged item's footage is not known: kept
    assert any("clip:bad" in r.getMessage() and "case-b" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("damaged", DAMAGED)
def test_releasing_a_case_works_next_to_a_damaged_item(client: redis.Redis, damaged: str | bytes) -> None:
    holds.place(client, "case-a", "plate:good", _good_hold())
    holds.place(client, "case-c", "plate:other", holds.Hold(events=["plate:other"], paths=["x.jpg"]))
    client.hset(holds.case_key("case-a"), "clip:bad", damaged)
    holds.release(client, "case-c")
    now = holds.held(client)
    assert now.events == frozenset({"plate:good"}) and not now.path("x.jpg")
    assert now.segment("cam", 15.0, 16.0) and now.everything
    client.hdel(holds.case_key("case-a"), "clip:bad")  # repaired: the hold shrinks back to what is known
    holds.rebuild(client)
    assert not holds.held(client).everything and holds.held(client).segment("cam", 15.0, 16.0)
