"""What onnx2torch needs beyond its own converters to run the engine's ONNX models well (imported by
:mod:`pipeline.models.torch_runtime` only when it converts a model: torch and onnx2torch are optional).

- ``Reshape`` with a constant target shape (every reshape of the YOLO exports, opset 19/20 among them, which
  onnx2torch 1.5 does not know) becomes a module holding the shape as Python ints: onnx2torch's own reshape compares
  the shape tensor on the device, one GPU-to-CPU wait per reshape (71 in the vehicle detector).
- ``Split`` (opset 13 and 18) with constant sizes keeps them as Python ints, for the same reason; opset 18's
  ``num_outputs`` splits into chunks of ``ceil(dim / n)`` as ONNX says.
- ``Resize`` of opset 19 is opset 13's when it uses none of 19's additions and a mode PyTorch rounds as ONNX does.
- ``GRU`` (the plate reader's; onnx2torch has none) becomes ``torch.nn.GRU`` with the gates reordered (ONNX z, r, h;
  PyTorch r, z, n), for ``linear_before_reset=1`` (PyTorch's formula), forward or bidirectional, no
  ``sequence_lens``, both outputs used.

Anything else raises ``NotImplementedError`` at conversion, and the model runs on ONNX Runtime instead.
"""

from __future__ import annotations

import threading
from typing import Any

import torch
from onnx2torch.node_converters import registry
from onnx2torch.node_converters.split import OnnxSplit
from onnx2torch.utils.common import OnnxMapping, OperationConverterResult, get_const_value

_LOCK = threading.Lock()
_ORIGINAL: dict[str, Any] = {}  # onnx2torch's own converters, taken before ours replace them


class ConstantReshape(torch.nn.Module):
    """``Reshape`` to a shape known when the model was converted (0 copies the input's dimension)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` reshaped."""
        return x.reshape([x.shape[i] if d == 0 else d for i, d in enumerate(self.shape)])


class CeilSplit(torch.nn.Module):
    """``Split`` into ``n`` chunks of ``ceil(dim / n)``, the last smaller (opset 18's ``num_outputs``)."""

    def __init__(self, n: int, axis: int) -> None:
        super().__init__()
        self.n, self.axis = n, axis

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The chunks of ``x``."""
        return torch.split(x, -(-x.shape[self.axis] // self.n), dim=self.axis)


def _torch_gate_order(t: torch.Tensor, hidden: int) -> torch.Tensor:
    """ONNX's GRU gate blocks (z, r, h) in PyTorch's order (r, z, n)."""
    z, r, h = t.split(hidden, dim=0)
    return torch.cat([r, z, h])


class OnnxGru(torch.nn.Module):
    """ONNX ``GRU`` as ``torch.nn.GRU``: outputs ``Y`` ``[seq, directions, batch, hidden]`` and ``Y_h``."""

    def __init__(self, w: torch.Tensor, r: torch.Tensor, b: torch.Tensor | None, hidden: int) -> None:
        super().__init__()
        self.directions, self.hidden = int(w.shape[0]), hidden
        self.gru = torch.nn.GRU(int(w.shape[2]), hidden, bidirectional=self.directions == 2)
        with torch.no_grad():
            for d in range(self.directions):
                suffix = "_reverse" if d else ""
                bias = b[d] if b is not None else torch.zeros(6 * hidden)
                for name, value in (("weight_ih", w[d]), ("weight_hh", r[d]), ("bias_ih", bias[:3 * hidden]),
                                    ("bias_hh", bias[3 * hidden:])):
                    getattr(self.gru, f"{name}_l0{suffix}").copy_(_torch_gate_order(value, hidden))

    def forward(self, x: torch.Tensor, initial_h: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """``Y`` and ``Y_h`` as ONNX lays them out."""
        y, h = self.gru(x, initial_h)
        seq, batch = y.shape[:2]
        return y.view(seq, batch, self.directions, self.hidden).permute(0, 2, 1, 3), h


def _result(module: torch.nn.Module, inputs: tuple[str, ...], node: Any) -> Any:  # noqa: ANN401 (onnx2torch types)
    return OperationConverterResult(torch_module=module, onnx_mapping=OnnxMapping(inputs=inputs,
                                                                                  outputs=node.output_values))


def _text(value: Any) -> Any:  # noqa: ANN401
    return value.decode() if isinstance(value, bytes) else value


def convert_reshape(node: Any, graph: Any) -> Any:  # noqa: ANN401 (onnx2torch OnnxNode, OnnxGraph)
    """``Reshape``: to a constant shape held as ints, else onnx2torch's own."""
    if node.attributes.get("allowzero", 0) == 1:
        raise NotImplementedError("Reshape with allowzero=1 is not supported")
    try:
        shape = tuple(int(d) for d in get_const_value(node.input_values[1], graph).tolist())
    except KeyError:
        return _ORIGINAL["reshape"](node, graph)
    return _result(ConstantReshape(shape), (node.input_values[0],), node)


def convert_resize(node: Any, graph: Any) -> Any:  # noqa: ANN401 (onnx2torch OnnxNode, OnnxGraph)
    """``Resize`` of opset 19 as opset 13's, where it means the same."""
    attrs = {k: _text(v) for k, v in node.attributes.items()}
    mode, transform = attrs.get("mode", "nearest"), attrs.get("coordinate_transformation_mode", "half_pixel")
    if attrs.get("antialias", 0) or "axes" in attrs or attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise NotImplementedError("Resize-19 with antialias, axes or keep_aspect_ratio_policy")
    if transform == "half_pixel_symmetric" or (mode == "nearest" and (
            transform != "asymmetric" or attrs.get("nearest_mode", "round_prefer_floor") != "floor")):
        raise NotImplementedError(f"Resize-19 {mode} with {transform} (PyTorch's interpolate differs)")
    return _ORIGINAL["resize"](node, graph)


def convert_split(node: Any, graph: Any) -> Any:  # noqa: ANN401 (onnx2torch OnnxNode, OnnxGraph)
    """``Split``: constant sizes held as ints, or ``num_outputs`` chunks; onnx2torch's own for computed sizes."""
    axis, outputs = node.attributes.get("axis", 0), node.output_values
    if len(node.input_values) > 1 and node.input_values[1]:
        try:
            sizes = [int(d) for d in get_const_value(node.input_values[1], graph).tolist()]
        except KeyError:
            return _ORIGINAL["split"](node, graph)
        return _result(OnnxSplit(num_splits=len(outputs), axis=axis, split=sizes), (node.input_values[0],), node)
    return _result(CeilSplit(len(outputs), axis), (node.input_values[0],), node)  # opset 13: equal parts, the same


def convert_gru(node: Any, graph: Any) -> Any:  # noqa: ANN401 (onnx2torch OnnxNode, OnnxGraph)
    """``GRU`` as :class:`OnnxGru`, where PyTorch computes what ONNX says."""
    attrs, inputs = node.attributes, list(node.input_values) + [""] * 6
    if (attrs.get("linear_before_reset", 0) != 1 or _text(attrs.get("direction", "forward")) not in
            ("forward", "bidirectional") or inputs[4] or attrs.get("layout", 0) != 0 or "activations" in attrs
            or "clip" in attrs or len(node.output_values) != 2 or not all(node.output_values)):
        raise NotImplementedError("GRU other than linear_before_reset=1, forward/bidirectional, no sequence_lens, "
                                  "default layout and activations, both outputs used")
    w, r = (get_const_value(inputs[k], graph).float() for k in (1, 2))
    b = get_const_value(inputs[3], graph).float() if inputs[3] else None
    mapped = (inputs[0], inputs[5]) if inputs[5] else (inputs[0],)
    return _result(OnnxGru(w, r, b, int(attrs["hidden_size"])), mapped, node)


def register() -> None:
    """Put the converters above into onnx2torch's registry, once per process (it has no API to replace one)."""
    with _LOCK:
        if _ORIGINAL:
            return
        _ORIGINAL.update(reshape=registry.get_converter("Reshape", 14), resize=registry.get_converter("Resize", 13),
                         split=registry.get_converter("Split", 13))
        table = registry._CONVERTER_REGISTRY  # noqa: SLF001
        for op, versions, converter in (("Reshape", (5, 13, 14, 19), convert_reshape), ("Resize", (19,), convert_resize),
                                        ("Split", (13, 18), convert_split), ("GRU", (7, 14), convert_gru)):
            for version in versions:
                table[registry.OperationDescription(domain="", operation_type=op, version=version)] = converter
