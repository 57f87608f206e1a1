"""Self-supervised training of the pool encoder, SimCLR-style: two augmented views of each
image, a projection head, and the NT-Xent loss that pulls a view towards its twin and away
from the rest of the batch. Seeded: the same images, settings and seed give the same weights
on the same machine. Progress (epoch, loss, rate, ETA) goes to ``say``."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ingest_assets.progress import format_duration
from ingest_assets.training.augment import Augmentations
from resources.inference.pool_encoder import POOL_ENCODER, PoolEncoder
from resources.inference.specs import InputSpec


@dataclass(frozen=True)
class SimCLRSettings:
    epochs: int = 60
    batch_size: int = 256
    learning_rate: float = 2e-3
    temperature: float = 0.2
    width: int = 32
    projection: int = 128
    seed: int = 0
    augment: Augmentations = field(default_factory=Augmentations)


@dataclass
class Trained:
    encoder: PoolEncoder
    losses: list[float]
    seconds: float


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss for views ``a[i]`` and ``b[i]`` of the same image."""
    z = functional.normalize(torch.cat([a, b]), dim=1)
    similarity = z @ z.T / temperature
    n = a.shape[0]
    similarity.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return functional.cross_entropy(similarity, targets)


def train_simclr(
    images: np.ndarray[Any, Any], settings: SimCLRSettings, say: Callable[[str], None]
) -> Trained:
    """Train a ``PoolEncoder`` on ``images`` (N, H, W, C uint8)."""
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    pool = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    encoder = PoolEncoder(channels=pool.shape[1], width=settings.width)
    head = nn.Sequential(
        nn.Linear(encoder.dim, encoder.dim),
        nn.ReLU(inplace=True),
        nn.Linear(encoder.dim, settings.projection),
    )
    parameters = [*encoder.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=1e-4)
    steps = settings.epochs * max(1, len(pool) // settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, settings.learning_rate, total_steps=steps
    )
    batch = min(settings.batch_size, len(pool))
    losses: list[float] = []
    start = time.monotonic()
    encoder.train()
    head.train()
    for epoch in range(settings.epochs):
        order = torch.randperm(len(pool), generator=generator)
        total, count = 0.0, 0
        for first in range(0, len(pool) - batch + 1, batch):
            images_batch = pool[order[first : first + batch]].float().div_(255)
            one = settings.augment(images_batch, generator)
            two = settings.augment(images_batch, generator)
            loss = nt_xent(head(encoder(one)), head(encoder(two)), settings.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            if schedule.last_epoch < steps:
                schedule.step()
            total, count = total + float(loss.detach()) * len(one), count + len(one)
        losses.append(total / max(count, 1))
        elapsed = time.monotonic() - start
        rate = (epoch + 1) * count / elapsed
        eta = format_duration(elapsed / (epoch + 1) * (settings.epochs - epoch - 1))
        say(
            f"pool embedding training: epoch {epoch + 1}/{settings.epochs}, loss "
            f"{losses[-1]:.4f}, {rate:.0f} images/s, ETA {eta}"
        )
    encoder.eval()
    return Trained(encoder, losses, time.monotonic() - start)


def embed_pool(
    encoder: PoolEncoder, images: np.ndarray[Any, Any], batch: int = 512
) -> np.ndarray[Any, Any]:
    """The encoder's features of ``images`` (N, H, W, C uint8)."""
    out = []
    with torch.inference_mode():
        for first in range(0, len(images), batch):
            chunk = (
                torch.from_numpy(images[first : first + batch])
                .permute(0, 3, 1, 2)
                .float()
                .div_(255)
            )
            out.append(encoder(chunk).numpy())
    return np.concatenate(out) if out else np.zeros((0, encoder.dim), np.float32)


def pool_encoder_weights(encoder: PoolEncoder, spec: InputSpec, channels: int, width: int) -> bytes:
    """The encoder as the runtime loads it: its state dict with its shape and input."""
    out = io.BytesIO()
    torch.save(
        {
            "architecture": POOL_ENCODER,
            "channels": channels,
            "width": width,
            "input": spec.to_json(),
            "state_dict": encoder.state_dict(),
        },
        out,
    )
    return out.getvalue()
