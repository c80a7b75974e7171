"""A worker host's running engine takes a new configuration version: known cameras get their new settings, new
cameras are found, without restarting it."""

from __future__ import annotations

import redis

from pipeline.cluster.configstore import push_config
from pipeline.cluster.node import EngineConfigFollower, apply_engine_config
from pipeline.config import parse_config
from pipeline.engine.engine import Engine

BASE = "cameras:\n  - {id: cam-a, name: A, url: 'rtsp://10.0.0.1/a'}\n"
ZONED = ("cameras:\n  - {id: cam-a, name: A, url: 'rtsp://10.0.0.1/a', zones: [{name: lane, points: [[0, 0], [0.5, 0], "
         "[0.5, 1], [0, 1]]}]}\n  - {id: cam-b, name: B, url: 'rtsp://10.0.0.1/b', analytics: {faces: true}}\n")


def test_apply_engine_config_updates_known_cameras_and_finds_new_ones() -> None:
    engine = Engine(parse_config(BASE), models=None, plate_reader=None)
    runtime = engine._camera("cam-a")
    assert runtime is not None and runtime.camera.zones == []
    assert engine._camera("cam-b") is None  # unknown in version 1
    apply_engine_config(engine, parse_config(ZONED))
    assert engine.cameras["cam-a"] is runtime  # same tracks, new settings
    assert [z.name for z in runtime.camera.zones] == ["lane"]
    assert runtime.zones is not None and runtime.camera.zones[0].points[1] == (0.5, 0.0)
    new = engine._camera("cam-b")
    assert new is not None and new.camera.analytics.faces


def test_the_follower_reloads_only_when_the_version_moves(client: redis.Redis) -> None:
    engine = Engine(parse_config(BASE), models=None, plate_reader=None)
    follower = EngineConfigFollower(engine, client, poll_s=0.2)
    follower.poll()  # nothing pushed: nothing changes
    assert [c.id for c in engine.config.cameras] == ["cam-a"] and follower.version is None
    push_config(client, ZONED)
    follower._next = 0.0
    follower.poll()
    assert follower.version == 1 and [c.id for c in engine.config.cameras] == ["cam-a", "cam-b"]
