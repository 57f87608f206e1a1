"""Retraining on the labelled items (Edge Impulse's "retrain model"): a new classifier head on
the default model's pooled features of the ``train`` split, scored on ``test``, saved as a
MobileNetV2 state dict whose ``classifier`` is the new head. Seeded; the backbone is kept, so
the features are computed once (or read from ``embeddings``)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from resources.inference import imagenet
from resources.inference.mobilenet import FEATURES, MobileNetV2


@dataclass(frozen=True)
class HeadSettings:
    epochs: int = 200
    learning_rate: float = 0.01
    weight_decay: float = 1e-4
    seed: int = 0


@dataclass
class Retrained:
    labels: list[str]
    head: nn.Linear
    train_accuracy: float
    test_accuracy: float | None
    confusion: list[list[int]]
    losses: list[float]


def train_head(
    features: np.ndarray[Any, Any],
    labels: list[str],
    train: np.ndarray[Any, Any],
    settings: HeadSettings,
    say: Callable[[str], None],
) -> Retrained:
    """A linear head on ``features`` (N x 1280) fitted to ``labels`` of the rows where
    ``train`` is true (full-batch AdamW on cross-entropy), scored on the others."""
    torch.manual_seed(settings.seed)
    names = sorted(set(labels))
    codes = torch.tensor([names.index(label) for label in labels])
    x = torch.from_numpy(np.ascontiguousarray(features, np.float32))
    mask = torch.from_numpy(np.asarray(train, bool))
    mean, std = x[mask].mean(0), x[mask].std(0).clamp(min=1e-6)
    head = nn.Linear(x.shape[1], len(names))
    optimizer = torch.optim.AdamW(
        head.parameters(), settings.learning_rate, weight_decay=settings.weight_decay
    )
    scaled = (x - mean) / std
    losses = []
    for epoch in range(settings.epochs):
        loss = functional.cross_entropy(head(scaled[mask]), codes[mask])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(float(loss.detach()))
        if (epoch + 1) % max(1, settings.epochs // 5) == 0:
            say(
                f"retraining the classifier head: epoch {epoch + 1}/{settings.epochs}, "
                f"loss {losses[-1]:.4f}"
            )
    # Fold the feature scaling into the head, so that it reads the backbone's raw features.
    with torch.no_grad():
        folded = nn.Linear(x.shape[1], len(names))
        folded.weight.copy_(head.weight / std)
        folded.bias.copy_(head.bias - (head.weight * (mean / std)).sum(1))
        guess = folded(x).argmax(1)
    test = ~mask
    confusion = np.zeros((len(names), len(names)), int)
    for truth, guessed in zip(codes[test].tolist(), guess[test].tolist(), strict=True):
        confusion[truth, guessed] += 1
    return Retrained(
        labels=names,
        head=folded,
        train_accuracy=float((guess[mask] == codes[mask]).float().mean()),
        test_accuracy=float((guess[test] == codes[test]).float().mean())
        if bool(test.any())
        else None,
        confusion=confusion.tolist(),
        losses=losses,
    )


def classifier_weights(retrained: Retrained) -> bytes:
    """The default MobileNetV2 with the new head, as the state dict the runtime loads."""
    model = MobileNetV2(num_classes=len(retrained.labels))
    backbone = torch.load(imagenet.weights_path(), map_location="cpu", weights_only=True)
    backbone = {k: v for k, v in backbone.items() if not k.startswith("classifier.")}
    model.load_state_dict(backbone, strict=False)
    assert model.classifier[1].in_features == FEATURES
    model.classifier[1].load_state_dict(retrained.head.state_dict())
    out = io.BytesIO()
    torch.save(model.state_dict(), out)
    return out.getvalue()
