"""Plates cut by their detector box (``pipeline/plates/regrow.py``): real held-out car crops pasted into a real
video frame, read through the real rectifier and reader from their whole box and from a box that cuts off their
left or right part."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.plates.dataset import PlateSample, plate_disjoint_split, read_labels
from pipeline.plates.grammar import normalise_plate
from pipeline.plates.layout import CAR, MOTORCYCLE
from pipeline.plates.reader import load_plate_reader
from pipeline.plates.rectifier import PlateRectifier, RectifiedPlate
from pipeline.plates.regrow import Cut, better_regrown_read, cut_sides, regrown_box
from pipeline.plates.scene_reader import SceneReader, reading_crop
from pipeline.plates.types import PlateRead

REPO = Path(__file__).resolve().parents[3]
N_PLATES = 30
PLATE_WIDTH = 160
ORIGIN = (240, 140)  # where the plate is pasted in the 640x360 frame

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def scene_reader() -> SceneReader:
    rectifier = PlateRectifier(REPO / "models" / "plate_rectifier", device="cpu")
    reader = load_plate_reader("crnn", REPO / "models" / "plate_reader", device="cpu")
    return SceneReader(None, reader, rectifier)  # type: ignore[arg-type]  # read_crops needs no cascade


@pytest.fixture(scope="module")
def scenes(shared_dir: Path) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(frame, the plate's box, label) for held-out car crops pasted at 160 px into the first frame of a real
    road video."""
    samples = read_labels(shared_dir / "data" / "plates_thai" / "labels.csv")
    _, val = plate_disjoint_split(samples, 0.15, 0)
    videos = sorted((shared_dir / "data" / "videos").glob("*.mp4"))
    cap = cv2.VideoCapture(str(videos[0]))
    ok, background = cap.read()
    cap.release()
    assert ok
    background = cv2.resize(background, (640, 360))
    return [paste(background, samples[i]) for i in val[:N_PLATES]]


def paste(background: np.ndarray, sample: PlateSample) -> tuple[np.ndarray, np.ndarray, str]:
    crop = cv2.imread(str(sample.path))
    crop = cv2.resize(crop, (PLATE_WIDTH, int(round(PLATE_WIDTH * crop.shape[0] / crop.shape[1]))))
    h, w = crop.shape[:2]
    x0, y0 = ORIGIN
    frame = background.copy()
    frame[y0:y0 + h, x0:x0 + w] = crop
    return frame, np.float32([x0, y0, x0 + w, y0 + h]), sample.label


def test_whole_plates_are_never_grown(scene_reader: SceneReader,
                                      scenes: list[tuple[np.ndarray, np.ndarray, str]]) -> None:
    """A box around the whole plate (the detector's usual box) is left alone: growing it would only cost time."""
    plates = scene_reader.read_crops([reading_crop(frame, box) for frame, box, _ in scenes])
    grown = [regrown_box(frame, box, p.rectified) for (frame, box, _), p in zip(scenes, plates, strict=True)]
    assert sum(g is not None for g in grown) <= 1, grown


@pytest.mark.parametrize("side", ["left", "right"])
def test_a_cut_plate_is_grown_to_the_whole_plate_and_read(scene_reader: SceneReader,
                                                          scenes: list[tuple[np.ndarray, np.ndarray, str]],
                                                          side: str) -> None:
    """A box that misses 45 % of the plate on one side reads a wrong (or no) registration; the grown box covers
    that side and reads the plate."""
    cut_boxes = []
    for _, box, _ in scenes:
        x0, y0, x1, y1 = box
        cut = 0.45 * (x1 - x0)
        cut_boxes.append(np.float32([x0 + cut, y0, x1, y1]) if side == "left" else np.float32([x0, y0, x1 - cut, y1]))
    cut_plates = scene_reader.read_crops([reading_crop(frame, b) for (frame, _, _), b in zip(scenes, cut_boxes,
                                                                                             strict=True)])
    cut_right = sum(normalise_plate(p.read.text) == normalise_plate(label)
                    for p, (_, _, label) in zip(cut_plates, scenes, strict=True))
    grown, covering, read_right = 0, 0, 0
    for (frame, box, label), cut_box, plate in zip(scenes, cut_boxes, cut_plates, strict=True):
        regrowth = regrown_box(frame, cut_box, plate.rectified)
        if regrowth is None:
            continue
        new, cut = regrowth
        assert cut == Cut(left=side == "left", right=side == "right")
        grown += 1
        width = box[2] - box[0]
        covering += bool(abs(new[0] - box[0]) <= 0.15 * width if side == "left" else
                         abs(new[2] - box[2]) <= 0.15 * width)
        again = scene_reader.read_crops([reading_crop(frame, new)])[0]
        read_right += normalise_plate(again.read.text) == normalise_plate(label)
    n = len(scenes)
    assert cut_right <= 0.2 * n, cut_right
    print(f"{side}: cut box read right {cut_right}, grown {grown}, covering {covering}, read right {read_right} of {n}")
    assert grown >= 0.7 * n and covering >= 0.65 * n, (grown, covering)
    assert read_right >= 0.6 * n, read_right


def plate(corners: list[list[float]], layout: str = CAR, applied: bool = True) -> RectifiedPlate:
    return RectifiedPlate(np.zeros((4, 4, 3), np.uint8), np.float32(corners), layout, 0.9, applied)


def test_cut_sides_follow_the_corners() -> None:
    hw = (60, 100)
    assert not cut_sides(plate([[5, 5], [95, 5], [95, 50], [5, 50]]), hw)
    assert cut_sides(plate([[-20, 5], [95, 5], [95, 50], [-20, 50]]), hw) == Cut(left=True)
    assert cut_sides(plate([[5, 5], [120, 5], [120, 50], [5, 50]]), hw) == Cut(right=True)
    assert cut_sides(plate([[5, -10], [95, -10], [95, 50], [5, 50]]), hw) == Cut(top=True)
    assert cut_sides(plate([[5, 5], [95, 5], [95, 80], [5, 80]], MOTORCYCLE), hw) == Cut(bottom=True)
    assert not cut_sides(plate([[5, 5], [95, 5], [95, 62], [5, 62]]), hw)  # 2 px of 57: within the tolerance
    narrow = [[30, 5], [70, 5], [70, 50], [30, 50]]  # 40 x 45: a car plate seen from the side, not a cut one
    assert not cut_sides(plate(narrow), hw)
    assert not cut_sides(plate([[-20, 5], [95, 5], [95, 50], [-20, 50]], applied=False), hw)


def test_a_plate_cut_at_the_bottom_grows_down_along_its_sides() -> None:
    """A motorcycle plate whose number line the box cut: the box grows downwards, not sideways."""
    source = np.zeros((400, 400, 3), np.uint8)
    box = np.float32([100, 100, 200, 160])  # reading crop 94..206 x 92..168 (the reading pad)
    cut_low = plate([[10, 8], [100, 8], [100, 90], [10, 90]], MOTORCYCLE)  # 14 px below a 76 px crop
    regrowth = regrown_box(source, box, cut_low)
    assert regrowth is not None and regrowth[1] == Cut(bottom=True)
    grown = regrowth[0]
    assert grown[3] > 92 + 90 + 10 and grown[1] >= 92 and abs(grown[0] - (94 + 10)) < 1 and abs(grown[2] - 194) < 1


def test_a_cut_plate_at_the_source_edge_is_not_grown() -> None:
    """Nothing lies beyond the image's edge: a plate cut by the frame itself is not grown."""
    source = np.zeros((100, 200, 3), np.uint8)
    cut_at_edge = plate([[-20, 5], [55, 5], [55, 35], [-20, 35]])  # in the 64 px wide reading crop
    assert regrown_box(source, np.float32([0, 20, 60, 60]), cut_at_edge) is None
    regrowth = regrown_box(source, np.float32([80, 20, 140, 60]), cut_at_edge)
    assert regrowth is not None
    grown, cut = regrowth
    assert cut == Cut(left=True) and grown[0] < 80 and grown[2] <= 200


def read(text: str, confidence: float, valid: bool = True) -> PlateRead:
    return PlateRead(text=text, confidence=confidence, char_confidences=[], valid=valid)


@pytest.mark.parametrize(("new", "old", "cut", "kept"), [
    (read("ศต2349", 0.9), read("ต2349", 0.8), Cut(left=True), True),  # more probable
    (read("ศต2349", 0.3), read("ต2349", 0.95), Cut(left=True), True),  # holds the cut read, and what was cut
    (read("ศต2349", 0.3), read("ต2349", 0.95), None, True),
    (read("ศต2349", 0.3), read("ศต23", 0.95), Cut(right=True), True),
    (read("ศต2349", 0.3), read("ศต23", 0.95), Cut(left=True), False),  # grew where nothing was cut
    (read("1กด3374", 0.3), read("1กด", 0.95), Cut(bottom=True), True),
    (read("ศต2349", 0.1), read("ต2349", 0.95), Cut(left=True), False),  # too unsure
    (read("ขก2349", 0.3), read("ต2349", 0.95), Cut(left=True), False),  # another plate, less probable
    (read("ศต2349", 0.9, valid=False), read("ต2349", 0.1), Cut(left=True), False),  # not a registration
    (read("ศต2349", 0.2), read("ต23", 0.5, valid=False), Cut(left=True), True),  # the cut read was no registration
])
def test_which_grown_read_is_kept(new: PlateRead, old: PlateRead, cut: Cut | None, kept: bool) -> None:
    assert better_regrown_read(new, old, cut) is kept
