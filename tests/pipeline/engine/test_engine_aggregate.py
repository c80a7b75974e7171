"""Track -> event timing: publish on track end or after publish_after_s, then version+1 on a better read."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.engine.aggregate import Aggregator, PlateObservation
from pipeline.plates.reader import PlateRead
from pipeline.plates.voting import vote

pytestmark = pytest.mark.timeout(30)

CROP = np.full((20, 60, 3), 200, dtype=np.uint8)
FRAME = np.zeros((90, 160, 3), dtype=np.uint8)


def _read(text: str, confidence: float) -> PlateRead:
    return PlateRead(text=text, confidence=confidence, char_confidences=[confidence] * len(text), valid=True)


def _observe(agg: Aggregator, t: float, text: str | None, confidence: float = 0.9) -> None:
    state = agg.vehicle("cam", 7, t, 2, 0.8)
    read = _read(text, confidence) if text is not None else None
    agg.add_plate(state, PlateObservation(read, 1200.0, t, 0.7), CROP, FRAME.copy, [1, 2, 61, 22], [0, 0, 100, 60])


def _publish(agg: Aggregator, now: float) -> list:
    out = []
    for state in agg.due("cam", now):
        out.append(agg.plate_event(state, "s.jpg", "c.jpg"))
        agg.mark_published(state, now)
    return out


def test_long_track_publishes_after_publish_after_s_then_updates_the_same_event() -> None:
    agg = Aggregator(publish_after_s=10.0, min_hits=2, vote=vote)
    for step in range(21):  # 0 .. 10 s of a weakly read plate
        _observe(agg, step * 0.5, "1กข123", 0.5)
        if step < 20:
            assert _publish(agg, step * 0.5) == []  # not yet: the track is young and alive
    (first,) = _publish(agg, 10.0)
    assert first.version == 1 and first.plate_text == "1กข123" and first.total_frames == 21
    assert _publish(agg, 10.5) == []  # nothing new
    for step in range(21, 60):  # a better read arrives and keeps arriving
        _observe(agg, step * 0.5, "1กข1234", 0.95)
    (update,) = _publish(agg, 29.5)
    assert update.event_id == first.event_id and update.version == 2 and update.plate_text == "1กข1234"
    assert update.ended_at == 29.5
    agg.end_tracks("cam", [7])
    assert _publish(agg, 33.0) == [] and not agg.vehicles  # nothing changed since: no third version; state gone


def test_short_track_publishes_once_when_it_ends_and_noise_tracks_never() -> None:
    agg = Aggregator(publish_after_s=10.0, min_hits=2, vote=vote)
    _observe(agg, 0.0, "5ขค678")
    _observe(agg, 0.25, "5ขค678")
    assert _publish(agg, 0.25) == []
    agg.end_tracks("cam", [7])
    (event,) = _publish(agg, 3.0)
    assert event.version == 1 and event.plate_text == "5ขค678" and event.started_at == 0.0
    # a one-detection track (below min_hits) produces nothing
    state = agg.vehicle("cam", 8, 5.0, 2, 0.9)
    agg.add_plate(state, PlateObservation(_read("9กก999", 0.9), 900.0, 5.0, 0.6), CROP, FRAME.copy, [0] * 4, [0] * 4)
    agg.end_tracks("cam", [8])
    assert _publish(agg, 8.0) == [] and not agg.vehicles


def test_without_a_reader_events_have_no_text_but_keep_the_best_crop() -> None:
    agg = Aggregator(publish_after_s=10.0, min_hits=2, vote=None, max_agreeing_reads=3)
    state = agg.vehicle("cam", 7, 0.0, 2, 0.8)
    for i, area in enumerate((400.0, 2500.0, 900.0)):
        crop = np.full((10, 10 + i, 3), i, dtype=np.uint8)
        agg.add_plate(state, PlateObservation(None, area, i * 0.5, 0.6), crop, FRAME.copy, [i, 0, 10, 5], [0] * 4)
        agg.vehicle("cam", 7, i * 0.5, 2, 0.8)
    assert state.best_crop.shape[1] == 11  # the largest crop
    assert not agg.wants_plate(state, 10.0)  # enough crops collected without a reader
    agg.end_tracks("cam", [7])
    (event,) = _publish(agg, 5.0)
    assert event.plate_text == "" and event.confidence == 0.0 and event.plate_box[0] == 1


def _plate_only_track(agg: Aggregator, track_id: int, reads: list[PlateRead | None], class_id: int = -1) -> None:
    for i, read in enumerate(reads):
        state = agg.vehicle("cam", track_id, i * 0.5, class_id, 0.6)
        agg.add_plate(state, PlateObservation(read, 900.0, i * 0.5, 0.6), CROP, FRAME.copy, [0] * 4, [0] * 4)
    agg.end_tracks("cam", [track_id])


def test_plate_seen_without_vehicle_needs_a_real_plate_read() -> None:
    """A plate tracked without a vehicle is an event only once a read is a valid Thai plate: text on a van or a
    sign never is. A vehicle's track stays an event whatever its reads, and without a reader the detection is."""
    agg = Aggregator(publish_after_s=10.0, min_hits=2, vote=vote)
    lettering = PlateRead(text="0812345", confidence=0.4, char_confidences=[0.4] * 7, valid=False)
    _plate_only_track(agg, 1, [lettering, lettering, lettering])
    assert _publish(agg, 5.0) == []
    _plate_only_track(agg, 2, [lettering, _read("1กข1234", 0.9), lettering])
    (event,) = _publish(agg, 5.0)
    assert event.vehicle_class == "vehicle" and event.plate_text == "1กข1234"
    _plate_only_track(agg, 3, [lettering, lettering], class_id=2)
    (car,) = _publish(agg, 5.0)
    assert car.vehicle_class == "car"
    no_reader = Aggregator(publish_after_s=10.0, min_hits=2, vote=None)
    _plate_only_track(no_reader, 4, [None, None])
    assert len(_publish(no_reader, 5.0)) == 1
