"""Loading an exported plate reader back into :class:`~pipeline.plates.net.PlateNet`
(:func:`pipeline.plates.onnx_import.load_onnx_weights`): in eval mode the network computes what the ONNX model
computes, with the province head as exported or grown by a "no province" class."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from pipeline.plates.dataset import load_images, plate_disjoint_split, read_labels
from pipeline.plates.grammar import CHARSET
from pipeline.plates.net import INPUT_H, INPUT_W, PlateNet
from pipeline.plates.onnx_import import load_onnx_weights
from pipeline.plates.provinces import PROVINCES
from pipeline.plates.train import export_onnx, exported_input_size, greedy_decode

REPO = Path(__file__).resolve().parents[3]
READER_DIR = REPO / "models" / "plate_reader"
TOL = 1e-4


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch thread: these small networks gain nothing from more, and on a busy 2-core machine torch's
    thread pool is an order of magnitude slower than one thread (measured 1.7 s against 0.1 s a forward pass)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def crops(shared_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, test): 48 training crops and 24 validation crops at the network's default input size."""
    return _calibration_and_test(shared_dir, (INPUT_H, INPUT_W))


@pytest.fixture(scope="module")
def shipped_crops(shared_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The same crops at the shipped reader's input size (its side-car JSON)."""
    return _calibration_and_test(shared_dir, exported_input_size(READER_DIR))


def _calibration_and_test(shared_dir: Path, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    samples = read_labels(shared_dir / "data" / "plates_thai" / "labels.csv")
    train, val = plate_disjoint_split(samples, 0.15, 0)
    return (load_images([samples[i] for i in train[::100][:48]], hw),
            load_images([samples[i] for i in val[:: len(val) // 24][:24]], hw))


@pytest.fixture(scope="module")
def imported(shipped_crops: tuple[np.ndarray, np.ndarray]) -> dict[int, PlateNet]:
    """The shipped reader loaded into a network with 77 and one with 78 province classes (eval mode)."""
    out = {}
    for n in (77, 78):
        if n < shipped_province_classes():
            continue
        model = PlateNet(len(CHARSET), n, input_h=exported_input_size(READER_DIR)[0])
        load_onnx_weights(model, READER_DIR / "plate_reader.onnx", shipped_crops[0])
        out[n] = model.eval()
    return out


def onnx_outputs(path: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    char_probs, province_probs = session.run(None, {"image": images.transpose(0, 3, 1, 2).astype(np.float32)})
    return char_probs, province_probs


@torch.no_grad()
def torch_logits(model: PlateNet, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ctc, prov = model.forward_logits(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float())
    return ctc.numpy(), prov.numpy()


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def shipped_province_classes() -> int:
    """Province outputs of the shipped ONNX, checked against what its side-car JSON declares: 77 provinces, plus
    one when it declares a ``no_province_class`` (that class is then the last one)."""
    meta = json.loads((READER_DIR / "plate_reader.json").read_text(encoding="utf-8"))
    session = ort.InferenceSession(str(READER_DIR / "plate_reader.onnx"), providers=["CPUExecutionProvider"])
    n = int(session.get_outputs()[1].shape[1])
    assert len(meta["provinces"]) == len(PROVINCES) == 77
    if meta.get("no_province_class") is not None:
        assert meta["no_province_class"] == len(PROVINCES) and n == len(PROVINCES) + 1
    else:
        assert n == len(PROVINCES)
    return n


@pytest.mark.parametrize("n_provinces", [77, 78])
def test_shipped_reader_round_trips(shipped_crops: tuple[np.ndarray, np.ndarray], imported: dict[int, PlateNet],
                                    n_provinces: int) -> None:
    """The shipped ONNX loaded into a network with 77 or 78 province classes gives the ONNX outputs to 1e-4 in eval
    mode (measured 4.4e-6 on the characters, 3e-7 on the provinces); a grown head keeps the exported classes'
    probabilities among themselves and starts its new class nearly silent."""
    n_onnx = shipped_province_classes()
    if n_provinces < n_onnx:
        pytest.skip(f"the shipped ONNX has {n_onnx} province classes; a smaller head cannot hold them")
    test = shipped_crops[1]
    model = imported[n_provinces]
    char_ref, prov_ref = onnx_outputs(READER_DIR / "plate_reader.onnx", test)
    ctc, prov = torch_logits(model, test)
    assert np.abs(softmax(ctc) - char_ref).max() < TOL
    assert np.abs(softmax(prov[:, :n_onnx]) - prov_ref).max() < TOL
    if n_provinces > n_onnx:
        full = softmax(prov)
        assert full[:, n_onnx:].max() < 0.01  # the new class starts below every real province on real crops
        assert (full.argmax(1) == prov_ref.argmax(1)).all()
    # the network's own export form (softmax over its head) agrees too where the heads are the same size
    with torch.no_grad():
        cp, pp = model(torch.from_numpy(np.ascontiguousarray(test.transpose(0, 3, 1, 2))).float())
    assert np.abs(cp.numpy() - char_ref).max() < TOL
    if n_provinces == n_onnx:
        assert np.abs(pp.numpy() - prov_ref).max() < TOL


def test_unfolded_batchnorm_trains_from_the_calibration_statistics(shipped_crops: tuple[np.ndarray, np.ndarray],
                                                                   imported: dict[int, PlateNet]) -> None:
    """Each BatchNorm gets the statistics its convolution produces on the calibration crops, so in train mode
    (batch statistics, dropout off) on those very crops the network still computes the exported function
    (measured 2.5e-6); on a batch of other crops it still reads what the export reads (measured: 24/24 greedy
    reads equal, mean probability change 1.3e-4; folding the whole BatchNorm into its bias instead, as a plain
    import would, gives 20/24 and 1.7e-3): training continues from the export."""
    calibration, test = shipped_crops
    model = imported[78]
    ref_calib, ref_test = torch_logits(model, calibration)[0], torch_logits(model, test)[0]
    train = copy.deepcopy(model).train()
    for m in train.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    same = softmax(torch_logits(train, calibration)[0])
    assert np.abs(same - softmax(ref_calib)).max() < 1e-3
    other = softmax(torch_logits(copy.deepcopy(train), test)[0])
    assert np.abs(other - softmax(ref_test)).mean() < 6e-4
    same_reads = [a == b for a, b in zip(greedy_decode(other), greedy_decode(softmax(ref_test)), strict=True)]
    assert np.mean(same_reads) >= 0.95, same_reads
    # the statistics are real ones: not the identity a fresh BatchNorm starts from
    bn = model.backbone[0][1]
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))


def test_exported_78_class_network_round_trips(tmp_path: Path, crops: tuple[np.ndarray, np.ndarray]) -> None:
    """A network with the "no province" class, exported as training does (BatchNorm folded), loads back into a
    78-class network that reproduces that ONNX to 1e-4: the path a reader trained with the new class takes."""
    calibration, test = crops
    torch.manual_seed(0)
    source = PlateNet(len(CHARSET), 78)
    source.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that folding and unfolding are exercised
        for _ in range(3):
            source.forward_logits(torch.from_numpy(np.ascontiguousarray(calibration.transpose(0, 3, 1, 2))).float())
    path = tmp_path / "plate_reader.onnx"
    export_onnx(source, path)
    char_ref, prov_ref = onnx_outputs(path, test)
    assert prov_ref.shape == (len(test), 78)
    model = PlateNet(len(CHARSET), 78)
    load_onnx_weights(model, path, calibration)
    model.eval()
    ctc, prov = torch_logits(model, test)
    assert np.abs(softmax(ctc) - char_ref).max() < TOL
    assert np.abs(softmax(prov) - prov_ref).max() < TOL


def test_wrong_architecture_is_refused(tmp_path: Path, crops: tuple[np.ndarray, np.ndarray]) -> None:
    """A network with a different number of convolutions does not silently take the weights."""
    from pipeline.plates.rectifier_net import RectifierNet

    path = tmp_path / "rectifier.onnx"
    model = RectifierNet().eval()
    torch.onnx.export(model, (torch.rand(1, 3, 96, 96) * 255,), str(path), input_names=["image"],
                      output_names=["corners", "layout"], opset_version=17, dynamo=False)
    with pytest.raises(ValueError, match="convolutions"):
        load_onnx_weights(PlateNet(len(CHARSET), 77), path, crops[0])
