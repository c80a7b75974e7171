"""Load an exported plate reader (ONNX, batch-norm folded into the convolutions) back into :class:`PlateNet`.

Training checkpoints are not kept in the repository (only the ONNX export ships), so continuing from a shipped
model starts here. The export folds every BatchNorm into its convolution; :func:`load_onnx_weights` unfolds it
so that the network trains like a fresh one: the convolution keeps the folded weight, and the BatchNorm is set
to the statistics of that weight's output on real crops (``running_mean``/``running_var`` and ``weight`` = the
measured mean and standard deviation, ``bias`` = mean + folded bias). In eval mode the result equals the ONNX
model exactly; in train mode batch statistics close to the measured ones change little.

The province classifier may grow (a new "no province" class): rows of the ONNX head fill the first classes and
the new ones start from the head's mean row with a low bias.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.plates.net import PlateNet

logger = logging.getLogger(__name__)


def _convs(model: PlateNet) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Convolution + BatchNorm pairs in the order the ONNX export lists them."""
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d]] = []

    def cbr(seq: nn.Sequential) -> None:
        pairs.append((seq[0], seq[1]))

    bb = model.backbone
    for i in (0, 1, 3, 4, 6):
        cbr(bb[i])
    res = bb[7]
    cbr(res.body[0])
    pairs.append((res.body[1], res.body[2]))
    pairs.append((model.seq_in[0], model.seq_in[1]))
    cbr(model.prov_conv[0])
    return pairs


def _gru_from_onnx(w: np.ndarray, r: np.ndarray, b: np.ndarray, gru: nn.GRU) -> None:
    """ONNX GRU (gates z, r, h; linear_before_reset) -> torch GRU (gates r, z, n)."""
    hidden = gru.hidden_size

    def reorder(m: np.ndarray) -> np.ndarray:
        z, rr, h = m[:hidden], m[hidden:2 * hidden], m[2 * hidden:]
        return np.concatenate([rr, z, h])

    for d, suffix in enumerate(("", "_reverse")):
        getattr(gru, f"weight_ih_l0{suffix}").data = torch.from_numpy(reorder(w[d])).float()
        getattr(gru, f"weight_hh_l0{suffix}").data = torch.from_numpy(reorder(r[d])).float()
        getattr(gru, f"bias_ih_l0{suffix}").data = torch.from_numpy(reorder(b[d, :3 * hidden])).float()
        getattr(gru, f"bias_hh_l0{suffix}").data = torch.from_numpy(reorder(b[d, 3 * hidden:])).float()


def load_onnx_weights(model: PlateNet, onnx_path: Path, calibration: np.ndarray) -> None:
    """Fill ``model`` from the exported ``onnx_path``; ``calibration`` is a ``[N, H, W, 3]`` uint8 batch of real
    crops at the network input size, used to measure the BatchNorm statistics (see the module docstring)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    conv_nodes = [n for n in graph.node if n.op_type == "Conv"]
    pairs = _convs(model)
    if len(conv_nodes) != len(pairs):
        raise ValueError(f"{onnx_path}: {len(conv_nodes)} convolutions, the network has {len(pairs)}")
    folded_bias: list[torch.Tensor] = []
    for node, (conv, bn) in zip(conv_nodes, pairs, strict=True):
        conv.weight.data = torch.from_numpy(inits[node.input[1]].copy()).float()
        folded_bias.append(torch.from_numpy(inits[node.input[2]].copy()).float())
        bn.weight.data.fill_(1.0)
        bn.bias.data.zero_()
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
    gru = next(n for n in graph.node if n.op_type == "GRU")
    _gru_from_onnx(inits[gru.input[1]], inits[gru.input[2]], inits[gru.input[3]], model.rnn)
    matmul = next(n for n in graph.node if n.op_type == "MatMul")
    model.ctc_fc.weight.data = torch.from_numpy(inits[matmul.input[1]].T.copy()).float()
    model.ctc_fc.bias.data = torch.from_numpy(inits["ctc_fc.bias"].copy()).float()
    model.prov_fc[2].weight.data = torch.from_numpy(inits["prov_fc.2.weight"].copy()).float()
    model.prov_fc[2].bias.data = torch.from_numpy(inits["prov_fc.2.bias"].copy()).float()
    w5, b5 = inits["prov_fc.5.weight"], inits["prov_fc.5.bias"]
    head = model.prov_fc[5]
    n_old = w5.shape[0]
    head.weight.data[:n_old] = torch.from_numpy(w5.copy()).float()
    head.bias.data[:n_old] = torch.from_numpy(b5.copy()).float()
    if head.out_features > n_old:
        head.weight.data[n_old:] = torch.from_numpy(w5.mean(0, keepdims=True).copy()).float()
        head.bias.data[n_old:] = float(b5.min())
    _set_batchnorm_statistics(model, pairs, folded_bias, calibration)
    logger.info("loaded %s into the network (%d convolutions, BatchNorm statistics from %d crops)", onnx_path,
                len(pairs), len(calibration))


@torch.no_grad()
def _set_batchnorm_statistics(model: PlateNet, pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d]],
                              folded_bias: list[torch.Tensor], calibration: np.ndarray) -> None:
    """Put the folded bias into each BatchNorm and give it the measured statistics of its convolution."""
    stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = []
    for k, (conv, _) in enumerate(pairs):
        def hook(_m: nn.Module, _i: object, out: torch.Tensor, k: int = k) -> None:
            stats[k] = (out.mean(dim=(0, 2, 3)), out.var(dim=(0, 2, 3), unbiased=False))
        hooks.append(conv.register_forward_hook(hook))
    for (_, bn), bias in zip(pairs, folded_bias, strict=True):
        bn.bias.data = bias.clone()
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(calibration.transpose(0, 3, 1, 2))).float()
    model.forward_logits(x)
    for h in hooks:
        h.remove()
    for k, (_, bn) in enumerate(pairs):
        mean, var = stats[k]
        std = torch.sqrt(var + bn.eps)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.data = std.clone()
        bn.bias.data = mean + folded_bias[k]
