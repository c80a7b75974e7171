"""Derive batch-capable ONNX files from the upstream exports, which are fixed to batch 1.

The transformation (:func:`make_batch_dynamic`) works on the graph with the ``onnx`` package:

1. the first dimension of the graph input (and of outputs that carry it) becomes the symbolic ``batch``;
2. ``Reshape`` nodes whose constant target shape hard-codes the batch (leading ``1``) get ``0`` ("copy the
   input's dim") instead; a ``Transpose`` that moves the batch axis inside a ``Reshape(-1, C)`` that flattens it
   (SCRFD heads) is changed to keep the batch first, giving ``batch x anchors x C`` outputs;
3. ``DynamicQuantizeLinear`` (ONNX Runtime dynamic int8 graphs) computes ONE scale and zero point over the whole
   tensor, so in a batch each image's quantisation would depend on the other images. It is rewritten into a
   per-sample quantisation (``ReduceMin/ReduceMax`` over all axes but the batch, per-axis ``QuantizeLinear``).
   Every ``ConvInteger`` consuming it gets the per-sample zero point folded out exactly in int32,
   ``conv(q - zp, w') = conv(q, w') - zp * sum(w')``, with the padding made explicit by padding the float input
   with 0.0 (which quantises exactly to ``zp``): the integer arithmetic is unchanged, batched outputs are
   bit-identical to batch-1 outputs (precision ``int8``). Precision ``fp32`` instead dequantises the weights and
   drops the activation quantisation (:func:`dequantize_dynamic`), which is faster and runs on any provider;
   precision ``int8-static`` quantises that fp32 graph again with static, calibrated activation ranges
   (:mod:`pipeline.models.static_int8`: a quantise/dequantise graph, faster in batches on CPUs with VNNI; an
   opt-in, ``engine.model_precision: int8-static``);
4. constructs the transformation cannot prove batch-safe (``Concat``/``Split``/``Slice`` on axis 0 of a
   batch-carrying tensor, an unknown consumer of a dynamic quantisation) raise :class:`DeriveError`.

The result is checked with ``onnx.checker`` and strict shape inference, then run on real images: the outputs of
one batched call must equal the per-image batch-1 outputs within ``RELATIVE_TOLERANCE`` x the output's scale
(see :func:`derive_model` for the exact checks per precision). Every derived file has a JSON sidecar (source sha256, derived sha256,
check figures) used to validate it on load; ``derive_all`` also writes ``models/derived.yaml``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import yaml

from pipeline.models_manifest import ModelFileError, load_manifest, resolve_model, sha256_file
from pipeline.settings import PROJECT_ROOT, get_settings

logger = logging.getLogger(__name__)

DERIVED_MANIFEST = PROJECT_ROOT / "models" / "derived.yaml"
DERIVED_SUFFIX = ".batch.onnx"
PRECISIONS = ("int8", "fp32", "int8-static")
_SUFFIXES = {"int8": DERIVED_SUFFIX, "fp32": ".batch.fp32.onnx", "int8-static": ".batch.int8-static.onnx"}
TRANSFORMATION_VERSION = 2
EXTERNAL_DIR = "_external"
"""Folder of the derived folder that holds the files derived from a model outside the model dir (an absolute path
or one with ``..``): each named from a sanitised form of its source path and a hash of it."""
_PLAIN_PART = re.compile(r"^[^\x00-\x1f\x7f]+$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
RELATIVE_TOLERANCE = 1e-4
SCORED = 0.01
ON_LOAD_CHECK_IMAGES = 2
BATCH_PARAM = "batch"
CHECK_VIDEO = "thai_bangkok_night_dashcam_bus.mp4"


class DeriveError(RuntimeError):
    """A model could not be made batch-capable, or the derived model failed its equivalence check."""


@dataclass
class DeriveRecord:
    """How one derived file was made (the content of its sidecar and of its ``derived.yaml`` entry)."""

    source: str
    source_sha256: str
    derived: str
    derived_sha256: str
    transformation: list[str]
    transformation_version: int
    precision: str
    tolerance: str
    max_abs_diff: float
    output_scale: float
    source_max_abs_diff: float
    source_max_abs_diff_scored: float
    check_batch: int
    check_images: str
    seconds: float
    date: str
    extra: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- graph helpers


class _Graph:
    """Small index over an ONNX graph: constants, producers, consumers and fresh names."""

    def __init__(self, model) -> None:  # noqa: ANN001
        from onnx import numpy_helper

        self.model = model
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 11)
        self.init = {i.name: i for i in self.graph.initializer}
        self.const_nodes = {n.output[0]: n for n in self.graph.node if n.op_type == "Constant"}
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in self.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self._np = numpy_helper
        self._counter = 0
        self.batched = self._batch_carrying()

    def const(self, name: str) -> np.ndarray | None:
        """The value of an initializer or Constant-node output, else ``None``."""
        if name in self.init:
            return self._np.to_array(self.init[name])
        node = self.const_nodes.get(name)
        if node is not None:
            for attr in node.attribute:
                if attr.name == "value":
                    return self._np.to_array(attr.t)
        return None

    def add_const(self, hint: str, value: np.ndarray) -> str:
        """Add an initializer with a fresh name and return the name."""
        name = self.fresh(hint)
        self.graph.initializer.append(self._np.from_array(np.asarray(value), name))
        return name

    def fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}__db{self._counter}"

    def _batch_carrying(self) -> set[str]:
        """Names of tensors computed from the graph inputs (as opposed to constants only)."""
        carrying = {i.name for i in self.graph.input if i.name not in self.init}
        for node in self.graph.node:
            if any(i in carrying for i in node.input if i):
                carrying.update(node.output)
        return carrying


def _set_batch_dim(value_info) -> bool:  # noqa: ANN001
    dims = value_info.type.tensor_type.shape.dim
    if not dims:
        return False
    if dims[0].dim_param or dims[0].dim_value == 1:
        dims[0].ClearField("dim_value")
        dims[0].dim_param = BATCH_PARAM
        return True
    return False


def _clear_shape(value_info) -> None:  # noqa: ANN001
    value_info.type.tensor_type.ClearField("shape")


def _patch_reshapes(g: _Graph, notes: list[str]) -> None:
    """Replace hard-coded batch sizes in constant Reshape targets; fix batch-moving Transpose+Reshape pairs."""
    from onnx import helper

    patched = flattened = 0
    for node in g.graph.node:
        if node.op_type != "Reshape" or node.input[0] not in g.batched:
            continue
        shape = g.const(node.input[1])
        if shape is None:
            continue  # computed at run time from Shape(): already batch-aware
        if any(a.name == "allowzero" and a.i == 1 for a in node.attribute):
            raise DeriveError(f"Reshape {node.name!r} uses allowzero=1; cannot express 'copy batch dim'")
        producer = g.producer.get(node.input[0])
        if shape.size >= 1 and shape[0] == 1:
            new = shape.copy()
            new[0] = 0
            node.input[1] = g.add_const(node.input[1] or "shape", new.astype(np.int64))
            patched += 1
        elif shape.size == 2 and shape[0] == -1 and producer is not None and producer.op_type == "Transpose":
            perm = list(helper.get_attribute_value(next(a for a in producer.attribute if a.name == "perm")))
            if perm[0] == 0:
                continue
            if len(g.consumers.get(producer.output[0], [])) != 1:
                raise DeriveError(f"Transpose {producer.name!r} output is shared; cannot move its batch axis")
            new_perm = [0] + [p for p in perm if p != 0]
            for attr in producer.attribute:
                if attr.name == "perm":
                    del attr.ints[:]
                    attr.ints.extend(new_perm)
            node.input[1] = g.add_const("shape", np.array([0, -1, int(shape[1])], dtype=np.int64))
            flattened += 1
    if patched:
        notes.append(f"Reshape: {patched} constant target shapes with a hard-coded batch of 1 set to 0 (copy)")
    if flattened:
        notes.append(
            f"Transpose+Reshape(-1,C): {flattened} heads that flattened the batch into the anchors now keep it "
            "first (outputs batch x anchors x C)"
        )


def _check_axis0_ops(g: _Graph, ranks: dict[str, int]) -> None:
    """Refuse graphs that concatenate, split or slice a batch-carrying tensor (rank >= 2) along the batch axis."""
    for node in g.graph.node:
        if not node.input or node.input[0] not in g.batched or ranks.get(node.input[0], 0) < 2:
            continue
        attrs = {a.name: a for a in node.attribute}
        axis0 = False
        if node.op_type in ("Concat", "Split", "Gather"):
            axis0 = attrs["axis"].i == 0 if "axis" in attrs else node.op_type != "Concat"
        elif node.op_type == "Slice" and len(node.input) >= 4 and node.input[3]:
            axes = g.const(node.input[3])
            axis0 = axes is None or 0 in axes.tolist()
        if axis0:
            raise DeriveError(f"{node.op_type} {node.name!r} works on the batch axis of {node.input[0]!r}")


def _reduce(g: _Graph, op: str, x: str, rank: int, out: str):  # noqa: ANN202
    from onnx import helper

    axes = list(range(1, rank))
    if g.opset >= 18:
        axes_name = g.add_const("axes", np.array(axes, dtype=np.int64))
        return helper.make_node(op, [x, axes_name], [out], keepdims=0, name=out)
    return helper.make_node(op, [x], [out], axes=axes, keepdims=0, name=out)


def _rewrite_dynamic_quantization(g: _Graph, ranks: dict[str, int], notes: list[str]) -> list:
    """Per-sample ``DynamicQuantizeLinear`` with exact zero-point folding in the consuming ``ConvInteger``s."""
    from onnx import TensorProto, helper

    new_nodes: list = []
    params: dict[str, dict[str, str]] = {}  # DQL output q -> names of per-sample scale/zp tensors
    quantized_inputs: dict[tuple[str, tuple[int, ...]], str] = {}
    rewritten_dql = rewritten_conv = 0
    for node in g.graph.node:
        if node.op_type == "DynamicQuantizeLinear" and node.input[0] in g.batched:
            x = node.input[0]
            q_out, s_out, zp_out = node.output
            rank = ranks.get(x)
            if rank is None:
                raise DeriveError(f"rank of {x!r} unknown; cannot quantise it per sample")
            for consumer in g.consumers.get(q_out, []) + g.consumers.get(zp_out, []):
                if consumer.op_type != "ConvInteger" or consumer.input[0] != q_out:
                    raise DeriveError(f"{consumer.op_type} {consumer.name!r} consumes dynamic int8 {q_out!r}")
            p = {k: g.fresh(f"{x}_{k}") for k in ("min", "max", "min0", "max0", "range", "flat0", "scale1",
                                                   "scale", "negmin", "zpdiv", "zpclip", "zpf", "zp", "zpi", "zpi4")}
            zero = g.add_const("zero", np.array(0.0, np.float32))
            one = g.add_const("one", np.array(1.0, np.float32))
            c255 = g.add_const("c255", np.array(255.0, np.float32))
            shape4 = g.add_const("shape_b111", np.array([0] + [1] * (rank - 1), np.int64))
            new_nodes += [
                _reduce(g, "ReduceMin", x, rank, p["min"]),
                _reduce(g, "ReduceMax", x, rank, p["max"]),
                helper.make_node("Min", [p["min"], zero], [p["min0"]]),
                helper.make_node("Max", [p["max"], zero], [p["max0"]]),
                helper.make_node("Sub", [p["max0"], p["min0"]], [p["range"]]),
                helper.make_node("Equal", [p["max0"], p["min0"]], [p["flat0"]]),
                helper.make_node("Div", [p["range"], c255], [p["scale1"]]),
                helper.make_node("Where", [p["flat0"], one, p["scale1"]], [p["scale"]]),
                helper.make_node("Neg", [p["min0"]], [p["negmin"]]),
                helper.make_node("Div", [p["negmin"], p["scale"]], [p["zpdiv"]]),
                helper.make_node("Clip", [p["zpdiv"], zero, c255], [p["zpclip"]]),
                helper.make_node("Round", [p["zpclip"]], [p["zpf"]]),
                helper.make_node("Cast", [p["zpf"]], [p["zp"]], to=TensorProto.UINT8),
                helper.make_node("Cast", [p["zpf"]], [p["zpi"]], to=TensorProto.INT32),
                helper.make_node("Reshape", [p["zpi"], shape4], [p["zpi4"]]),
                helper.make_node("Reshape", [p["scale"], shape4], [s_out]),
            ]
            p["x"] = x
            params[q_out] = p
            rewritten_dql += 1
            continue
        if node.op_type == "ConvInteger" and node.input[0] in params:
            new_nodes += _rewrite_conv_integer(g, node, params[node.input[0]], quantized_inputs)
            rewritten_conv += 1
            continue
        new_nodes.append(node)
    if rewritten_dql:
        notes.append(
            f"DynamicQuantizeLinear: {rewritten_dql} per-tensor dynamic quantisations made per-sample "
            "(ReduceMin/ReduceMax over non-batch axes, per-axis QuantizeLinear on axis 0)"
        )
        notes.append(
            f"ConvInteger: {rewritten_conv} convolutions fold the per-sample input zero point out exactly in int32 "
            "(conv(q, w) - zp * sum(w - w_zp)); padding made explicit with 0.0 before quantisation"
        )
    return new_nodes


def _conv_chain(g: _Graph, node) -> tuple:  # noqa: ANN001
    """``(cast, mul, scale_mul, w_float)`` of an ORT dynamic-quantised ``ConvInteger -> Cast -> Mul(scale)``."""
    casts = g.consumers.get(node.output[0], [])
    muls = g.consumers.get(casts[0].output[0], []) if len(casts) == 1 else []
    if len(casts) != 1 or casts[0].op_type != "Cast" or len(muls) != 1 or muls[0].op_type != "Mul":
        raise DeriveError(f"ConvInteger {node.name!r} is not followed by Cast -> Mul(scale); cannot dequantise")
    mul = muls[0]
    scale_node = g.producer.get(mul.input[1] if mul.input[0] == casts[0].output[0] else mul.input[0])
    w = g.const(node.input[1])
    wzp = g.const(node.input[3]) if len(node.input) > 3 and node.input[3] else np.array(0)
    w_scale = g.const(scale_node.input[1]) if scale_node is not None and scale_node.op_type == "Mul" else None
    if w is None or wzp is None or w_scale is None:
        raise DeriveError(f"ConvInteger {node.name!r}: weights, zero point or scale are not constants")
    if len(g.consumers.get(scale_node.output[0], [])) != 1:
        raise DeriveError(f"scale {scale_node.output[0]!r} of ConvInteger {node.name!r} is shared")
    shape = (-1, *([1] * (w.ndim - 1)))
    w_scale = np.asarray(w_scale, np.float32)
    w_float = (w.astype(np.float32) - np.asarray(wzp, np.float32).reshape(shape if np.ndim(wzp) else ())) * (
        w_scale.reshape(shape) if w_scale.ndim else w_scale)
    return casts[0], mul, scale_node, w_float.astype(np.float32)


def _rewrite_conv_integer(g: _Graph, node, p: dict[str, str], cache: dict) -> list:  # noqa: ANN001
    from onnx import TensorProto, helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    if auto_pad not in (b"NOTSET", "NOTSET"):
        raise DeriveError(f"ConvInteger {node.name!r} uses auto_pad={auto_pad!r}; not supported")
    w = g.const(node.input[1])
    wzp = g.const(node.input[3]) if len(node.input) > 3 and node.input[3] else np.array(0)
    if w is None or wzp is None:
        raise DeriveError(f"ConvInteger {node.name!r} has non-constant weights")
    pads = tuple(int(v) for v in attrs.get("pads", [0] * (2 * (w.ndim - 2))))
    out: list = []
    key = (p["x"], pads)
    if key not in cache:
        src = p["x"]
        if any(pads):
            half = len(pads) // 2
            full = [0, 0, *pads[:half], 0, 0, *pads[half:]]
            padded = g.fresh(f"{src}_pad")
            out.append(helper.make_node(
                "Pad", [src, g.add_const("pads", np.array(full, np.int64)), g.add_const("zero", np.float32(0))],
                [padded], mode="constant"))
            src = padded
        q = g.fresh(f"{p['x']}_q")
        out.append(helper.make_node("QuantizeLinear", [src, p["scale"], p["zp"]], [q], axis=0))
        cache[key] = q
    w_int = w.astype(np.int32) - np.asarray(wzp, dtype=np.int32).reshape(-1, *([1] * (w.ndim - 1)))
    weight_sum = w_int.reshape(w.shape[0], -1).sum(axis=1).astype(np.int32).reshape(1, -1, *([1] * (w.ndim - 2)))
    raw, corr = g.fresh(f"{node.output[0]}_raw"), g.fresh(f"{node.output[0]}_zpcorr")
    conv_attrs = {k: v for k, v in attrs.items() if k not in ("pads", "auto_pad")}
    out += [
        helper.make_node("ConvInteger", [cache[key], node.input[1], "", node.input[3]], [raw],
                         name=node.name, **conv_attrs),
        helper.make_node("Mul", [p["zpi4"], g.add_const("wsum", weight_sum)], [corr]),
        helper.make_node("Sub", [raw, corr], [node.output[0]]),
    ]
    del TensorProto
    return out


def has_dynamic_quantisation(model) -> bool:  # noqa: ANN001
    """Whether the graph uses ONNX Runtime dynamic int8 quantisation (``DynamicQuantizeLinear``)."""
    return any(n.op_type == "DynamicQuantizeLinear" for n in model.graph.node)


def dequantize_dynamic(model):  # noqa: ANN001, ANN201 (onnx.ModelProto)
    """Return ``(model, notes)``: the int8 dynamic-quantised graph with float convolutions on dequantised weights.

    ``DynamicQuantizeLinear -> ConvInteger -> Cast -> Mul(x_scale * w_scale)`` becomes ``Conv(x, (w - w_zp) *
    w_scale)``: the weights keep their int8 values, activations are no longer quantised. Runs on every execution
    provider (CUDA has no ``ConvInteger``) and is usually faster on CPUs without VNNI; outputs differ from the int8
    graph by its activation-quantisation noise (recorded by the derivation).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = _Graph(model)
    dql_input = {n.output[0]: n.input[0] for n in g.graph.node if n.op_type == "DynamicQuantizeLinear"}
    drop: set[int] = set()
    replace: dict[int, object] = {}
    for node in g.graph.node:
        if node.op_type != "ConvInteger" or node.input[0] not in dql_input:
            continue
        cast, mul, scale_node, w_float = _conv_chain(g, node)
        name = g.fresh(f"{node.input[1]}_dequantised")
        g.graph.initializer.append(numpy_helper.from_array(w_float.astype(np.float32), name))
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        replace[id(node)] = helper.make_node("Conv", [dql_input[node.input[0]], name], [mul.output[0]],
                                             name=node.name, **attrs)
        drop.update({id(cast), id(mul), id(scale_node)})
    remaining = [n for n in g.graph.node if id(n) not in drop and id(n) not in replace]
    used = {i for n in remaining for i in n.input}
    leftover = [n for n in remaining if n.op_type == "DynamicQuantizeLinear" and any(o in used for o in n.output)]
    if leftover:
        raise DeriveError(f"DynamicQuantizeLinear {leftover[0].name!r} feeds something other than ConvInteger")
    nodes = [replace.get(id(n), n) for n in g.graph.node
             if id(n) not in drop and n.op_type != "DynamicQuantizeLinear"]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for n in model.graph.node for i in n.input}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    return model, [f"dequantised: {len(replace)} DynamicQuantizeLinear+ConvInteger convolutions replaced by float "
                   "Conv on (w - w_zp) * w_scale weights (activations no longer quantised)"]


def make_batch_dynamic(model, per_sample_quantisation: bool = True):  # noqa: ANN001, ANN201 (onnx.ModelProto)
    """Return ``(model, notes)``: a batch-capable copy of a batch-1 ONNX model and what was changed.

    ``per_sample_quantisation=False`` leaves ``DynamicQuantizeLinear`` per-tensor (over the whole batch): only
    for demonstrating why the rewrite is needed (each image's outputs then depend on the rest of the batch).
    Raises :class:`DeriveError` when the graph has a batch-coupling construct this transformation cannot fix.
    """
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {
        vi.name: len(vi.type.tensor_type.shape.dim)
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
        if vi.type.tensor_type.HasField("shape")
    }
    notes: list[str] = []
    g = _Graph(model)
    real_inputs = [i for i in model.graph.input if i.name not in g.init]
    for value_info in real_inputs:
        if not _set_batch_dim(value_info):
            raise DeriveError(f"input {value_info.name!r} has no batch dimension of 1 to make symbolic")
    notes.append(f"input batch dim made symbolic ('{BATCH_PARAM}')")
    _check_axis0_ops(g, ranks)
    _patch_reshapes(g, notes)
    if per_sample_quantisation:
        nodes = _rewrite_dynamic_quantization(g, ranks, notes)
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    del model.graph.value_info[:]
    for output in model.graph.output:
        _clear_shape(output)
    for meta in model.metadata_props:
        if meta.key == "batch":
            meta.value = "-1"
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if not dims or dims[0].dim_value:
            shape = [d.dim_param or d.dim_value for d in dims]
            raise DeriveError(f"output {output.name!r} does not carry the batch first after derivation ({shape})")
        dims[0].dim_param = BATCH_PARAM
    return model, notes


# --------------------------------------------------------------------------------------------- checking


def check_images(n: int = 4, videos_dir: Path | None = None) -> tuple[list[np.ndarray], str]:
    """Real images for equivalence checks: frames of the sample dashcam clip, else deterministic synthetic ones."""
    import cv2

    from pipeline.models.sample_frames import evenly_spaced_frames

    video = Path(videos_dir or get_settings().videos_dir) / CHECK_VIDEO
    frames = evenly_spaced_frames(video, n, assumed_total=100) if video.exists() else []
    if len(frames) == n:
        return frames, f"{n} frames of {video.name}"
    logger.warning("sample video %s not readable; checking derived models on synthetic images", video)
    rng = np.random.default_rng(20241120)
    base = cv2.resize(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (640, 480), interpolation=cv2.INTER_CUBIC)
    return [np.roll(base, 37 * k, axis=1) for k in range(n)], f"{n} synthetic smooth-noise images (seed 20241120)"


def _input_blob(session, images: list[np.ndarray], normalisation: tuple[float, float]) -> np.ndarray:  # noqa: ANN001
    from pipeline.models.onnx_utils import letterbox, to_blob

    shape = session.get_inputs()[0].shape
    h = shape[2] if isinstance(shape[2], int) else 640
    w = shape[3] if isinstance(shape[3], int) else h
    fitted = [letterbox(im, max(h, w))[0][:h, :w] for im in images]
    return to_blob(fitted, mean=normalisation[0], std=normalisation[1])


def _normalisation(source: Path, session) -> tuple[float, float]:  # noqa: ANN001
    meta = session.get_modelmeta().custom_metadata_map
    if "stride" in meta:  # Ultralytics export: RGB / 255
        return 0.0, 255.0
    if len(session.get_outputs()) in (6, 9):  # SCRFD
        return 127.5, 128.0
    return 127.5, 127.5


@dataclass(frozen=True)
class Comparison:
    """Batched outputs of a candidate model vs a reference model run image by image."""

    max_abs_diff: float
    max_abs_diff_scored: float
    output_scale: float


def _scored_mask(ref: np.ndarray, session) -> np.ndarray | None:  # noqa: ANN001
    """For an Ultralytics head output ``(4 + nc, anchors)``: anchors whose best class score >= ``SCORED``."""
    if "stride" not in session.get_modelmeta().custom_metadata_map or ref.ndim != 3 or ref.shape[1] <= 4:
        return None
    return ref[0, 4:].max(axis=0) >= SCORED


def compare_batched(reference: Path, candidate: Path, images: list[np.ndarray]) -> Comparison:
    """Run ``reference`` image by image and ``candidate`` on all images in ONE call; compare every output.

    ``max_abs_diff_scored`` restricts Ultralytics detector outputs to anchors the reference scores at least
    ``SCORED`` (the rest can never become a detection at the engine's thresholds); elsewhere it equals
    ``max_abs_diff``. ``output_scale`` is the largest ``|reference output|``.
    """
    return compare_many([reference], candidate, images)[0]


def compare_many(references: list[Path], candidate: Path, images: list[np.ndarray]) -> list[Comparison]:
    """:func:`compare_batched` against several references with a single batched run of ``candidate``."""
    from pipeline.models.onnx_utils import create_session

    cand_sess = create_session(candidate, "cpu")
    blob = _input_blob(cand_sess, images, _normalisation(candidate, cand_sess))
    batched = cand_sess.run(None, {cand_sess.get_inputs()[0].name: blob})
    results = []
    for reference in references:
        ref_sess = cand_sess if Path(reference) == Path(candidate) else create_session(reference, "cpu")
        name = ref_sess.get_inputs()[0].name
        max_diff = max_scored = scale = 0.0
        for i in range(len(blob)):
            single = ref_sess.run(None, {name: blob[i : i + 1]})
            for ref, out in zip(single, batched, strict=True):
                diff = np.abs(out[i].reshape(ref.shape).astype(np.float64) - ref)
                max_diff = max(max_diff, float(diff.max()))
                mask = _scored_mask(ref, ref_sess)
                scored = diff if mask is None else diff[..., mask]
                max_scored = max(max_scored, float(scored.max()) if scored.size else 0.0)
                scale = max(scale, float(np.abs(ref).max()))
        results.append(Comparison(max_diff, max_scored, scale))
    return results


# --------------------------------------------------------------------------------------------- files


def derived_path(relative_path: str, out_dir: Path, precision: str = "int8") -> Path:
    """Where the derived file of ``relative_path`` (relative to the model dir) lives under ``out_dir``.

    ``precision``: ``int8`` (the upstream arithmetic, bit-exact) or ``fp32`` (dequantised weights, float
    activations); see :func:`derive_model`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    rel = _derived_relative(relative_path)
    return Path(out_dir) / rel.parent / (rel.stem + _SUFFIXES[precision])


def _derived_relative(relative_path: str) -> PurePosixPath:
    """The source path the derived files of ``relative_path`` are named after, relative to the derived folder:
    the path itself when it stays under the model dir (``yolo/yolov8n_int8.onnx``); for any other source (an
    absolute path, one with ``..``, a control character, one named like :data:`EXTERNAL_DIR`), one sanitised
    name in :data:`EXTERNAL_DIR` with a hash of the whole path (two sources never share a derived file). Never
    leaves the derived folder, wherever the source is."""
    path = PurePosixPath(relative_path)
    parts = path.parts
    if (parts and not path.is_absolute() and parts[0] != EXTERNAL_DIR
            and all(part not in (".", "..") and _PLAIN_PART.match(part) for part in parts)):
        return path
    digest = hashlib.sha256(relative_path.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    stem = _UNSAFE_CHARS.sub("_", relative_path.removesuffix(".onnx")).strip("._-")[-80:].lstrip("._-")
    return PurePosixPath(EXTERNAL_DIR) / f"{stem or 'model'}-{digest}.onnx"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def derive_model(source: Path, relative_path: str, out_dir: Path,
                 images: list[np.ndarray] | None = None, images_note: str = "", precision: str = "int8") -> DeriveRecord:
    """Derive, check and write the batch-capable version of one ONNX file; returns its record.

    Variants of int8 dynamic-quantised graphs (float graphs only have ``int8``, i.e. unchanged arithmetic):

    - ``int8``: per-sample dynamic quantisation, integer ``ConvInteger`` (the upstream arithmetic, bit-exact);
    - ``fp32``: :func:`dequantize_dynamic` first (float activations; about 1.8x faster on this CPU);
    - ``int8-static``: the ``fp32`` graph quantised statically, calibrated on frames of the sample clips
      (:func:`pipeline.models.static_int8.quantize_detector`; Ultralytics detectors only).

    Checks on ``images`` (one batched call vs batch 1): the file against itself at batch 1 and, for ``int8``,
    against the upstream file, both within ``RELATIVE_TOLERANCE`` x output scale on every output. For ``fp32``
    and ``int8-static`` the deviation from the upstream file is recorded next to the upstream model's own noise
    floor (its output change when the input is scaled by 1 + 1e-6). Nothing is left at the target path unless the
    checks pass.
    """
    import onnx

    started = time.perf_counter()
    target = derived_path(relative_path, out_dir, precision)
    target.parent.mkdir(parents=True, exist_ok=True)
    source_sha = sha256_file(source)
    base, notes = onnx.load(str(source)), []
    if precision in ("fp32", "int8-static"):
        base, notes = dequantize_dynamic(base)
    model, batch_notes = make_batch_dynamic(base)
    notes += batch_notes
    model.metadata_props.add(key="derived_from", value=f"{relative_path} sha256:{source_sha}")
    if images is None:
        images, images_note = check_images()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".part-", suffix=".onnx")
    os.close(fd)
    tmp = Path(tmp_name)
    extra: dict[str, float] = {}
    try:
        onnx.save(model, str(tmp))
        if precision == "int8-static":
            notes += _quantize_static(tmp)
        # batching must change nothing (vs the same file at batch 1); fidelity to the upstream file at batch 1
        own, versus = compare_many([tmp, source], tmp, images)
        limit = RELATIVE_TOLERANCE * max(own.output_scale, 1e-6)
        if not own.max_abs_diff <= limit:
            raise DeriveError(
                f"{relative_path}: batched outputs differ from the same model's batch-1 outputs by "
                f"{own.max_abs_diff:.3g} (limit {limit:.3g} = {RELATIVE_TOLERANCE:g} x output scale)"
            )
        if precision == "int8" and not versus.max_abs_diff <= RELATIVE_TOLERANCE * max(versus.output_scale, 1e-6):
            raise DeriveError(
                f"{relative_path}: batched outputs differ from the upstream batch-1 outputs by "
                f"{versus.max_abs_diff:.3g} (limit {RELATIVE_TOLERANCE:g} x output scale {versus.output_scale:.3g})"
            )
        if precision != "int8":
            floor = noise_floor(source, images)
            extra["upstream_noise_floor_max_abs_diff"] = floor.max_abs_diff
            extra["upstream_noise_floor_max_abs_diff_scored"] = floor.max_abs_diff_scored
        record = DeriveRecord(
            source=relative_path, source_sha256=source_sha, derived=str(target.relative_to(out_dir)),
            derived_sha256=sha256_file(tmp), transformation=notes, transformation_version=TRANSFORMATION_VERSION,
            precision=precision if _source_is_dynamic_int8(source) else "unchanged (float graph)",
            tolerance=_tolerance_text(precision),
            max_abs_diff=own.max_abs_diff, output_scale=own.output_scale,
            source_max_abs_diff=versus.max_abs_diff, source_max_abs_diff_scored=versus.max_abs_diff_scored,
            check_batch=len(images), check_images=images_note,
            seconds=round(time.perf_counter() - started, 2), date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            extra=extra,
        )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    _sidecar(target).write_text(json.dumps(asdict(record), indent=2), encoding="utf-8")
    logger.info("derived %s -> %s in %.1f s (batched vs batch-1 max abs diff %.3g; vs upstream %.3g, scored anchors "
                "%.3g; output scale %.3g)", relative_path, target, record.seconds, record.max_abs_diff,
                record.source_max_abs_diff, record.source_max_abs_diff_scored, record.output_scale)
    return record


def _quantize_static(path: Path) -> list[str]:
    """Replace the batch-capable fp32 graph at ``path`` by its static int8 version; returns the notes."""
    from pipeline.models.static_int8 import StaticQuantisationError, calibration_images, quantize_detector

    fp32 = path.with_name(path.stem + ".fp32.onnx")
    path.replace(fp32)
    try:
        return quantize_detector(fp32, path, calibration_images(get_settings().videos_dir))
    except StaticQuantisationError as exc:
        raise DeriveError(f"{path.name}: {exc}") from exc
    finally:
        fp32.unlink(missing_ok=True)


def _tolerance_text(precision: str) -> str:
    batch = (f"batched == batch-1 of the same file: max abs diff <= {RELATIVE_TOLERANCE:g} x max |output| "
             "(all outputs, all anchors)")
    if precision == "int8":
        return batch + "; vs upstream batch-1: the same limit"
    how = "quantised with static ranges" if precision == "int8-static" else "no longer quantised"
    return (batch + f"; vs upstream batch-1: recorded, not limited (activations {how}), next to the "
            "upstream model's own change for input x (1 + 1e-6)")


def noise_floor(source: Path, images: list[np.ndarray], epsilon: float = 1e-6) -> Comparison:
    """How much the upstream model's outputs move when its input is scaled by ``1 + epsilon`` (batch 1)."""
    from pipeline.models.onnx_utils import create_session

    session = create_session(source, "cpu")
    blob = _input_blob(session, images, _normalisation(source, session))
    name = session.get_inputs()[0].name
    max_diff = max_scored = scale = 0.0
    for i in range(len(blob)):
        ref = session.run(None, {name: blob[i : i + 1]})
        moved = session.run(None, {name: blob[i : i + 1] * np.float32(1.0 + epsilon)})
        for a, b in zip(ref, moved, strict=True):
            diff = np.abs(b.astype(np.float64) - a)
            mask = _scored_mask(a, session)
            scored = diff if mask is None else diff[..., mask]
            max_diff = max(max_diff, float(diff.max()))
            max_scored = max(max_scored, float(scored.max()) if scored.size else 0.0)
            scale = max(scale, float(np.abs(a).max()))
    return Comparison(max_diff, max_scored, scale)


def valid_derived(relative_path: str, source: Path, out_dir: Path, precision: str = "int8") -> Path | None:
    """Return the derived file of ``relative_path`` when it exists and its sidecar matches source and content."""
    target = derived_path(relative_path, out_dir, precision)
    sidecar = _sidecar(target)
    if not target.exists() or not sidecar.exists():
        return None
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("transformation_version") != TRANSFORMATION_VERSION:
        return None
    if record.get("source_sha256") != sha256_file(source) or record.get("derived_sha256") != sha256_file(target):
        logger.warning("derived model %s does not match its record; deriving it again", target)
        return None
    return target


def batch_model_path(relative_path: str, model_dir: Path | None = None, out_dir: Path | None = None,
                     precision: str = "int8") -> Path:
    """The file a backend should load for ``relative_path``: the derived batch-capable file when valid.

    ``precision="fp32"`` asks for the dequantised variant of an int8 dynamic-quantised model, ``"int8-static"``
    for its statically quantised one (float graphs have only one variant).

    Resolves (and sha256-checks) the upstream file first, so a missing or corrupt file raises
    :class:`~pipeline.models_manifest.ModelFileError`. Derives on first use (seconds; a static int8 model
    calibrates for up to a minute) with a log line; if the derivation fails, warns and returns the upstream file
    (batches then run one image at a time), for ``int8-static`` its fp32 variant.
    """
    settings = get_settings()
    model_dir = Path(model_dir or settings.model_dir)
    out_dir = Path(out_dir or settings.derived_model_dir)
    source = resolve_model(relative_path, model_dir)
    if source.suffix != ".onnx" or _is_batch_capable(source):
        return source
    if precision != "int8" and not _source_is_dynamic_int8(source):
        precision = "int8"  # float graphs have a single variant
    found = valid_derived(relative_path, source, out_dir, precision)
    if found is not None:
        return found
    logger.info("no valid batch-capable %s version of %s yet; deriving it into %s", precision, relative_path, out_dir)
    try:
        derive_model(source, relative_path, out_dir, *check_images(ON_LOAD_CHECK_IMAGES), precision=precision)
    except Exception as exc:  # noqa: BLE001 (any failure falls back to a working file)
        if precision == "int8-static":
            logger.warning("could not make a static int8 %s (%s); using its fp32 variant", relative_path, exc)
            return batch_model_path(relative_path, model_dir, out_dir, "fp32")
        logger.warning("could not derive a batch-capable %s (%s); using the batch-1 file, one image per call",
                       relative_path, exc)
        return source
    return derived_path(relative_path, out_dir, precision)


def _source_is_dynamic_int8(path: Path) -> bool:
    import onnx

    return has_dynamic_quantisation(onnx.load(str(path), load_external_data=False))


def _is_batch_capable(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in model.graph.initializer}
    dims = [i.type.tensor_type.shape.dim for i in model.graph.input if i.name not in init]
    return bool(dims) and all(d and not d[0].dim_value for d in dims)


def derive_all(model_dir: Path, out_dir: Path, manifest_path: Path = DERIVED_MANIFEST,
               relative_paths: Iterable[str] | None = None, check_count: int = 4,
               record_naive: bool = True, precisions: tuple[str, ...] = PRECISIONS) -> list[Path]:
    """Derive batch-capable versions of every ONNX model in the manifest; record them in ``derived.yaml``.

    Each is checked on ``check_count`` real frames; int8 dynamic-quantised models also get their dequantised
    ``fp32`` variant when ``precisions`` includes it; ``record_naive`` also records how far batched outputs would
    drift if the dynamic quantisation were left per-tensor. Optional files that are absent are skipped; a
    missing or corrupt required file raises ``ModelFileError``.
    """
    images, note = check_images(check_count)
    records: list[DeriveRecord] = []
    paths: list[Path] = []
    entries = {e.path: e for e in load_manifest()}
    for rel in relative_paths or [p for p in entries if p.endswith(".onnx")]:
        try:
            source = resolve_model(rel, model_dir)
        except ModelFileError:
            if rel in entries and entries[rel].optional:
                logger.info("optional model %s absent; not derived", rel)
                continue
            raise
        if _is_batch_capable(source):
            logger.info("%s already has a symbolic batch; nothing to derive", rel)
            continue
        record = derive_model(source, rel, Path(out_dir), images, note)
        naive = naive_batch_diff(source, Path(out_dir), images) if record_naive else None
        if naive is not None:
            record.extra["max_abs_diff_with_per_tensor_quantisation_kept"] = naive
        records.append(record)
        paths.append(Path(out_dir) / record.derived)
        for precision in precisions:
            if precision != "int8" and _source_is_dynamic_int8(source):
                record = derive_model(source, rel, Path(out_dir), images, note, precision=precision)
                records.append(record)
                paths.append(Path(out_dir) / record.derived)
    Path(manifest_path).parent.mkdir(parents=True, exist_ok=True)
    _write_manifest(manifest_path, records, Path(out_dir))
    return paths


def naive_batch_diff(source: Path, out_dir: Path, images: list[np.ndarray]) -> float | None:
    """Max abs diff of batched vs batch-1 outputs when only the shapes are patched (dynamic quantisation kept
    per-tensor); ``None`` for graphs without ``DynamicQuantizeLinear``. Recorded to show what the rewrite fixes."""
    import onnx

    model = onnx.load(str(source))
    if not any(n.op_type == "DynamicQuantizeLinear" for n in model.graph.node):
        return None
    naive, _ = make_batch_dynamic(model, per_sample_quantisation=False)
    fd, tmp_name = tempfile.mkstemp(dir=out_dir, prefix=".naive-", suffix=".onnx")
    os.close(fd)
    try:
        onnx.save(naive, tmp_name)
        return compare_batched(source, Path(tmp_name), images).max_abs_diff
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def _write_manifest(path: Path, records: list[DeriveRecord], out_dir: Path) -> None:
    header = (
        "# Derived model files: batch-capable versions of the upstream batch-1 ONNX exports.\n"
        "# Written by `python -m pipeline models derive` (pipeline/models/derive.py); the files themselves live in\n"
        "# CCTV_DERIVED_MODEL_DIR (default var/models, git-ignored). Each entry says how the file was made and the\n"
        "# equivalence check it passed: one batched call vs the source model run image by image.\n"
    )
    shown = out_dir.resolve()
    shown_dir = str(shown.relative_to(PROJECT_ROOT)) if shown.is_relative_to(PROJECT_ROOT) else str(out_dir)
    body = {"derived_dir": shown_dir, "files": [asdict(r) for r in records]}
    path.write_text(header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
