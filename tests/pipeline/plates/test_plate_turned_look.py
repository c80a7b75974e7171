"""Turned look of plates read unsure (:mod:`pipeline.plates.turned_look`) with the shipped models on a real night
dashcam frame: a plate rolled 30 degrees that the upright detector misses while it finds a false plate elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from benchmarks.plate_detection import build_cascade
from pipeline.models.plate_detector import search_windows
from pipeline.plates.geometry import composite, plate_quad
from pipeline.plates.grammar import normalise_plate
from pipeline.plates.reader import PlateRead, load_plate_reader
from pipeline.plates.rectifier import load_plate_rectifier
from pipeline.plates.scene_reader import SceneReader
from pipeline.plates.turned_look import TURN_UNREAD_BELOW, better_read, wants_turned_look

REPO = Path(__file__).resolve().parents[3]


def read(text: str, confidence: float, valid: bool = True) -> PlateRead:
    return PlateRead(text=text, confidence=confidence, char_confidences=[], valid=valid)


def test_only_unsure_reads_want_a_turned_look() -> None:
    assert wants_turned_look(read("กข1234", TURN_UNREAD_BELOW / 2))
    assert wants_turned_look(read("กข1234", 0.99, valid=False))
    assert not wants_turned_look(read("กข1234", TURN_UNREAD_BELOW))
    assert not wants_turned_look(None)  # no reader: nothing to judge


def test_a_turned_read_replaces_only_when_valid_and_more_probable() -> None:
    assert better_read(read("กข1234", 0.6), read("ก12", 0.1))
    assert better_read(read("กข1234", 0.2), read("ก12", 0.9, valid=False))
    assert not better_read(read("กข1234", 0.3), read("ก12", 0.4))
    assert not better_read(read("กข1234", 0.9, valid=False), read("ก12", 0.1))
    assert better_read(read("กข1234", 0.3), None)


@pytest.fixture(scope="module")
def readers() -> dict[str, SceneReader]:
    # the 512 x 384 scene enlarged for the vehicle detector, as these scenes were made for: there its upright
    # search finds only an unsure false plate (at its own size it happens to find the rolled plate upright)
    cascade = build_cascade(0.25, 0.15, device="cpu", runtime="onnxruntime", detector_upscale=True)
    reader = load_plate_reader("crnn", REPO / "models" / "plate_reader", device="cpu")
    rectifier = load_plate_rectifier(REPO / "models" / "plate_rectifier", device="cpu")
    return {"before": SceneReader(cascade, reader, rectifier, turn_unread=False),
            "turned": SceneReader(cascade, reader, rectifier)}


def test_coarse_tiles_bound_a_whole_frame_turned_look(readers: dict[str, SceneReader]) -> None:
    plates = readers["turned"].cascade.plates
    for h, w in ((384, 512), (720, 1280), (1080, 1920), (1280, 1280)):
        tile = plates.coarse_tile((h, w, 3))
        assert tile >= plates.tile
        canvas = int(np.ceil(w * np.cos(np.radians(25)) + h * np.sin(np.radians(25)))), \
            int(np.ceil(h * np.cos(np.radians(25)) + w * np.sin(np.radians(25))))
        assert len(search_windows(*canvas, tile)) <= 5  # the turned frame whole and at most 2 x 2 tiles
    for h, w in ((360, 500), (300, 560)):  # vehicle crops searched upright in one window: turned in one too
        canvas = int(np.ceil(w * np.cos(np.radians(25)) + h * np.sin(np.radians(25)))), \
            int(np.ceil(h * np.cos(np.radians(25)) + w * np.sin(np.radians(25))))
        assert len(search_windows(w, h, plates.tile)) == 1
        assert len(search_windows(*canvas, plates.coarse_tile((h, w, 3), crop=True))) == 1
        assert len(search_windows(*canvas, plates.tile)) > 1  # as they were searched before


def rolled_scene(shared_dir: Path, image: str, roll: float) -> np.ndarray:
    """The plate crop turned by ``roll`` degrees (160 px wide) in the middle of the night dashcam's first frame,
    shrunk to 512 x 384 (the frame holds a real plate too far to read, which the upright detector finds)."""
    cap = cv2.VideoCapture(str(shared_dir / "data" / "videos" / "thai_bangkok_night_dashcam_bus.mp4"))
    ok, frame = cap.read()
    cap.release()
    assert ok
    frame = cv2.resize(frame, (512, 384), interpolation=cv2.INTER_AREA)
    plate = cv2.imread(str(shared_dir / "data" / "plates_thai" / "images" / image))
    quad = plate_quad(160, plate.shape[1] / plate.shape[0], roll, 0, 0) + np.float32([256, 192])
    return composite(frame, plate, quad)


@pytest.mark.parametrize(("image", "label"), [("train_00290.jpg", "302173"), ("train_00040.jpg", "กล3049")])
def test_a_rolled_plate_behind_an_unsure_false_plate_is_read(readers: dict[str, Any], shared_dir: Path,
                                                             image: str, label: str) -> None:
    frame = rolled_scene(shared_dir, image, 30)
    before = readers["before"].read(frame)
    assert before and all(wants_turned_look(p.read) for p in before)  # the upright search found only unsure plates
    assert label not in [normalise_plate(p.read.text) for p in before]
    after = readers["turned"].read(frame)
    texts = [normalise_plate(p.read.text) for p in after]
    assert label in texts
    plate = after[texts.index(label)]
    centre = (plate.box[:2] + plate.box[2:]) / 2
    assert np.abs(centre - [256, 192]).max() < 40  # where the plate is, not where the false plate was


def test_a_frontal_plate_read_well_gets_no_turned_look(readers: dict[str, Any], shared_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.plates.scene_reader as scene_reader

    frame = rolled_scene(shared_dir, "train_00290.jpg", 0)
    searched: list[int] = []
    original = scene_reader.turned_plates

    def counted(detector: Any, regions: list[np.ndarray], *args: Any) -> Any:
        searched.extend(r.shape[1] for r in regions if len(regions))
        return original(detector, regions, *args)

    monkeypatch.setattr(scene_reader, "turned_plates", counted)
    after = readers["turned"].read(frame)
    assert "302173" in [normalise_plate(p.read.text) for p in after]
    assert not searched
    monkeypatch.undo()
    rolled = rolled_scene(shared_dir, "train_00290.jpg", 30)
    monkeypatch.setattr(scene_reader, "turned_plates", counted)
    readers["turned"].read(rolled)
    assert searched  # the same counter sees the turned look where one is due
