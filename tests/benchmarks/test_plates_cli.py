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
    out = tmp_path / "det.json"
    plate_detection.main(["--labels", str(tmp_path / "labels.csv"), "--json", str(out)])
    res = json.loads(out.read_text(encoding="utf-8"))
    for key in ("n", "recall", "precision", "cascade_recall", "cascade_precision"):
        assert key in res
    assert res["n"] == 2
    assert 0.0 <= res["recall"] <= 1.0 and 0.0 <= res["cascade_recall"] <= 1.0
