"""Unit tests of the engine's pure parts: batcher, gating, zones, tracker continuity, spool, snapshots."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import Zone
from pipeline.detections import Detections
from pipeline.engine.batcher import DynamicBatcher
from pipeline.engine.engine import assign_faces_to_persons
from pipeline.engine.gating import MotionGate
from pipeline.engine.snapshots import SnapshotWriter, cleanup_snapshots
from pipeline.engine.spool import EventSpool
from pipeline.engine.tracking import Tracker, iou_matrix
from pipeline.engine.zones import ZoneFilter

pytestmark = pytest.mark.timeout(60)


# -- batcher -------------------------------------------------------------------------------------------------


def _queue_fetch(q: queue.Queue):
    def fetch(max_items: int, timeout_s: float) -> list:
        out = []
        try:
            out.append(q.get(timeout=max(timeout_s, 0)))
        except queue.Empty:
            return out
        while len(out) < max_items:
            try:
                out.append(q.get_nowait())
            except queue.Empty:
                break
        return out

    return fetch


def test_batcher_closes_at_max_size() -> None:
    q: queue.Queue = queue.Queue()
    for i in range(20):
        q.put(i)
    batcher = DynamicBatcher(_queue_fetch(q), max_batch_size=8, max_wait_s=5.0)
    start = time.monotonic()
    assert batcher.next_batch(0.1) == list(range(8))
    assert batcher.next_batch(0.1) == list(range(8, 16))
    assert time.monotonic() - start < 1.0  # full batches never wait for max_wait


def test_batcher_waits_at_most_max_wait_for_a_partial_batch() -> None:
    q: queue.Queue = queue.Queue()
    stop = threading.Event()

    def trickle() -> None:
        i = 0
        while not stop.is_set():
            q.put(i)
            i += 1
            time.sleep(0.03)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        batcher = DynamicBatcher(_queue_fetch(q), max_batch_size=100, max_wait_s=0.2)
        start = time.monotonic()
        batch = batcher.next_batch(1.0)
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        thread.join()
    assert 2 <= len(batch) < 100  # several trickled items were gathered ...
    assert 0.15 <= elapsed < 0.6  # ... and the batch closed at about max_wait
    assert batch == sorted(batch)


def test_batcher_returns_empty_on_idle_and_rejects_bad_size() -> None:
    batcher = DynamicBatcher(_queue_fetch(queue.Queue()), max_batch_size=4, max_wait_s=0.05)
    assert batcher.next_batch(0.05) == []
    with pytest.raises(ValueError, match="max_batch_size"):
        DynamicBatcher(_queue_fetch(queue.Queue()), max_batch_size=0, max_wait_s=0.05)


# -- gating --------------------------------------------------------------------------------------------------


def _scene(offset: int = 0) -> np.ndarray:
    rng = np.random.default_rng(7)
    frame = (rng.integers(0, 60, size=(360, 640, 3))).astype(np.uint8)
    frame[200:300, 100 + offset : 220 + offset] = 230  # a bright "car"
    return frame


def test_gate_skips_static_frames_and_wakes_on_motion_and_keepalive() -> None:
    gate = MotionGate(motion_threshold=0.002, keepalive_s=2.0)
    assert gate.check(_scene(), 0.0).reason == "first"
    noisy = _scene().astype(np.int16) + np.random.default_rng(1).integers(-4, 5, size=(360, 640, 3))
    static = gate.check(np.clip(noisy, 0, 255).astype(np.uint8), 0.25)  # sensor noise only
    assert not static.run_detector and static.reason == "static"
    moved = gate.check(_scene(offset=60), 0.5)
    assert moved.run_detector and moved.reason == "motion" and moved.changed_fraction > 0.002
    assert not gate.check(_scene(offset=60), 1.0).run_detector
    assert gate.check(_scene(offset=60), 2.6).reason == "keepalive"


# -- zones ---------------------------------------------------------------------------------------------------


def test_zone_filter_keeps_boxes_whose_bottom_centre_is_inside() -> None:
    left_half = Zone(name="left", points=[(0, 0), (0.5, 0), (0.5, 1), (0, 1)])
    zf = ZoneFilter([left_half])
    dets = Detections(
        xyxy=[[10, 10, 100, 200], [700, 10, 800, 200], [250, 100, 400, 360], [400, 0, 900, 100]],
        confidence=[0.9, 0.9, 0.9, 0.9], class_id=[2, 2, 2, 2],
    )
    kept = zf.filter(dets, 640, 360)
    # bottom-centres: (55,200) in, (750,200) out, (325,360 on the bottom edge) out (x>320), (650,100) out
    assert kept.xyxy.tolist() == [[10, 10, 100, 200]]
    assert len(ZoneFilter([]).filter(dets, 640, 360)) == 4
    full = ZoneFilter([Zone(name="all", points=[(0, 0), (1, 0), (1, 1), (0, 1)])])
    assert len(full.filter(dets, 1000, 360)) == 4  # the box touching the bottom edge counts as inside


def test_zone_filter_triangle() -> None:
    zf = ZoneFilter([Zone(name="tri", points=[(0, 1), (0.5, 0), (1, 1)])])
    mask = zf.inside(np.array([[50, 95], [50, 10], [5, 50], [95, 50]]), 100, 100)
    assert mask.tolist() == [True, True, False, False]


# -- tracking ------------------------------------------------------------------------------------------------


def _moving_car(t: float, speed: float = 200.0) -> list[float]:
    x = 50 + speed * t
    return [x, 200, x + 120, 280]


def test_tracker_keeps_one_id_for_a_car_crossing_the_view() -> None:
    tracker = Tracker(lost_s=1.0, high_score=0.5, low_score=0.1)
    ids = []
    for step in range(13):  # 3 s at 4 fps
        t = step * 0.25
        boxes = [_moving_car(t), [500, 50, 560, 90]]  # plus a static second object
        scores = [0.4 if step in (4, 5) else 0.9, 0.8]  # two low-score frames: the ByteTrack second stage
        tracked = tracker.update(Detections(xyxy=boxes, confidence=scores, class_id=[2, 2]), t)
        assert len(tracked) == 2
        ids.append(tuple(tracked.tracker_id.tolist()))
    assert len(set(ids)) == 1 and len(set(ids[0])) == 2


def test_tracker_bridges_a_gap_predicts_motion_and_expires_by_time() -> None:
    tracker = Tracker(lost_s=1.0)
    first = tracker.update(Detections(xyxy=[_moving_car(0)], confidence=[0.9], class_id=[2]), 0.0)
    tracker.update(Detections(xyxy=[_moving_car(0.25)], confidence=[0.9], class_id=[2]), 0.25)
    # missed for 0.5 s, then seen again further along: the Kalman prediction keeps the id
    again = tracker.update(Detections(xyxy=[_moving_car(0.9)], confidence=[0.9], class_id=[2]), 0.9)
    assert again.tracker_id.tolist() == first.tracker_id.tolist()
    nothing = Detections(xyxy=np.zeros((0, 4)), confidence=[], class_id=[])
    tracker.update(nothing, 1.5)  # a look that misses it
    assert tracker.expire(1.5) == []  # unseen 0.6 s: not lost yet
    tracker.update(nothing, 2.0)  # a second look that misses it, unseen 1.1 s > lost_s
    ended = tracker.expire(2.0)
    assert [tr.track_id for tr in ended] == first.tracker_id.tolist() and not tracker.tracks


def test_tracker_of_a_camera_analysed_rarely_keeps_its_tracks_across_frames_and_one_miss() -> None:
    """A saturated engine analyses a camera every 2.5 s, longer than ``lost_s``: a track ends only after
    ``LOST_AFTER_MISSES`` looks missed it, not between two frames (which split one car into an event per frame)."""
    tracker = Tracker(lost_s=2.0, high_score=0.5)
    nothing = Detections(xyxy=np.zeros((0, 4)), confidence=[], class_id=[])
    ids = []
    for t in (0.0, 2.5, 5.0, 10.0):  # seen every 2.5 s, missed once at 7.5 s
        ids.append(tracker.update(Detections(xyxy=[_moving_car(t / 10)], confidence=[0.9], class_id=[2]), t)
                   .tracker_id.tolist())
        assert tracker.expire(t) == []
        if t == 5.0:
            tracker.update(nothing, 7.5)
            assert tracker.expire(7.5) == []  # one look missed it: kept
    assert len({tuple(i) for i in ids}) == 1
    tracker.update(nothing, 12.5)
    assert tracker.expire(12.5) == []
    tracker.update(nothing, 15.0)
    assert [tr.track_id for tr in tracker.expire(15.0)] == ids[0]  # two looks in a row: ended


def test_tracker_ends_tracks_by_time_alone_when_not_looked_for_or_told_so() -> None:
    tracker = Tracker(lost_s=1.0)
    tracker.update(Detections(xyxy=[[0, 0, 50, 50]], confidence=[0.9], class_id=[2]), 0.0)
    assert tracker.expire(3.0) == []  # unseen 3 s but no look missed it (its tracker was not run)
    assert tracker.expire(3.0, count_misses=False) != []  # the camera stopped sending frames: time alone
    tracker.update(Detections(xyxy=[[0, 0, 50, 50]], confidence=[0.9], class_id=[2]), 4.0)
    assert tracker.expire(8.9) == [] and len(tracker.expire(9.1)) == 1  # never looked for: 5 x lost_s


def test_tracker_touch_keeps_static_tracks_alive_and_low_scores_do_not_start_tracks() -> None:
    tracker = Tracker(lost_s=1.0, high_score=0.5)
    tracker.update(Detections(xyxy=[[0, 0, 50, 50]], confidence=[0.9], class_id=[2]), 0.0)
    tracker.touch(5.0)  # gated-out static frames
    assert tracker.expire(5.5) == []
    assert len(tracker.update(Detections(xyxy=[[300, 300, 340, 340]], confidence=[0.2], class_id=[2]), 5.6)) == 0
    assert len(tracker.tracks) == 1


def test_face_tracker_follows_a_jumping_face_by_its_embedding_only() -> None:
    rng = np.random.default_rng(0)
    alice, bob = rng.normal(size=128), rng.normal(size=128)

    def faces(boxes: list[list[float]], people: list[np.ndarray]) -> Detections:
        noisy = [p + rng.normal(scale=0.3, size=128) for p in people]
        return Detections(xyxy=boxes, confidence=[0.9] * len(boxes), class_id=[0] * len(boxes),
                          data={"embedding": [n / np.linalg.norm(n) for n in noisy]})

    tracker = Tracker(lost_s=2.0, high_score=0.5, iou_threshold=0.1, appearance_threshold=0.5)
    first = tracker.update(faces([[100, 100, 140, 150], [400, 100, 440, 150]], [alice, bob]), 0.0)
    # one second later both faces are far from their boxes (no IoU, centres too far) and have swapped sides
    second = tracker.update(faces([[330, 260, 370, 310], [20, 260, 60, 310]], [alice, bob]), 1.0)
    assert second.tracker_id.tolist() == first.tracker_id.tolist()
    # without the appearance pass the same jump starts two new tracks
    plain = Tracker(lost_s=2.0, high_score=0.5, iou_threshold=0.1)
    a = plain.update(faces([[100, 100, 140, 150], [400, 100, 440, 150]], [alice, bob]), 0.0)
    b = plain.update(faces([[330, 260, 370, 310], [20, 260, 60, 310]], [alice, bob]), 1.0)
    assert set(a.tracker_id.tolist()).isdisjoint(b.tracker_id.tolist())
    # a stranger does not inherit anyone's track
    third = tracker.update(faces([[200, 400, 240, 450]], [rng.normal(size=128)]), 1.5)
    assert third.tracker_id[0] not in first.tracker_id.tolist()


def test_iou_and_face_assignment() -> None:
    assert iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0, 0] == pytest.approx(1 / 3)
    persons = np.array([[100, 100, 200, 400], [90, 80, 400, 500]], dtype=np.float32)
    faces = np.array([[130, 110, 170, 150], [600, 100, 700, 200], [300, 100, 340, 140]], dtype=np.float32)
    assert assign_faces_to_persons(faces, persons).tolist() == [0, -1, 1]


# -- spool ---------------------------------------------------------------------------------------------------


def test_spool_delivers_in_order_once_and_survives_restart(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path, max_bytes=1_000_000, segment_bytes=300)
    for i in range(20):
        spool.append("plate", {"i": i, "text": "กข1234"})
    assert len(spool) == 20 and len(list(tmp_path.glob("spool-*.jsonl"))) > 1
    got: list[int] = []

    def flaky(kind: str, payload: dict) -> bool:
        if payload["i"] == 7 and 7 not in failed:
            failed.add(7)
            raise ConnectionError("redis down")
        got.append(payload["i"])
        return True

    failed: set[int] = set()
    assert spool.drain(flaky) == 7
    reopened = EventSpool(tmp_path, max_bytes=1_000_000, segment_bytes=300)  # a restart keeps the position
    assert len(reopened) == 13
    assert reopened.drain(flaky) == 13
    assert got == list(range(20)) and len(reopened) == 0
    reopened.append("face", {"i": 99})
    assert [r.payload["i"] for r in reopened.records()] == [99]


def test_spool_cap_drops_and_counts_the_oldest(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path, max_bytes=2000, segment_bytes=500)
    for i in range(100):
        spool.append("alert", {"i": i, "pad": "x" * 20})
    remaining = [r.payload["i"] for r in spool.records()]
    assert spool.size_bytes() <= 2000
    assert spool.dropped > 0 and spool.dropped + len(remaining) == 100
    assert remaining == list(range(100 - len(remaining), 100))  # the newest survive, in order
    assert len(spool) == len(remaining)


def test_a_corrupt_offset_file_replays_every_record_instead_of_stopping_the_engine(tmp_path: Path) -> None:
    """An unreadable delivery position (a power cut while it was replaced) used to stop the engine from starting
    until someone fixed the file; now every spooled record is delivered again (the store ignores repeats) and the
    bad file is kept aside."""
    spool = EventSpool(tmp_path, max_bytes=100_000)
    for i in range(5):
        spool.append("alert", {"i": i})
    for record in list(spool.records())[:3]:
        spool.commit(record)
    assert [r.payload["i"] for r in EventSpool(tmp_path, max_bytes=100_000).records()] == [3, 4]
    (tmp_path / "offset.json").write_text("{not json")
    again = EventSpool(tmp_path, max_bytes=100_000)
    assert [r.payload["i"] for r in again.records()] == [0, 1, 2, 3, 4] and len(again) == 5
    assert [p.name.startswith("offset.json.corrupt-") for p in tmp_path.glob("offset.json.*")] == [True]
    again.commit(list(again.records())[-1])
    assert list(EventSpool(tmp_path, max_bytes=100_000).records()) == []


# -- snapshots -----------------------------------------------------------------------------------------------


def test_snapshots_layout_and_retention(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path)
    image = np.full((40, 80, 3), 128, dtype=np.uint8)
    old = writer.save("cam-1", 1_700_000_000.0, "ev1", "frame", image)  # 2023-11-14 UTC
    new = writer.save("cam-1", 1_700_000_000.0 + 40 * 86400, "ev2", "plate", image)
    assert old == "snapshots/cam-1/2023-11-14/ev1_frame.jpg"
    assert (tmp_path / old).read_bytes()[:2] == b"\xff\xd8"
    removed = cleanup_snapshots(tmp_path, retention_days=30, now=1_700_000_000.0 + 41 * 86400)
    assert removed == 1 and not (tmp_path / old).exists() and (tmp_path / new).exists()
