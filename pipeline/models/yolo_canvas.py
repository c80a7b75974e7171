"""Rectangular input canvases for Ultralytics YOLO ONNX exports (the ``rect`` letterbox of Ultralytics' predictor).

A static Ultralytics export takes a square ``size x size`` input. A 16:9 camera frame letterboxed into 640x640 fills
only 640x360 of it: 44 % of the network's work is spent on grey padding. The network is convolutional except for its
detection head, whose anchor grid (the ``(1, 2, A)`` anchor-point and ``(1, A)`` stride constants of the DFL box
decoding, with ``A = (size/8)^2 + (size/16)^2 + (size/32)^2``) and a few ``Reshape`` target shapes are baked in for
the square. :func:`rewrite_for_canvas` rewrites exactly those constants for an ``h x w`` canvas (multiples of the
largest stride), so that the same weights run on the smallest canvas that holds the fitted frame: 384x640 for 16:9,
480x640 for 4:3. Ultralytics itself letterboxes PyTorch inputs this way (``auto=True``).

The rewrite only touches constants it recognises by value (the square's anchor points and strides) and refuses a
graph that does not hold them (:class:`CanvasRewriteError`); the caller then keeps the square input. The result is
checked by ``onnx.checker`` and by the tests on real footage (the same boxes as the square input, see
``tests/pipeline/models/test_yolo_canvas.py``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from pipeline.models.onnx_utils import fitted_size

logger = logging.getLogger(__name__)

STRIDES = (8, 16, 32)


class CanvasRewriteError(ValueError):
    """The ONNX graph is not an Ultralytics detection head this module knows how to resize."""


def canvas_for(image_hw: tuple[int, int], size: int, stride: int = STRIDES[-1],
               fit: int | None = None, sides: tuple[int, ...] | None = None) -> tuple[int, int]:
    """The smallest ``(h, w)`` canvas, in multiples of ``stride`` and at most ``size x size``, holding the image
    fitted to ``fit`` (default ``size``; a smaller ``fit`` leaves a small image at its own size). With ``sides``
    each side is the smallest of those (then ``size``) that holds the image: a few canvases for images of every
    shape."""
    nh, nw = fitted_size(image_hw, fit or size)
    if sides:
        return _side_from(nh, sides, size), _side_from(nw, sides, size)
    return min(size, math.ceil(nh / stride) * stride), min(size, math.ceil(nw / stride) * stride)


def _side_from(length: int, sides: tuple[int, ...], size: int) -> int:
    """The smallest of ``sides`` holding ``length`` pixels, else ``size``."""
    return min((s for s in sides if s >= length), default=size)


def anchor_grid(h: int, w: int, strides: tuple[int, ...] = STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Ultralytics' anchor points ``(1, 2, A)`` (cell centres in grid units, x then y) and strides ``(1, A)``
    for an ``h x w`` input, level by level, row-major."""
    points, steps = [], []
    for s in strides:
        gy, gx = np.meshgrid(np.arange(h // s) + 0.5, np.arange(w // s) + 0.5, indexing="ij")
        points.append(np.stack([gx.ravel(), gy.ravel()]))
        steps.append(np.full(gx.size, s))
    return np.concatenate(points, 1)[None].astype(np.float32), np.concatenate(steps)[None].astype(np.float32)


def rewrite_for_canvas(model, h: int, w: int):  # noqa: ANN001, ANN201 (onnx.ModelProto)
    """A copy of ``model`` (an Ultralytics YOLO ONNX graph with a square static input) that takes ``h x w``.

    Raises :class:`CanvasRewriteError` when the input is not square and static, a size is not a multiple of the
    largest stride or the head's anchor constants are not found.
    """
    import onnx
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not dims[2].dim_value or dims[2].dim_value != dims[3].dim_value:
        raise CanvasRewriteError("the input is not a static square NCHW image")
    size = dims[2].dim_value
    if h % STRIDES[-1] or w % STRIDES[-1] or not (0 < h <= size and 0 < w <= size):
        raise CanvasRewriteError(f"canvas {h}x{w} is not a multiple of {STRIDES[-1]} within {size}x{size}")
    square_points, square_steps = anchor_grid(size, size)
    points, steps = anchor_grid(h, w)
    anchors_square, anchors = square_points.shape[2], points.shape[2]
    replaced = {"points": 0, "strides": 0, "shapes": 0}
    for init in graph.initializer:
        value = numpy_helper.to_array(init)
        if value.shape == square_points.shape and np.array_equal(value, square_points):
            new, kind = points, "points"
        elif value.shape == square_steps.shape and np.array_equal(value, square_steps):
            new, kind = steps, "strides"
        elif value.dtype == np.int64 and value.ndim == 1 and anchors_square in value:
            new, kind = np.where(value == anchors_square, anchors, value), "shapes"
        else:
            continue
        init.CopyFrom(numpy_helper.from_array(new.astype(value.dtype), init.name))
        replaced[kind] += 1
    if not replaced["points"] or not replaced["strides"]:
        raise CanvasRewriteError(f"no Ultralytics anchor grid for {size}x{size} in the graph (found {replaced})")
    if any(node.op_type == "Constant" for node in graph.node):
        _rewrite_constant_nodes(graph, anchors_square, anchors, replaced)
    dims[2].dim_value, dims[3].dim_value = h, w
    for output in graph.output:
        for dim in output.type.tensor_type.shape.dim:
            if dim.dim_value == anchors_square:
                dim.dim_value = anchors
    del graph.value_info[:]  # stale inferred shapes of the square input
    onnx.checker.check_model(out)
    logger.debug("YOLO head rewritten for a %dx%d canvas: %s", h, w, replaced)
    return out


def _rewrite_constant_nodes(graph, anchors_square: int, anchors: int, replaced: dict[str, int]) -> None:  # noqa: ANN001
    """Reshape targets held in ``Constant`` nodes instead of initializers (exports without constant folding)."""
    from onnx import helper, numpy_helper

    for node in graph.node:
        if node.op_type != "Constant" or not node.attribute or not node.attribute[0].HasField("t"):
            continue
        value = numpy_helper.to_array(node.attribute[0].t)
        if value.dtype == np.int64 and value.ndim == 1 and anchors_square in value:
            tensor = numpy_helper.from_array(np.where(value == anchors_square, anchors, value), node.output[0])
            node.attribute[0].CopyFrom(helper.make_attribute("value", tensor))
            replaced["shapes"] += 1


def write_canvas_model(source: Path, h: int, w: int, folder: Path) -> Path:
    """Write ``source`` rewritten for an ``h x w`` canvas into ``folder`` and return the file's path."""
    import onnx

    target = Path(folder) / f"{Path(source).stem}.canvas{h}x{w}.onnx"
    onnx.save(rewrite_for_canvas(onnx.load(str(source)), h, w), str(target))
    return target
