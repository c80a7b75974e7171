"""Plate recognition network: a small CNN shared by a CTC head (registration) and a province classifier.

Input: BGR ``uint8``-range float tensor ``[B, 3, H, W]`` (default 64x128). The network normalises each image
itself (per-image mean/std, "test-time normalisation" that makes it robust to exposure), so callers only resize.
Outputs: ``char_probs`` ``[B, T, 1 + len(CHARSET)]`` (softmax, class 0 = CTC blank, T = W/4) and
``province_probs`` ``[B, 77]``.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_H = 64
INPUT_W = 128


def _cbr(cin: int, cout: int, stride: int | tuple[int, int] = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Res(nn.Module):
    """Residual block of two 3x3 convolutions."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_cbr(ch, ch), nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class PlateNet(nn.Module):
    """CNN backbone + BiGRU CTC head + province classification head."""

    def __init__(self, n_chars: int, n_provinces: int, channels: tuple[int, int, int, int] = (16, 32, 64, 96),
                 rnn: int = 96, input_h: int = INPUT_H) -> None:
        super().__init__()
        if input_h % 8:
            raise ValueError(f"input height must be a multiple of 8, got {input_h}")
        c0, c1, c2, c3 = channels
        self.backbone = nn.Sequential(
            _cbr(3, c0, 2),  # 32x64
            _cbr(c0, c1),
            nn.MaxPool2d(2),  # 16x32
            _cbr(c1, c2),
            _cbr(c2, c2),
            nn.MaxPool2d((2, 1)),  # 8x32
            _cbr(c2, c3),
            _Res(c3),
        )
        c = c3
        # the backbone leaves H/8 rows: one column of them is a time step
        self.seq_in = nn.Sequential(nn.Conv2d(c, c, (input_h // 8, 1), bias=False), nn.BatchNorm2d(c),
                                    nn.ReLU(inplace=True))
        self.rnn = nn.GRU(c, rnn, batch_first=True, bidirectional=True)
        self.ctc_fc = nn.Linear(2 * rnn, n_chars + 1)
        self.prov_conv = nn.Sequential(_cbr(c, c, (2, 2)), nn.AdaptiveAvgPool2d((2, 4)))  # 4x16 -> 2x4
        self.prov_fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(c * 8, 256), nn.ReLU(inplace=True),
                                     nn.Dropout(0.2), nn.Linear(256, n_provinces))

    @staticmethod
    def normalise(x: torch.Tensor) -> torch.Tensor:
        """Per-image standardisation of a 0..255 batch."""
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        return (x - mean) / (std + 8.0)

    def forward_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (CTC logits ``[B, T, C]``, province logits ``[B, P]``)."""
        f = self.backbone(self.normalise(x))
        s = self.seq_in(f).squeeze(2).transpose(1, 2)  # B, T, C
        s, _ = self.rnn(s)
        return self.ctc_fc(s), self.prov_fc(self.prov_conv(f))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Export form: softmax probabilities (``char_probs``, ``province_probs``)."""
        ctc, prov = self.forward_logits(x)
        return ctc.softmax(-1), prov.softmax(-1)


def adapt_state_dict(state: dict[str, torch.Tensor], model: PlateNet) -> dict[str, torch.Tensor]:
    """``state`` (a :class:`PlateNet` of another input height) made loadable into ``model``: every weight keeps its
    shape except the time-step convolution's, whose rows are resampled to the new height (and scaled so that a
    column's sum is kept); the backbone is convolutional and the heads pool, so the rest carries over as is."""
    out = dict(state)
    key = "seq_in.0.weight"
    target = model.state_dict()[key].shape
    if out[key].shape != target:
        w = out[key].float()
        resized = nn.functional.interpolate(w, size=(target[2], 1), mode="bilinear", align_corners=True)
        out[key] = resized * (w.shape[2] / target[2])
    return out
