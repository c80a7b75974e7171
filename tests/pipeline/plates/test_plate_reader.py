"""The plate readers in models/plate_reader on real Thai plate crops.

The shipped reader (``models/plate_reader``) is trained on every labelled crop, so its accuracy is measured with
the same recipe's validation model (``models/plate_reader/validation``), trained without the plate-disjoint
validation split, on that whole split."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.plates.dataset import plate_disjoint_split, read_labels
from pipeline.plates.grammar import normalise_plate
from pipeline.plates.provinces import PROVINCES
from pipeline.plates.reader import PlateRead, PlateReader, load_plate_reader

REPO = Path(__file__).resolve().parents[3]
MODEL_DIR = REPO / "models" / "plate_reader"
VALIDATION_DIR = MODEL_DIR / "validation"
N_SAMPLE = 160


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return load_plate_reader("crnn", MODEL_DIR, device="cpu")


def validation_split(shared_dir: Path, every: int = 1) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Crops of the plate-disjoint validation split (the training run's split; every ``every``-th one)."""
    samples = read_labels(shared_dir / "data" / "plates_thai" / "labels.csv")
    _, val = plate_disjoint_split(samples, 0.15, 0)
    pick = val[::every]
    crops = [cv2.imread(str(samples[i].path)) for i in pick]
    return crops, [samples[i].label for i in pick], [PROVINCES[samples[i].province].thai for i in pick]


@pytest.fixture(scope="module")
def held_out(shared_dir: Path) -> tuple[list[np.ndarray], list[str], list[str]]:
    """A sample of real crops for the behaviour tests."""
    crops, labels, provinces = validation_split(shared_dir)
    step = max(1, len(crops) // N_SAMPLE)
    return crops[::step][:N_SAMPLE], labels[::step][:N_SAMPLE], provinces[::step][:N_SAMPLE]


def test_models_are_compact() -> None:
    for folder in (MODEL_DIR, VALIDATION_DIR):
        onnx = folder / "plate_reader.onnx"
        assert onnx.is_file()
        assert onnx.stat().st_size < 5 * 1024 * 1024
    assert (MODEL_DIR / "MODEL_CARD.md").is_file()


def test_training_reports_say_what_each_model_saw() -> None:
    """The shipped model saw every crop; the validation model held the plate-disjoint split out."""
    shipped = json.loads((MODEL_DIR / "train_report.json").read_text(encoding="utf-8"))
    validation = json.loads((VALIDATION_DIR / "train_report.json").read_text(encoding="utf-8"))
    assert shipped["n_val"] == 0 and shipped["n_train"] == validation["n_train"] + validation["n_val"]
    assert validation["n_val"] > 900 and float(validation["args"]["val_fraction"]) == 0.15
    assert validation["args"]["split_seed"] == "0"


def test_accuracy_on_plates_never_seen_in_training(shared_dir: Path) -> None:
    """The validation model on every crop of its held-out split (670 plate strings it never saw)."""
    crops, labels, provinces = validation_split(shared_dir)
    reads = load_plate_reader("crnn", VALIDATION_DIR, device="cpu").read_batch(crops)
    assert len(reads) == len(crops) > 900
    exact = np.mean([normalise_plate(r.text) == g for r, g in zip(reads, labels, strict=True)])
    prov = np.mean([r.province == g for r, g in zip(reads, provinces, strict=True)])
    assert exact >= 0.975, exact
    assert prov >= 0.955, prov


def test_shipped_reader_reads_real_plates(reader: PlateReader, held_out) -> None:
    """A sanity check only: the shipped reader was trained on these crops, so this is no accuracy figure."""
    crops, labels, _ = held_out
    reads = reader.read_batch(crops)
    exact = np.mean([normalise_plate(r.text) == g for r, g in zip(reads, labels, strict=True)])
    assert exact >= 0.95, exact


def test_read_fields(reader: PlateReader, held_out) -> None:
    crops, _, _ = held_out
    for r in reader.read_batch(crops[:20]):
        assert isinstance(r, PlateRead)
        assert len(r.char_confidences) == len(r.text)
        assert all(0.0 <= c <= 1.0 for c in r.char_confidences)
        assert 0.0 <= r.confidence <= 1.0 and 0.0 <= r.province_confidence <= 1.0
        assert r.candidates and r.candidates[0][0] == r.text
        assert [s for _, s in r.candidates] == sorted((s for _, s in r.candidates), reverse=True)
        assert r.province in {p.thai for p in PROVINCES}
        assert r.province_latin == next(p.latin for p in PROVINCES if p.thai == r.province)
        if r.valid and normalise_plate(r.text).isdigit():
            assert r.text[2] == "-"  # commercial plates shown as NN-NNNN


def test_batched_equals_single(reader: PlateReader, held_out) -> None:
    crops, _, _ = held_out
    batch = reader.read_batch(crops[:12])
    single = [reader.read_batch([c])[0] for c in crops[:12]]
    for b, s in zip(batch, single, strict=True):
        assert b.text == s.text and b.province == s.province
        assert b.confidence == pytest.approx(s.confidence, rel=1e-3, abs=1e-5)


def test_odd_inputs(reader: PlateReader, held_out) -> None:
    crops, _, _ = held_out
    gray = cv2.cvtColor(crops[0], cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(crops[0], cv2.COLOR_BGR2BGRA)
    tiny = cv2.resize(crops[0], (30, 15))
    empty = np.zeros((0, 0, 3), np.uint8)
    assert reader.read_batch([]) == []
    reads = reader.read_batch([gray, bgra, tiny, empty, crops[0]])
    assert len(reads) == 5
    assert reads[3].text == "" and not reads[3].valid
    assert reads[1].text == reads[4].text


def test_easyocr_backend_reports_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="craft_mlt_25k.pth"):
        load_plate_reader("easyocr", tmp_path / "easyocr")
    (tmp_path / "easyocr").mkdir()
    (tmp_path / "easyocr" / "craft_mlt_25k.pth").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="thai.pth"):
        load_plate_reader("easyocr", tmp_path / "easyocr")


def test_unknown_backend_and_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        load_plate_reader("tesseract")
    with pytest.raises(FileNotFoundError, match="plate_reader.onnx"):
        load_plate_reader("crnn", tmp_path)
