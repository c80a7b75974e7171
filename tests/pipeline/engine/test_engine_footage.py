"""The engine on real footage with the real models and a real redis-server.

Frames are decoded with OpenCV at reduced width and a few frames per second (file-driven mode), fed to
``Engine.process_batch``; events, alerts and metrics are read back from Redis.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from pipeline.config import Config
from pipeline.engine.filesource import FileFrame, iter_video_frames, run_files
from pipeline.engine.metrics import metrics_key
from pipeline.engine.process import build_engine, load_plate_reader_or_none, run_loop
from pipeline.events import Alert, FaceEvent, PlateEvent
from pipeline.models.plate_detector import VEHICLE_MARGIN
from pipeline.plates.fuzzy import plate_distance
from pipeline.store import WatchlistStore, keys
from pipeline.store.codec import decode

pytestmark = pytest.mark.timeout(300)

START = 1_763_600_000.0  # capture epoch of the first video frame
HILUX_PLATE = "1กอ5180"  # reviewer's reading of the top line (see the data PROVENANCE)


@pytest.fixture(scope="module")
def videos(shared_dir: Path) -> Path:
    return shared_dir / "data" / "videos"


@pytest.fixture(scope="module")
def models(shared_dir: Path) -> Any:
    from pipeline.config import EngineConfig
    from pipeline.models.registry import load_model_set

    return load_model_set(EngineConfig(), model_dir=shared_dir / "models", device="cpu")


@pytest.fixture(scope="module")
def reader() -> Any:
    """The plate reader, or None while its trained model is not installed (events then carry no text)."""
    return load_plate_reader_or_none("crnn", device="cpu")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_config(camera_id: str, plates: bool, faces: bool, **engine: Any) -> Config:
    return Config.model_validate({
        "engine": {"device": "cpu", **engine},
        "cameras": [{"id": camera_id, "name": camera_id, "url": f"/videos/{camera_id}.mp4",
                     "analytics": {"plates": plates, "faces": faces}}],
    })


def engine_for(config: Config, models: Any, reader: Any, redis_url: str, tmp_path: Path) -> tuple[Any, Any, Any]:
    return build_engine(config, redis_url=redis_url, recordings_dir=tmp_path / "rec", spool_dir=tmp_path / "spool",
                        models=models, plate_reader=reader, engine_id="test-engine", live=False)


def stream(client: redis.Redis, name: str) -> list[tuple[str, dict]]:
    return [(sid.decode(), fields) for sid, fields in client.xrange(name)]


def plate_events(client: redis.Redis) -> list[PlateEvent]:
    return [decode(PlateEvent, fields) for _, fields in stream(client, keys.PLATE_STREAM)]


def face_events(client: redis.Redis) -> list[FaceEvent]:
    return [decode(FaceEvent, fields) for _, fields in stream(client, keys.FACE_STREAM)]


def enrol(client: redis.Redis, models: Any, videos: Path, threshold: float = 0.45) -> dict[str, str]:
    """Put the two enrolment stills on a face watchlist; return name -> person id."""
    store = WatchlistStore(client)
    watchlist = store.create_watchlist("face", "stage")
    ids = {}
    for name, file in (("Lin-Manuel Miranda", "lin-manuel-miranda.png"), ("Alex Lacamoire", "alex-lacamoire.png")):
        image = cv2.imread(str(videos / "enroll" / file))
        (embedding,) = models.embed_face_images([image])
        assert embedding is not None, f"no face found in {file}"
        person = store.create_person(name, np.asarray(embedding)[None, :])
        store.put_entry(watchlist["id"], {"person_id": person["id"], "threshold": threshold, "reason": "test",
                                          "severity": "high"})
        ids[name] = person["id"]
    return ids


def test_dashcam_vehicle_track_yields_a_plate_event(models: Any, reader: Any, videos: Path, redis_url: str,
                                                    tmp_path: Path) -> None:
    config = make_config("bkk-night-01", plates=True, faces=False)
    engine, publisher, client = engine_for(config, models, reader, redis_url, tmp_path)
    if reader is not None:  # a fuzzy plate watchlist entry for the Hilux must raise an alert
        store = WatchlistStore(client)
        watchlist = store.create_watchlist("plate", "wanted")
        store.put_entry(watchlist["id"], {"plate": HILUX_PLATE, "fuzzy": True, "max_distance": 1.5,
                                          "reason": "test", "severity": "high"})
    frames = iter_video_frames(videos / "thai_bangkok_night_dashcam_bus.mp4", "bkk-night-01", START,
                               sample_fps=3, start_s=8, end_s=24, max_width=960)
    processed = run_files(engine, [frames], batch_size=8)
    assert processed >= 45 and publisher.pending == 0

    events = plate_events(client)
    assert events, "no plate event reached Redis"
    # tracking: the Hilux, followed for 16 s, is ONE track (not one event per frame), hence one long event
    assert len(events) < processed / 4
    hilux = max(events, key=lambda e: e.ended_at - e.started_at)
    assert hilux.ended_at - hilux.started_at >= 12
    assert hilux.version >= 2  # published after publish_after_s (10 s), updated when the track ended
    for event in events:
        assert event.crop_path and event.snapshot_path
        crop = cv2.imread(str(tmp_path / "rec" / event.crop_path))
        assert crop is not None and crop.size > 0 and crop.shape[1] >= 8
        assert event.crop_path.startswith("snapshots/bkk-night-01/")
        x1, y1, x2, y2 = event.plate_box
        vx1, vy1, vx2, vy2 = event.vehicle_box
        # the plate lies on its vehicle (searched with VEHICLE_MARGIN around the box: bumpers stick out)
        mx, my = (vx2 - vx1) * VEHICLE_MARGIN + 1, (vy2 - vy1) * VEHICLE_MARGIN + 1
        assert vx1 - mx <= x1 < x2 <= vx2 + mx and vy1 - my <= y1 < y2 <= vy2 + my
    if reader is None:
        assert all(e.plate_text == "" for e in events)
        return
    assert hilux.plate_text, "the reader is installed but the Hilux plate was not read"
    assert plate_distance(hilux.plate_text, HILUX_PLATE) <= 1.5, hilux.plate_text
    alerts = [Alert.model_validate_json(fields[b"alert"]) for _, fields in stream(client, keys.ALERT_STREAM)]
    assert any(a.kind == "plate" and a.event_id == hilux.event_id for a in alerts), "no alert for the Hilux"


def test_face_watchlist_alerts_for_the_performer_only(models: Any, videos: Path, redis_url: str,
                                                      tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    persons = enrol(client, models, videos)

    config = make_config("stage-01", plates=False, faces=True)
    engine, publisher, client = engine_for(config, models, None, redis_url, tmp_path)
    frames = iter_video_frames(videos / "short_hamilton_clip.mp4", "stage-01", START, sample_fps=3, max_width=640)
    run_files(engine, [frames], batch_size=8)
    events = face_events(client)
    assert events
    alert_entries = stream(client, keys.ALERT_STREAM)
    alerts = [Alert.model_validate_json(fields[b"alert"]) for _, fields in alert_entries]
    assert alerts, "the performer's face raised no alert"
    entry_ids = [a.entry_id for a in alerts]
    assert persons["Lin-Manuel Miranda"] in entry_ids
    assert persons["Alex Lacamoire"] not in entry_ids
    assert all(a.kind == "face" and a.camera_id == "stage-01" and a.score >= 0.45 for a in alerts)
    # the alert follows its event within a second (stream ids are Redis millisecond timestamps)
    event_ms = {e.event_id: int(sid.split("-")[0])
                for (sid, _), e in zip(stream(client, keys.FACE_STREAM), events, strict=True)}
    for (sid, _), alert in zip(alert_entries, alerts, strict=True):
        assert alert.event_id in event_ms
        assert int(sid.split("-")[0]) - event_ms[alert.event_id] < 1000

    # the same watchlist raises nothing on the pedestrian clip, which does yield face events with embeddings
    before = client.xlen(keys.ALERT_STREAM)
    config = make_config("walkway-01", plates=False, faces=True)
    engine, publisher, client = engine_for(config, models, None, redis_url, tmp_path)
    frames = iter_video_frames(videos / "pedestrians_walking_toward_camera.mp4", "walkway-01", START, sample_fps=4,
                               max_width=960)
    run_files(engine, [frames], batch_size=8)
    walkway = [e for e in face_events(client) if e.camera_id == "walkway-01"]
    assert len(walkway) >= 3
    for event in walkway:
        emb = event.embedding_array()
        assert emb.shape == (models.embedding_size,) and abs(float(np.linalg.norm(emb)) - 1.0) < 1e-3
        assert event.crop_path and (tmp_path / "rec" / event.crop_path).is_file()
    assert client.xlen(keys.ALERT_STREAM) == before


def test_redis_outage_events_are_spooled_and_delivered_once_in_order(models: Any, videos: Path,
                                                                     own_redis: Any, tmp_path: Path) -> None:
    config = make_config("stage-01", plates=False, faces=True, publish_after_s=1.0, track_lost_s=1.0)
    engine, publisher, client = engine_for(config, models, None, own_redis.url, tmp_path)
    delivered: list[tuple[str, int]] = []
    real_publish = publisher.store.publish_face_event

    def recording_publish(event: FaceEvent) -> bool:
        result = real_publish(event)  # raises while Redis is down
        delivered.append((event.event_id, event.version))
        return result

    publisher.store.publish_face_event = recording_publish
    emitted: list[tuple[str, int, bool]] = []
    real_emit = publisher.publish

    def recording_emit(kind: str, record: Any) -> bool:
        spooled_before = publisher.pending > 0
        ok = real_emit(kind, record)
        emitted.append((record.event_id, record.version, ok and not spooled_before))
        return ok

    publisher.publish = recording_emit
    frames: list[FileFrame] = list(iter_video_frames(videos / "short_hamilton_clip.mp4", "stage-01", START,
                                                     sample_fps=3, max_width=640))
    third = len(frames) // 3
    for i in range(0, third, 4):
        engine.process_batch(frames[i : min(i + 4, third)])
    direct_before_outage = len(delivered)
    own_redis.stop()
    for i in range(third, 2 * third, 4):
        engine.process_batch(frames[i : min(i + 4, 2 * third)])
    gap = [(eid, v) for eid, v, direct in emitted if not direct]
    assert len(gap) >= 2, "the outage window produced too few events to test the spool"
    assert publisher.pending == len(gap) and not publisher.redis_ok
    own_redis.start()  # restarted on the same port and data folder
    for i in range(2 * third, len(frames), 4):
        engine.process_batch(frames[i : i + 4])
    engine.finish()
    publisher.flush(force=True)
    publisher.flush(force=True)
    assert publisher.pending == 0

    after_restart = delivered[direct_before_outage:]
    # every record of the gap arrived, first and in the order produced
    assert after_restart[: len(gap)] == gap
    stored = face_events(client)
    ids = [e.event_id for e in stored]
    assert len(ids) == len(set(ids)), "an event is stored twice"
    current = {e.event_id: e.version for e in stored}
    for event_id, version in gap:
        assert current.get(event_id, 0) >= version
    # re-delivering the whole spool history again stores nothing new (idempotent store)
    assert all(not publisher.store.publish_face_event(e) for e in stored)
    assert Counter(e.event_id for e in face_events(client)) == Counter(ids)


def test_engine_loop_serves_the_frame_bus_and_exports_metrics(models: Any, videos: Path, redis_url: str,
                                                              tmp_path: Path) -> None:
    from pipeline.ingest.framebus import FrameBus

    port = free_port()
    config = make_config("walkway-01", plates=False, faces=True, metrics_port=port, metrics_interval_s=0.5,
                         max_batch_size=4, max_wait_ms=20)
    engine, publisher, client = build_engine(config, redis_url=redis_url, recordings_dir=tmp_path / "rec",
                                             spool_dir=tmp_path / "spool", models=models, plate_reader=None,
                                             engine_id="loop-test", live=True)
    frames = list(iter_video_frames(videos / "pedestrians_walking_toward_camera.mp4", "walkway-01", START,
                                    sample_fps=3, max_width=640))
    stop = threading.Event()
    with FrameBus(["walkway-01"], queue_size=4, max_width=640) as bus:
        loop = threading.Thread(target=run_loop, args=(engine, publisher, client, config, bus, stop), daemon=True)
        loop.start()
        try:
            for frame in frames:
                bus.publish("walkway-01", frame.frame, time.time())
                time.sleep(0.05)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and engine.metrics.counters["frames"] + bus.dropped("walkway-01") < len(frames):
                time.sleep(0.1)
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        finally:
            stop.set()
            loop.join(timeout=60)
        assert not loop.is_alive()
        assert engine.metrics.counters["frames"] + bus.dropped("walkway-01") == len(frames)
    assert 'cctv_engine_stage_seconds_count{stage="detect"}' in text
    assert "cctv_engine_batch_size_bucket" in text
    metrics = {k.decode(): v.decode() for k, v in client.hgetall(metrics_key("loop-test")).items()}
    assert int(metrics["count_frames"]) >= 1 and float(metrics["stage_detect_mean_ms"]) > 0
    assert "queue_depth:walkway-01" in metrics and "dropped:walkway-01" in metrics
    assert face_events(client), "the loop published no face event (finish() on stop)"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)  # endpoint closed on stop


def test_close_up_plate_without_a_vehicle_yields_a_plate_event(models: Any, reader: Any, shared_dir: Path,
                                                               redis_url: str, tmp_path: Path) -> None:
    """A gate camera's close-up: no vehicle box at all, the plate is still found, tracked and published."""
    root = shared_dir / "data" / "plates_openalpr_us"
    image = cv2.imread(str(root / "images" / "us7.jpg"))
    assert image is not None
    assert not len(models.vehicles.detect_batch([image])[0])  # the detector sees no vehicle in this view
    config = make_config("gate-01", plates=True, faces=False)
    engine, publisher, client = engine_for(config, models, reader, redis_url, tmp_path)
    shifted = [np.roll(image, 3 * k, axis=1) for k in range(6)]  # six frames, one second apart, slight motion
    frames = iter(FileFrame("gate-01", k, START + k, frame) for k, frame in enumerate(shifted))
    run_files(engine, [frames], batch_size=2)
    events = [e for e in plate_events(client) if e.camera_id == "gate-01"]
    assert len(events) == 1, events  # one plate, one track, one event
    event = events[0]
    assert event.vehicle_class == "vehicle"
    px1, py1, px2, py2 = event.plate_box
    assert px2 - px1 > 100 and py2 - py1 > 40  # the big plate of the close-up, not a speck
    assert (tmp_path / "rec" / event.crop_path).is_file()
    # the same view with the option off publishes nothing
    off = make_config("gate-02", plates=True, faces=False, plates_without_vehicle=False)
    engine, publisher, client = engine_for(off, models, reader, redis_url, tmp_path)
    run_files(engine, [iter(FileFrame("gate-02", k, START + k, f) for k, f in enumerate(shifted))], batch_size=2)
    assert not [e for e in plate_events(client) if e.camera_id == "gate-02"]


def test_frames_without_vehicles_get_tiles_every_two_seconds_unless_tiles_found_plates(
        models: Any, reader: Any, videos: Path, shared_dir: Path, redis_url: str, tmp_path: Path) -> None:
    """The tiled search of vehicle-less frames follows what it finds: a walkway (people, no vehicle, no plate) is
    tiled once per TILED_LOOK_INTERVAL_S, a gate's close-up whose tiled look found a plate on every frame."""
    from pipeline.engine.engine import TILED_LOOK_INTERVAL_S

    walkway = [item.frame for item in iter_video_frames(videos / "pedestrians_walking_toward_camera.mp4", "w", 0.0,
                                                         sample_fps=2.0, max_width=960)][:8]
    assert len(walkway) == 8
    assert not any(np.isin(d.class_id, [2, 3, 5, 7]).any() for d in models.vehicles.detect_batch(walkway))
    config = make_config("walk-01", plates=True, faces=False, motion_threshold=0.0)
    engine, _, client = engine_for(config, models, reader, redis_url, tmp_path)
    run_files(engine, [iter(FileFrame("walk-01", k, START + 0.5 * k, f) for k, f in enumerate(walkway))],
              batch_size=2)
    analysed = engine.metrics.counters["frames_analysed"]
    assert analysed == 8
    step = round(TILED_LOOK_INTERVAL_S / 0.5)  # frames are 0.5 s apart
    assert engine.metrics.counters["tiled_looks"] == len(range(0, 8, step)) == 2  # at t = 0 and 2 s
    assert not [e for e in plate_events(client) if e.camera_id == "walk-01"]

    image = cv2.imread(str(shared_dir / "data" / "plates_openalpr_us" / "images" / "us7.jpg"))
    gate = make_config("gate-03", plates=True, faces=False)
    engine, _, client = engine_for(gate, models, reader, redis_url, tmp_path / "gate")
    shifted = [np.roll(image, 3 * k, axis=1) for k in range(6)]
    run_files(engine, [iter(FileFrame("gate-03", k, START + k, f) for k, f in enumerate(shifted))], batch_size=2)
    # its plate keeps every later frame tiled; the frame batched with the first is decided before that one's hit
    assert engine.metrics.counters["tiled_looks"] == 5
    assert len([e for e in plate_events(client) if e.camera_id == "gate-03"]) == 1
