"""Average the weights of exported plate readers (``python -m pipeline.plates.average_exports A B --out C``).

Stage 7 of the reader (``models/plate_reader/MODEL_CARD.md``) ships the mean of two exports of one fine-tuning
lineage: every floating-point initialiser of the ONNX graphs is averaged, element by element. The graphs must be
the same (same nodes, same initialiser names and shapes: exports of one network at one input size); the
metadata (``plate_reader.json``) is taken from the first export. Folded BatchNorm makes this an average of
folded weights, which behaves like a checkpoint average only between models of one fine-tuning basin.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

logger = logging.getLogger(__name__)

ONNX_NAME = "plate_reader.onnx"
META_NAME = "plate_reader.json"


class ExportMismatch(ValueError):
    """The exports do not share one graph, so their weights cannot be averaged."""


def _initialisers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _check_same_graph(first: onnx.ModelProto, first_weights: dict[str, np.ndarray], other: onnx.ModelProto,
                      other_weights: dict[str, np.ndarray], where: Path) -> None:
    ops_a = [(n.op_type, tuple(n.input), tuple(n.output)) for n in first.graph.node]
    ops_b = [(n.op_type, tuple(n.input), tuple(n.output)) for n in other.graph.node]
    if ops_a != ops_b:
        raise ExportMismatch(f"{where}: its graph differs from the first export's (nodes or their wiring)")
    shapes_a = {k: v.shape for k, v in first_weights.items()}
    shapes_b = {k: v.shape for k, v in other_weights.items()}
    if shapes_a != shapes_b:
        diff = sorted(k for k in shapes_a.keys() | shapes_b.keys() if shapes_a.get(k) != shapes_b.get(k))
        raise ExportMismatch(f"{where}: initialisers differ in name or shape from the first export's: {diff[:5]}")


def average_exports(folders: list[Path], out: Path) -> Path:
    """Write the element-wise mean of the exports in ``folders`` to ``out`` (a folder); returns the ONNX path."""
    if len(folders) < 2:
        raise ValueError("average at least two exports")
    models = [onnx.load(str(f / ONNX_NAME)) for f in folders]
    weights = [_initialisers(m) for m in models]
    for folder, model, own in zip(folders[1:], models[1:], weights[1:], strict=True):
        _check_same_graph(models[0], weights[0], model, own, folder / ONNX_NAME)
    merged = models[0]
    for i, tensor in enumerate(merged.graph.initializer):
        first = weights[0][tensor.name]
        if not np.issubdtype(first.dtype, np.floating):
            continue  # shapes and indices stay as they are
        mean = np.mean([w[tensor.name].astype(np.float64) for w in weights], axis=0).astype(first.dtype)
        merged.graph.initializer[i].CopyFrom(numpy_helper.from_array(mean, tensor.name))
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / ONNX_NAME
    onnx.save(merged, str(onnx_path))
    metas = [json.loads((f / META_NAME).read_text(encoding="utf-8")) for f in folders]
    meta = metas[0]
    meta["weights"] = "mean of the ONNX initialisers of " + "; ".join(
        f"{f} ({m.get('weights', '?')})" for f, m in zip(folders, metas, strict=True))
    (out / META_NAME).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    logger.info("averaged %d exports into %s", len(folders), onnx_path)
    return onnx_path


def main(argv: list[str] | None = None) -> int:
    """Command line: the export folders to average, then ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exports", type=Path, nargs="+", help="folders holding plate_reader.onnx and plate_reader.json")
    ap.add_argument("--out", type=Path, required=True, help="folder to write the averaged export to")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for folder in args.exports:
        if not (folder / ONNX_NAME).is_file() or not (folder / META_NAME).is_file():
            ap.error(f"{folder}: no {ONNX_NAME} and {META_NAME} there")
    try:
        average_exports(args.exports, args.out)
    except ExportMismatch as exc:
        ap.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
