"""The small convolutional encoder trained on the pool: four stages of two 3x3 convolutions
with batch norm, each halving the size, then global average pooling to ``width * 8``
features. A built-in architecture, so that its weights are saved as a plain state dict."""

from __future__ import annotations

import torch
from torch import nn

POOL_ENCODER = "pool_encoder"


def _stage(inp: int, out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, out, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU(inplace=True),
        nn.Conv2d(out, out, 3, 1, 1, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU(inplace=True),
    )


class PoolEncoder(nn.Module):
    def __init__(self, channels: int = 3, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _stage(channels, width, 1),
            _stage(width, width * 2, 2),
            _stage(width * 2, width * 4, 2),
            _stage(width * 4, width * 8, 2),
        )
        self.dim = width * 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled: torch.Tensor = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return pooled.flatten(1)
