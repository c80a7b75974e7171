"""The angle sweep's scenes on real car photos (``benchmarks.plates --sweep --on-cars``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks import plates

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def eu_photos(shared_dir: Path) -> list[plates.CarPhoto]:
    return plates.load_car_photos([shared_dir / "data" / "plates_openalpr_eu" / "images"])


@pytest.fixture(scope="module")
def thai_plate(shared_dir: Path) -> np.ndarray:
    src = shared_dir / "data" / "plates_thai"
    with (src / "labels.csv").open(encoding="utf-8") as fh:
        row = next(csv.DictReader(fh))
    return plates.load_image(str(src / row["relative_path"]))


def test_car_photos_have_their_plate_painted_over(shared_dir: Path, eu_photos: list[plates.CarPhoto]) -> None:
    src = shared_dir / "data" / "plates_openalpr_eu"
    with (src / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(eu_photos) == len({r["relative_path"] for r in rows})
    photo = eu_photos[0]
    first = sorted(rows, key=lambda r: str((src / r["relative_path"]).resolve()))[0]
    original = cv2.imread(str(src / first["relative_path"]), cv2.IMREAD_COLOR)
    assert photo.image.shape == original.shape  # EU photos are under 1600 px: not scaled
    assert photo.plate == tuple(float(first[k]) for k in ("x", "y", "w", "h"))
    x, y, w, h = (int(v) for v in photo.plate)
    region = (slice(y, y + h), slice(x, x + w))
    assert np.abs(photo.image[region].astype(int) - original[region].astype(int)).mean() > 10  # the plate is gone
    outside = np.abs(photo.image[:, : max(x - w, 1)].astype(int) - original[:, : max(x - w, 1)].astype(int))
    assert outside.mean() < 1  # the rest of the car is left as it was


@pytest.mark.parametrize("cell", [plates.Cell(0, 0, 0, 160), plates.Cell(30, 0, 0, 160), plates.Cell(0, 40, 0, 160),
                                  plates.Cell(0, 0, 0, 40), plates.Cell(0, 0, 0, 320)])
def test_car_scene_poses_the_plate_where_the_cars_was(eu_photos: list[plates.CarPhoto], thai_plate: np.ndarray,
                                                      cell: plates.Cell) -> None:
    frames = []
    for i in range(6):
        frame, box = plates.make_car_scene(thai_plate, eu_photos, cell, np.random.default_rng([7, i]))
        h, w = frame.shape[:2]
        assert w <= plates.CAR_FRAME[0] and h <= plates.CAR_FRAME[1]
        assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
        if cell.roll == cell.yaw == 0:
            assert abs((box[2] - box[0]) - cell.width) < 2
        frames.append((frame, box))
    again, box_again = plates.make_car_scene(thai_plate, eu_photos, cell, np.random.default_rng([7, 0]))
    assert np.array_equal(again, frames[0][0]) and np.array_equal(box_again, frames[0][1])  # seeded
    assert len({f.shape for f, _ in frames}) > 1  # different photos for different draws


def test_car_scene_draws_do_not_depend_on_the_cell(eu_photos: list[plates.CarPhoto], thai_plate: np.ndarray) -> None:
    """A sample sits on the same car at the same offset in every cell of the sweep: the same draws whatever the
    pose and width."""
    after = []
    for cell in (plates.Cell(0, 0, 0, 40), plates.Cell(30, 40, 0, 320)):
        rng = np.random.default_rng([3, 1])
        plates.make_car_scene(thai_plate, eu_photos, cell, rng)
        after.append(rng.random())
    assert after[0] == after[1]


def test_no_labelled_photo_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(cv2.imencode(".jpg", np.zeros((20, 20, 3), np.uint8))[1].tobytes())
    with pytest.raises(SystemExit, match="no photo with a labelled plate box"):
        plates.load_car_photos([tmp_path])


def test_on_cars_sweep_cli(shared_dir: Path, tmp_path: Path) -> None:
    if not (REPO / "models" / "plate_reader" / "plate_reader.onnx").is_file():
        pytest.fail("models/plate_reader/plate_reader.onnx is missing")
    src = shared_dir / "data" / "plates_thai"
    with (src / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[::900][:3]
    with (tmp_path / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["relative_path", "label"])
        w.writeheader()
        for r in rows:
            w.writerow({"relative_path": str(src / r["relative_path"]), "label": r["label"]})
    out = tmp_path / "sweep.json"
    plates.main(["--labels", str(tmp_path / "labels.csv"), "--sweep", "--on-cars", "--sweep-n", "3", "--rolls", "0",
                 "--yaws", "0", "--widths", "160", "--backgrounds", str(shared_dir / "data" / "plates_openalpr_eu"
                                                                        / "images"),
                 "--json", str(out), "--device", "cpu"])
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["on_cars"] is True
    [cell] = res["cells"]
    assert cell["n"] == 3
    assert cell["detected"] >= 2 / 3  # on a car, the cascade finds a frontal 160 px plate
    assert cell["exact_true_box"]["rectified"] >= 2 / 3
