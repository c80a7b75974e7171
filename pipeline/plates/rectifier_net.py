"""Plate rectifier network: finds a plate's four corners and its layout in the crop the plate detector gives.

Input: BGR 0..255 float tensor ``[B, 3, 96, 96]`` (the reading crop resized, whatever its aspect; the network
standardises each image itself). Outputs: ``corners`` ``[B, 8]`` (TL, TR, BR, BL as x, y fractions of the crop's
width and height; values outside 0..1 mean a corner outside the crop) and ``layout_probs`` ``[B, 2]`` (car,
motorcycle). Seven 3x3 convolutions and a small fully connected head: about 22 MFLOPs a plate.
"""

from __future__ import annotations

import torch
from torch import nn

RECT_INPUT = 96


def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class RectifierNet(nn.Module):
    """Corner regressor and layout classifier."""

    def __init__(self, width: tuple[int, int, int, int] = (16, 32, 64, 96), hidden: int = 192) -> None:
        super().__init__()
        c0, c1, c2, c3 = width
        self.features = nn.Sequential(
            _cbr(3, c0, 2),  # 48
            _cbr(c0, c1, 2),  # 24
            _cbr(c1, c1),
            _cbr(c1, c2, 2),  # 12
            _cbr(c2, c2),
            _cbr(c2, c3, 2),  # 6
            _cbr(c3, c3),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c3 * 36, hidden), nn.ReLU(inplace=True), nn.Dropout(0.1))
        self.corners = nn.Linear(hidden, 8)
        self.layout = nn.Linear(hidden, 2)

    def forward_raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(corners ``[B, 8]``, layout logits ``[B, 2]``)."""
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        h = self.head(self.features((x - mean) / (std + 8.0)))
        base = torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0], device=x.device)
        return base + self.corners(h), self.layout(h)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Export form: corners and layout probabilities."""
        corners, layout = self.forward_raw(x)
        return corners, layout.softmax(-1)
