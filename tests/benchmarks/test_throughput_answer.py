"""The throughput benchmark's answer check: recall of the reference run's plate reads and face events, and the rate
of extra events, on small synthetic inputs (no models)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmarks.throughput import FaceSpan, answer_check, event_keys, match_faces


def _plate(event_id: str, camera: str, text: str, version: int = 1) -> tuple[str, SimpleNamespace]:
    return "plate", SimpleNamespace(event_id=event_id, version=version, camera_id=camera, plate_text=text,
                                    started_at=0.0, ended_at=1.0)


def _face(event_id: str, camera: str, start: float, end: float, embedding: list[float] | None = None,
          version: int = 1) -> tuple[str, SimpleNamespace]:
    return "face", SimpleNamespace(event_id=event_id, version=version, camera_id=camera, started_at=start,
                                   ended_at=end, embedding=embedding or [])


def test_identical_answers_give_full_recall_and_no_extras() -> None:
    plates = {("cam01", "1กข1234"), ("cam01", "2ขค567")}
    faces = [FaceSpan("cam02", 0.0, 4.0), FaceSpan("cam02", 10.0, 12.0)]
    check = answer_check(plates, faces, set(plates), list(faces))
    assert check["reference_recall"] == 1.0
    assert check["extra_event_rate"] == 0.0
    assert check["matched_plate_reads"] == 2 and check["matched_face_events"] == 2


def test_missed_and_extra_events_are_counted_against_the_reference() -> None:
    reference_plates = {("cam01", f"{k}กข{k:04d}") for k in range(30)}
    reference_faces = [FaceSpan("cam02", 10.0 * k, 10.0 * k + 3) for k in range(20)]
    # measured: one plate read missed, one read wrong (= one missed + one extra), one face missed, one face extra
    measured_plates = set(sorted(reference_plates)[2:]) | {("cam01", "9ฮฮ9999")}
    measured_faces = reference_faces[1:] + [FaceSpan("cam02", 500.0, 501.0)]
    check = answer_check(measured_plates, measured_faces, reference_plates, reference_faces)
    assert check["reference_plate_reads"] == 30 and check["reference_face_events"] == 20
    assert check["matched_plate_reads"] == 28 and check["matched_face_events"] == 19
    assert check["reference_recall"] == pytest.approx(47 / 50)
    assert check["extra_event_rate"] == pytest.approx(2 / 50)
    assert check["missed_plate_texts"] == [f"cam01:{t}" for _, t in sorted(reference_plates)[:2]]
    assert check["extra_plate_texts"] == ["cam01:9ฮฮ9999"]
    assert len(check["reference_plate_texts"]) == 30
    assert check["missed_face_events"] == 1 and check["extra_face_events"] == 1


def test_same_text_on_another_camera_is_a_different_read() -> None:
    check = answer_check({("cam04", "1กข1234")}, [], {("cam01", "1กข1234")}, [])
    assert check["reference_recall"] == 0.0 and check["extra_event_rate"] == 1.0


def test_empty_reference_gives_no_rates() -> None:
    check = answer_check({("cam01", "1กข1234")}, [], set(), [])
    assert check["reference_recall"] is None and check["extra_event_rate"] is None
    assert check["extra_plate_texts"] == ["cam01:1กข1234"]


def test_face_matching_is_one_to_one_by_camera_time_and_embedding() -> None:
    reference = [FaceSpan("cam02", 0.0, 5.0, (1.0, 0.0)), FaceSpan("cam02", 1.0, 6.0, (0.0, 1.0))]
    # a split track: two measured events for the first reference face; one at another camera; one far in time
    measured = [FaceSpan("cam02", 0.0, 2.0, (1.0, 0.0)), FaceSpan("cam02", 3.0, 5.0, (0.99, 0.1)),
                FaceSpan("cam03", 0.0, 5.0, (1.0, 0.0)), FaceSpan("cam02", 100.0, 101.0, (0.0, 1.0))]
    pairs = match_faces(measured, reference)
    assert len(pairs) == 1 and pairs[0][1] == 0  # the person of reference face 1 (embedding (0, 1)) is not matched
    check = answer_check(set(), measured, set(), reference)
    assert check["reference_recall"] == pytest.approx(0.5)
    assert check["extra_event_rate"] == pytest.approx(3 / 2)


def test_face_spans_close_in_time_match_without_embeddings() -> None:
    assert match_faces([FaceSpan("cam02", 5.5, 6.0)], [FaceSpan("cam02", 0.0, 5.0)]) == [(0, 0)]
    assert match_faces([FaceSpan("cam02", 7.0, 8.0)], [FaceSpan("cam02", 0.0, 5.0)]) == []


def test_event_keys_take_the_last_version_of_each_event() -> None:
    events = [_plate("a", "cam01", "1กข123"), _plate("a", "cam01", "1กข1234", version=2),
              _plate("b", "cam01", ""),  # unreadable: no plate read
              _plate("c", "cam01", "1กข1234"),  # the same read again (the clip looped): one distinct read
              _face("f", "cam02", 0.0, 2.0, [1.0, 0.0]), _face("f", "cam02", 0.0, 3.0, [0.0, 1.0], version=2),
              ("alert", SimpleNamespace(event_id="x", version=1))]
    plates, faces = event_keys(events)
    assert plates == {("cam01", "1กข1234")}
    assert faces == [FaceSpan("cam02", 0.0, 3.0, (0.0, 1.0))]


def test_recall_counts_only_the_reference_reads_legible_by_eye() -> None:
    # the reference also guessed at a blurred plate ("กพ2843"); the engine did not: that costs no recall, but
    # is still reported among all reads
    reference = {("cam01", "1กอ5180"), ("cam01", "16-7186"), ("cam01", "กพ2843"), ("cam04", "1กข1234")}
    measured = {("cam01", "1กอ5180"), ("cam01", "16-7186"), ("cam04", "1กข1234")}
    legible = {"cam01": {"1กอ5180", "16-7186"}}  # cam04 has no labels: its reads all count
    check = answer_check(measured, [], reference, [], legible=legible)
    assert check["reference_correct_plate_reads"] == 3 and check["matched_correct_plate_reads"] == 3
    assert check["reference_recall"] == 1.0
    assert check["reference_recall_all_reads"] == pytest.approx(3 / 4)
    assert check["missed_plate_texts"] == ["cam01:กพ2843"] and check["missed_correct_plate_texts"] == []
    assert check["plate_truth"] == "by eye on cam01"
    # a legible plate the engine missed does cost recall
    check = answer_check(measured - {("cam01", "16-7186")}, [], reference, [], legible=legible)
    assert check["reference_recall"] == pytest.approx(2 / 3)
    assert check["missed_correct_plate_texts"] == ["cam01:16-7186"]


def test_footage_labels_map_to_the_cameras_showing_that_video(tmp_path) -> None:
    from benchmarks.throughput import FOOTAGE_PLATES, camera_plate_truth, load_footage_plates

    legible = load_footage_plates(FOOTAGE_PLATES)
    assert "1กอ5180" in legible["thai_bangkok_night_dashcam_bus"]
    truth = camera_plate_truth(["cam01", "cam02", "cam03", "cam04"], legible)
    assert set(truth) == {"cam01", "cam04"}  # cameras 1 and 4 show the dashcam; 2, 3 show faces (no labels)
    broken = tmp_path / "plates.csv"
    broken.write_text("video,plate,seen\nthai_bangkok_night_dashcam_bus,,blurred\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"plates.csv:2: a row needs both"):
        load_footage_plates(broken)
