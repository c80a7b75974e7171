"""Static int8 quantisation of the Ultralytics detectors (``engine.model_precision: int8-static``).

The upstream detectors are dynamic int8 graphs (``DynamicQuantizeLinear`` + ``ConvInteger``): every convolution
measures its input's range at run time, which ONNX Runtime executes more slowly than float convolutions, so the
engine runs their dequantised ``fp32`` derivative. A *static* int8 graph fixes each activation's range once, from
calibration images: a quantise/dequantise (QDQ) graph, int8 weights per output channel, uint8 activations, which
ONNX Runtime fuses into ``QLinearConv`` and OpenVINO runs as int8 convolutions (VNNI where the CPU has it).

:func:`quantize_detector` makes it from the batch-capable fp32 derivative with ONNX Runtime's quantiser:

- **calibration**: :func:`calibration_images`, evenly spaced frames of every clip in the videos folder, each
  whole and as a half-side tile (the plate detector sees vehicle crops and tiles as well as whole frames),
  letterboxed to the model's input as the detector does; activation ranges at the 99.999th percentile of their
  histogram (``MinMax`` ranges, stretched by rare outliers, lost two of 149 OpenALPR US plates in the cascade);
- **what stays float**: the detection head past its 3x3 convolutions (:func:`head_exclusions`: the box and class
  output convolutions, the DFL box decoding and the anchor grid), so that box coordinates keep float precision and
  the anchor grid can still be rewritten for other canvases (:mod:`pipeline.models.yolo_canvas`);
- **batch safety**: static ranges do not depend on the batch, so batched outputs equal batch-1 outputs (checked by
  the derivation like every derived file).

Measured on a 2-core AMD EPYC (Zen 4, AVX-512 VNNI), 2026-12-03: a 320 px plate window in 8-9 ms at batch 4-8
against 13-14 ms in fp32 (both runtimes), no faster at batch 1; the engine a quarter less CPU per frame on the
footage; but the boxes move by a few pixels and answers that hang on them move too (one Thai scene photo of 11, one
motorcycle plate of 107, a few extra unsure reads on the footage), so ``auto`` stays fp32 (README, "Model
precision"; :func:`pipeline.models.registry.resolve_precision`).
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import numpy as np

from pipeline.models.onnx_utils import letterbox
from pipeline.models.sample_frames import evenly_spaced_frames

logger = logging.getLogger(__name__)

CALIBRATION_FRAMES_PER_VIDEO = 12
"""Evenly spaced frames taken from each clip of the videos folder (each used whole and as a tile)."""
MIN_CALIBRATION_IMAGES = 8
"""Fewer calibration images than this (no videos folder, unreadable clips) and no static model is made."""
CALIBRATION_PERCENTILE = 99.999
"""Activation ranges: this percentile of each activation's absolute values over the calibration images."""
TILE_SEED = 20261203


class StaticQuantisationError(RuntimeError):
    """No static int8 model could be made (no calibration images, an unknown detection head)."""


def calibration_images(videos_dir: Path, per_video: int = CALIBRATION_FRAMES_PER_VIDEO) -> list[np.ndarray]:
    """Frames of every ``*.mp4`` in ``videos_dir`` (sorted, ``per_video`` evenly spaced each), each followed by a
    square tile of half its shorter side at a seeded random place; raises :class:`StaticQuantisationError` when
    fewer than :data:`MIN_CALIBRATION_IMAGES` are read."""
    rng = np.random.default_rng(TILE_SEED)
    images: list[np.ndarray] = []
    for video in sorted(Path(videos_dir).glob("*.mp4")):
        for frame in evenly_spaced_frames(video, per_video):
            images += [frame, _tile(frame, rng)]
    if len(images) < MIN_CALIBRATION_IMAGES:
        raise StaticQuantisationError(
            f"only {len(images)} calibration images from the clips in {videos_dir} (need {MIN_CALIBRATION_IMAGES}); "
            "a static int8 model is calibrated on real frames only")
    return images


def _tile(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = frame.shape[:2]
    side = min(h, w) // 2
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return frame[y:y + side, x:x + side]


def head_exclusions(model) -> list[str]:  # noqa: ANN001 (onnx.ModelProto)
    """Names of the nodes kept in float: every node of the Ultralytics detection head (the module holding the
    ``dfl`` box decoding) except its two 3x3 convolution blocks per branch (``cv2.i.0/1``, ``cv3.i.0/1``)."""
    dfl = next((n.name for n in model.graph.node if "/dfl/" in n.name), None)
    if dfl is None:
        raise StaticQuantisationError("no Ultralytics detection head (a '/dfl/' node) in the graph")
    head = dfl.split("/dfl/")[0] + "/"
    quantised = re.compile(re.escape(head) + r"cv[23]\.\d+/cv[23]\.\d+\.[01]/")
    return [n.name for n in model.graph.node if n.name.startswith(head) and not quantised.match(n.name)]


class _Calibration:
    """ONNX Runtime ``CalibrationDataReader`` over images letterboxed to ``size`` (RGB / 255, as Ultralytics)."""

    def __init__(self, images: list[np.ndarray], input_name: str, size: int) -> None:
        self._images = iter(images)
        self._name = input_name
        self._size = size

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._images, None)
        if image is None:
            return None
        boxed = letterbox(image, self._size)[0][: self._size, : self._size]
        blob = boxed[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        return {self._name: np.ascontiguousarray(blob)}


def quantize_detector(fp32_path: Path, out_path: Path, images: list[np.ndarray]) -> list[str]:
    """Write the static int8 version of the batch-capable fp32 Ultralytics detector ``fp32_path`` to ``out_path``
    (calibrated on ``images``); returns notes on what was done."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = onnx.load(str(fp32_path))
    name = source.graph.input[0].name
    dims = source.graph.input[0].type.tensor_type.shape.dim
    size = int(dims[2].dim_value or 640)
    logger.info("static int8: calibrating activation ranges on %d images (a minute or two on 2 cores)", len(images))
    with tempfile.TemporaryDirectory(dir=Path(out_path).parent, prefix=".static-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        excluded = head_exclusions(onnx.load(str(prepared)))
        quantize_static(str(prepared), str(out_path), _Calibration(images, name, size),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                        calibrate_method=CalibrationMethod.Percentile,
                        extra_options={"CalibPercentile": CALIBRATION_PERCENTILE})
    quantised = onnx.load(str(out_path))
    produced = {o: n.op_type for n in quantised.graph.node for o in n.output}
    convs = [n for n in quantised.graph.node if n.op_type == "Conv"]
    n_int8 = sum(produced.get(n.input[1]) == "DequantizeLinear" for n in convs)
    n_float = len(convs) - n_int8
    logger.info("static int8: %d int8 convolutions, %d kept float, %d calibration images", n_int8, n_float,
                len(images))
    return [f"static int8 (QDQ): {n_int8} convolutions on int8 weights per channel and uint8 activations with "
            f"ranges at the {CALIBRATION_PERCENTILE:g}th percentile over {len(images)} calibration images: frames of "
            f"the sample clips, whole and as tiles); {n_float} convolutions and the rest of the detection head "
            f"({len(excluded)} nodes) kept float"]
