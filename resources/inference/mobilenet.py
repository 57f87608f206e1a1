"""MobileNetV2 (Sandler et al., 2018) in plain torch, laid out as torchvision's, so that
torchvision's ImageNet checkpoint loads into it unchanged (``features.*``, ``classifier.1``)."""

from __future__ import annotations

import torch
from torch import nn

#: (expansion, output channels, repeats, first stride) per stage, as in the paper's Table 2.
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
_LAST_STAGES = ((6, 160, 3, 2), (6, 320, 1, 1))
FEATURES = 1280


class ConvBNReLU(nn.Sequential):
    def __init__(self, inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = round(inp * expansion)
        self.use_residual = stride == 1 and inp == out
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNReLU(inp, hidden, kernel=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """``forward`` gives class logits; ``embed`` the 1280 pooled features before them."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        channels = 32
        layers: list[nn.Module] = [ConvBNReLU(3, channels, stride=2)]
        for expansion, out, repeats, stride in _STAGES + _LAST_STAGES:
            for index in range(repeats):
                layers.append(
                    InvertedResidual(channels, out, stride if index == 0 else 1, expansion)
                )
                channels = out
        layers.append(ConvBNReLU(channels, FEATURES, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(FEATURES, num_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.embed(x))
        return logits


class Embedder(nn.Module):
    """A classifier's pooled features as the model's output (the ``embedding`` task)."""

    def __init__(self, model: MobileNetV2) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.embed(x)
