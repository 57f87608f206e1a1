"""SimCLR's augmentations (Chen et al., 2020), written in torch on whole batches so that they
cost little beside the model: random resized crops, flips, colour jitter, random grey and
noise, each drawn from a seeded generator so that a run can be repeated exactly."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional


@dataclass(frozen=True)
class Augmentations:
    min_scale: float = 0.4  # the smallest crop, as a share of the image's area
    flip: float = 0.5  # horizontal flips; 0 for data where left and right differ (text, digits)
    jitter: float = 0.4  # brightness, contrast and saturation, each by up to this much
    grey: float = 0.2  # probability of a grey copy
    noise: float = 0.03  # standard deviation of added Gaussian noise, in [0, 1] pixel units

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A random view of each image of ``images`` (N, C, H, W, values in [0, 1])."""
        n = images.shape[0]
        views = self._crop(images, generator)
        if self.flip:
            flip = torch.rand(n, generator=generator) < self.flip
            views = torch.where(flip.view(-1, 1, 1, 1), views.flip(3), views)
        views = self._jitter(views, generator)
        if self.noise:
            views = views + torch.randn(views.shape, generator=generator) * self.noise
        return views.clamp(0.0, 1.0)

    def _crop(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = images.shape[0]
        scale = torch.empty(n).uniform_(self.min_scale, 1.0, generator=generator).sqrt()
        aspect = torch.empty(n).uniform_(-0.3, 0.3, generator=generator).exp()
        sx = (scale * aspect.sqrt()).clamp(max=1.0)
        sy = (scale / aspect.sqrt()).clamp(max=1.0)
        tx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - sx)
        ty = (torch.rand(n, generator=generator) * 2 - 1) * (1 - sy)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, tx, sy, ty
        grid = functional.affine_grid(theta, list(images.shape), align_corners=False)
        return functional.grid_sample(images, grid, mode="bilinear", align_corners=False)

    def _jitter(self, views: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = views.shape[0]

        def factor() -> torch.Tensor:
            spread = torch.empty(n).uniform_(1 - self.jitter, 1 + self.jitter, generator=generator)
            return spread.view(-1, 1, 1, 1)

        views = views * factor()
        mean = views.mean(dim=(1, 2, 3), keepdim=True)
        views = (views - mean) * factor() + mean
        if views.shape[1] == 3:
            grey = views.mean(dim=1, keepdim=True)
            views = (views - grey) * factor() + grey
            to_grey = (torch.rand(n, generator=generator) < self.grey).view(-1, 1, 1, 1)
            views = torch.where(to_grey, views.mean(dim=1, keepdim=True).expand_as(views), views)
        return views
