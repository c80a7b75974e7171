"""The plate benchmarks' command lines on small real label files."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from benchmarks import plate_detection, plates

REPO = Path(__file__).resolve().parents[2]


def _has_model() -> bool:
    return (REPO / "models" / "plate_reader" / "plate_reader.onnx").is_file()


def test_plates_cli_json(shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not _has_model():
        pytest.fail("models/plate_reader/plate_reader.onnx is missing")
    src = shared_dir / "data" / "plates_thai"
    with (src / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[::400][:12]
    (tmp_path / "imgs").mkdir()
    out_rows = []
    for i, r in enumerate(rows):
        shutil.copy(src / r["relative_path"], tmp_path / "imgs" / f"{i}.jpg")
        label = r["label"]
        if label.isdigit():
            label = f"{label[:2]}-{label[2:]}"  # labels may carry hyphens
        out_rows.append({"relative_path": f"imgs/{i}.jpg", "label": label,
                         "province": r["province"] if i % 3 else ""})  # some rows without province
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["relative_path", "label", "province"])
        w.writeheader()
        w.writerows(out_rows)
    out = tmp_path / "res.json"
    plates.main(["--labels", str(labels), "--json", str(out), "--device", "cpu"])
    res = json.loads(out.read_text(encoding="utf-8"))
    for key in ("n", "exact", "char_accuracy", "province_accuracy", "ms_per_plate", "exact_both"):
        assert key in res
    assert res["n"] == len(out_rows)
    assert res["n_province"] == sum(1 for r in out_rows if r["province"])
    assert 0.0 <= res["exact"] <= 1.0 and res["char_accuracy"] >= res["exact"] - 1e-9
    assert res["exact"] >= 0.6
    assert "exact" in capsys.readouterr().out


def test_plates_cli_minimal_columns(shared_dir: Path, tmp_path: Path) -> None:
    src = shared_dir / "data" / "plates_thai"
    with (src / "labels.csv").open(encoding="utf-8") as fh:
        r = next(iter(csv.DictReader(fh)))
    shutil.copy(src / r["relative_path"], tmp_path / "a.jpg")
    (tmp_path / "labels.csv").write_text(f"relative_path,label\na.jpg,{r['label']}\n", encoding="utf-8")
    out = tmp_path / "res.json"
    plates.main(["--labels", str(tmp_path / "labels.csv"), "--json", str(out), "--device", "cpu"])
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["n"] == 1 and res["province_accuracy"] is None


def test_plate_detection_cli_json(shared_dir: Path, tmp_path: Path) -> None:
    src = shared_dir / "data" / "plates_openalpr_us"
    with (src / "labels.csv").open(encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames
        rows = list(reader)[:2]
    for r in rows:
        (tmp_path / r["relative_path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / r["relative_path"], tmp_path / r["relative_path"])
    with (tmp_path / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fields)
        w.writeheader()
        w.writerows(rows)
    found = {}
    for canvas in ("square", "fit"):
        out = tmp_path / f"det_{canvas}.json"
        plate_detection.main(["--labels", str(tmp_path / "labels.csv"), "--json", str(out),
                              "--engine-set", f"plate_canvas={canvas}"])
        res = json.loads(out.read_text(encoding="utf-8"))
        for key in ("n", "recall", "precision", "cascade_recall", "cascade_precision"):
            assert key in res
        assert res["n"] == 2
        assert 0.0 <= res["recall"] <= 1.0 and 0.0 <= res["cascade_recall"] <= 1.0
        found[canvas] = res["cascade_recall"]
    assert found["fit"] == found["square"] > 0  # the same plates on these two frames


@pytest.mark.parametrize("cli", [plate_detection, plates])
def test_plate_benchmarks_refuse_a_bad_engine_setting_before_reading_anything(
        cli: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--labels", str(tmp_path / "missing.csv"), "--engine-set", "plate_canvas=round"])  # type: ignore[attr-defined]
    assert exc.value.code == 2
    assert "--engine-set" in capsys.readouterr().err


def _has_rectifier() -> bool:
    return (REPO / "models" / "plate_rectifier" / "plate_rectifier.onnx").is_file()


def _copy_rows(src: Path, rows: list[dict[str, str]], dst: Path) -> Path:
    """Copy the rows' images under ``dst`` and write their ``relative_path,label`` labels file."""
    with (dst / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["relative_path", "label"])
        w.writeheader()
        for i, r in enumerate(rows):
            shutil.copy(src / r["relative_path"], dst / f"{i}.jpg")
            w.writerow({"relative_path": f"{i}.jpg", "label": r["label"]})
    return dst / "labels.csv"


def test_plates_sweep_cli(shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    if not (_has_model() and _has_rectifier()):
        pytest.fail("models/plate_reader/plate_reader.onnx or models/plate_rectifier/plate_rectifier.onnx is missing")
    from pipeline.plates.scene_reader import SceneReader

    calls: list[bool] = []  # one entry per scene reader call that read plates: was a rectifier used?
    read_crops = SceneReader.read_crops

    def spy(self: SceneReader, crops, *args, **kwargs):
        calls.append(self.rectifier is not None)
        return read_crops(self, crops, *args, **kwargs)

    monkeypatch.setattr(SceneReader, "read_crops", spy)
    src = shared_dir / "data" / "plates_thai"
    with (src / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[::700][:3]
    labels = _copy_rows(src, rows, tmp_path)
    out = tmp_path / "sweep.json"
    plates.main(["--labels", str(labels), "--sweep", "--sweep-n", "3", "--rolls", "0,30", "--yaws", "0",
                 "--widths", "160", "--videos", str(shared_dir / "data" / "videos" / "thai_bangkok_night_dashcam_bus.mp4"),
                 "--video-frames", "2", "--backgrounds", str(shared_dir / "data" / "plates_openalpr_eu" / "images"),
                 "--json", str(out), "--device", "cpu"])
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["modes"] == ["rectified", "off"]
    assert [(c["roll"], c["yaw"], c["width"]) for c in res["cells"]] == [(0, 0, 160), (30, 0, 160)]
    assert set(res["sweeps"]) == {"roll", "yaw", "width", "grid"} and res["sweeps"]["roll"] == [0, 1]
    for cell in res["cells"]:
        assert cell["n"] == 3
        rates = [cell["detected"], cell["best_is_plate"], cell["rectifier_applied"],
                 *cell["exact"].values(), *cell["char_accuracy"].values(), *cell["exact_true_box"].values()]
        assert all(0.0 <= v <= 1.0 for v in rates), cell
    summary = res["summary"]
    for key in ("frontal", "roll_30", "min", "mean"):
        assert set(summary[key]) == {"rectified", "off"} and all(0.0 <= v <= 1.0 for v in summary[key].values())
    assert summary["yaw_40"] is None and summary["true_box"]["yaw_40"] is None  # not in this sweep
    assert all(0.0 <= v <= 1.0 for v in summary["true_box"]["frontal"].values())
    assert True in calls and False in calls  # both modes read the plates they found
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "exact_rect" in printed and "r30 y0" in printed


def test_plates_cli_motorcycle_layout(shared_dir: Path, tmp_path: Path) -> None:
    if not (_has_model() and _has_rectifier()):
        pytest.fail("models/plate_reader/plate_reader.onnx or models/plate_rectifier/plate_rectifier.onnx is missing")
    src = shared_dir / "data" / "plates_thai_moto"
    with (src / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[::25][:4]
    labels = _copy_rows(src, rows, tmp_path)
    out = tmp_path / "moto.json"
    plates.main(["--labels", str(labels), "--layout", "motorcycle", "--json", str(out), "--device", "cpu"])
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["n"] == 4 and res["layout"] == "motorcycle" and res["rectified"] is False
    assert 0.0 <= res["exact"] <= res["char_accuracy"] + 1e-9 <= 1.0 + 1e-9
    plates.main(["--labels", str(labels), "--layout", "motorcycle", "--rectify", "--reading-pad", "--json", str(out),
                 "--device", "cpu"])
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["rectified"] is True and res["reading_pad"] is True and 0.0 <= res["rectified_share"] <= 1.0
    assert res["layout_car"] + res["layout_motorcycle"] == 4
    assert res["rectifier_car"] + res["rectifier_motorcycle"] + res["rectifier_auto"] == 4


def first_car_crops(shared_dir: Path, tmp_path: Path, n: int) -> tuple[Path, list[dict[str, str]]]:
    """A labels file of the first ``n`` car crops (absolute paths) in ``tmp_path``, and their source rows."""
    src = shared_dir / "data" / "plates_thai"
    with (src / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:n]
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["relative_path", "label", "province"])
        w.writeheader()
        w.writerows({"relative_path": str(src / r["relative_path"]), "label": r["label"],
                     "province": r["province"]} for r in rows)
    return labels, rows


def test_plates_cli_doubled_reads_only_doubled_series(shared_dir: Path, tmp_path: Path) -> None:
    """``--doubled`` reads the crops whose two-letter series can be doubled, with doubled labels."""
    labels, rows = first_car_crops(shared_dir, tmp_path, 40)
    kept = plates.doubled_rows(plates.read_rows(labels))
    assert 5 <= len(kept) < len(rows)
    assert all(any(a == b and a.isalpha() for a, b in zip(r["label"], r["label"][1:], strict=False)) for r in kept)
    out = tmp_path / "res.json"
    plates.main(["--labels", str(labels), "--doubled", "--layout", "car", "--json", str(out), "--device", "cpu"])
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["n"] == len(kept) and res["doubled"] is True


def test_plates_cli_edge_cut_reads_crops_cut_through_an_end_character(shared_dir: Path, tmp_path: Path) -> None:
    """``--edge-cut KEEP`` reads the crops that split into their characters, cut through the first or last one
    (every other crop each way), labels whole; a KEEP outside (0, 1] is refused."""
    labels, rows = first_car_crops(shared_dir, tmp_path, 30)
    kept = plates.edge_cut_rows(plates.read_rows(labels), 0.6, pad=True)
    assert 5 <= len(kept) < len(rows)
    assert {r["edge"] for r in kept} == {"left", "right"}
    whole = {r["relative_path"]: r["label"] for r in plates.read_rows(labels)}
    assert all(r["label"] == whole[r["relative_path"]] for r in kept)
    out = tmp_path / "res.json"
    plates.main(["--labels", str(labels), "--edge-cut", "0.6", "--layout", "car", "--rectify", "--reading-pad",
                 "--json", str(out), "--device", "cpu"])
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["n"] == len(kept) and res["edge_cut"] == 0.6 and 0.0 <= res["exact"] <= 1.0
    with pytest.raises(SystemExit, match="KEEP"):
        plates.main(["--labels", str(labels), "--edge-cut", "1.5", "--device", "cpu"])


def test_plates_cli_scenes_with_plate_boxes_read_each_plate(shared_dir: Path, tmp_path: Path) -> None:
    """A labels file with a plate box per row (``detection.csv``): each row gets the read of the plate found at its
    box, and a photo with four motorcycles is read once for its four rows, each with its own registration."""
    src = shared_dir / "data" / "plates_thai_moto"
    with (src / "detection.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    crowd = "images/18664593_10155399317434846_3108639805189484847_n_jpg.rf.12238f839e2e28c8be3fe2e96a102ccc.jpg"
    chosen = [r for r in rows if r["relative_path"] == crowd] + [r for r in rows if r["relative_path"] != crowd][:3]
    (tmp_path / "images").mkdir()
    for r in chosen:
        shutil.copy(src / r["relative_path"], tmp_path / r["relative_path"])
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["relative_path", "label", "x", "y", "w", "h"])
        w.writeheader()
        w.writerows(chosen)
    out = tmp_path / "res.json"
    plates.main(["--labels", str(labels), "--scenes", "--json", str(out), "--device", "cpu", "--show", "10"])
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["n"] == len(chosen) == 7
    assert res["exact"] >= 4 / 7, res  # the shipped reader trained on these plates; measured 6 of 7
    assert res["plates_detected"] >= 5


def test_plates_cli_shrink_reads_crops_at_the_asked_width(shared_dir: Path, tmp_path: Path) -> None:
    """``--shrink PX`` reads every crop shrunk to PX wide (aspect kept): fewer right at 24 px than at full size;
    a width under 8 px is refused."""
    labels, rows = first_car_crops(shared_dir, tmp_path, 30)
    shrunk = plates.shrunk_rows(plates.read_rows(labels), 40)
    assert len(shrunk) == len(rows)
    for row in shrunk:
        original = plates.load_image(row["path"])
        assert row["image"].shape[1] == min(40, original.shape[1])
        assert abs(row["image"].shape[0] / row["image"].shape[1] - original.shape[0] / original.shape[1]) < 0.1
    results = {}
    for width in ("24", "0"):
        out = tmp_path / f"res{width}.json"
        plates.main(["--labels", str(labels), "--layout", "car", "--json", str(out), "--device", "cpu",
                     *(["--shrink", width] if width != "0" else [])])
        results[width] = json.loads(out.read_text(encoding="utf-8"))
    assert results["24"]["shrink"] == 24 and "shrink" not in results["0"]
    assert results["24"]["exact"] < results["0"]["exact"]
    with pytest.raises(SystemExit, match="PX"):
        plates.main(["--labels", str(labels), "--shrink", "4", "--device", "cpu"])


def test_plates_cli_restyle_reads_red_and_graphic_plates(shared_dir: Path, tmp_path: Path) -> None:
    """``--restyle`` reads every crop redrawn as a red dealer or graphic plate, and says which in the JSON."""
    labels, rows = first_car_crops(shared_dir, tmp_path, 20)
    for style in ("red", "graphic"):
        out = tmp_path / f"{style}.json"
        plates.main(["--labels", str(labels), "--layout", "car", "--restyle", style, "--json", str(out),
                     "--device", "cpu"])
        res = json.loads(out.read_text(encoding="utf-8"))
        assert res["n"] == len(rows) and res["restyle"] == style and res["exact"] >= 0.6
