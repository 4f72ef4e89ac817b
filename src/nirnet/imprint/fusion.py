"""Fusion, extrapolation, sampling and embedding of imprints: the simulator that makes pseudo-fakes.

For each image in a batch:

1. choose ``models_per_sample`` entries of the bank at random (all of them when ``None``);
2. draw ``w ~ Dirichlet(alpha)`` over them and push it outside the simplex: ``w' = (1 + beta) w - beta / m``
   (still sums to 1; with ``beta > 0`` some weights are negative, i.e. *extrapolated* generators);
3. fuse the per-pixel Laplace parameters: ``mu* = sum w'_k mu_k``, ``b* = max(sum w'_k b_k, b_min)``;
4. sample ``n ~ Laplace(mu*, b*)`` by inverse CDF and embed ``x~ = quantize_uint8(clip(x + gamma n))`` with
   ``gamma ~ U[gamma_lo, gamma_hi]``.

Works on CPU (inside data-loader workers) or on a GPU batch; every draw comes from the given ``torch.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .bank import ImprintBank
from .laplace import sample_laplace


@dataclass(frozen=True)
class SimulatorConfig:
    alpha: float = 1.0  # Dirichlet concentration (1 = uniform over the simplex)
    beta: float = 0.3  # extrapolation: 0 keeps weights in the simplex
    b_min: float = 1e-3  # floor of the fused Laplace scale (in [0, 1] pixel units)
    gamma: tuple[float, float] = (0.2, 1.0)  # imprint strength range
    models_per_sample: int | None = 3  # None: fuse all bank entries


@dataclass
class SimulatorOutput:
    images: torch.Tensor  # N x 3 x H x W in [0, 1], quantised to 1/255 steps
    noise: torch.Tensor  # the embedded imprint gamma * n (before clipping)
    weights: torch.Tensor  # N x K fused weights w' (0 for models not chosen)
    gamma: torch.Tensor  # N


def extrapolate(w: torch.Tensor, beta: float) -> torch.Tensor:
    """``(1 + beta) w - beta / m`` for weights ``w`` over ``m`` models (last dimension)."""
    return (1 + beta) * w - beta / w.shape[-1]


class ImprintSimulator(nn.Module):
    def __init__(self, bank: ImprintBank, config: SimulatorConfig = SimulatorConfig()) -> None:
        super().__init__()
        self.bank = bank
        self.config = config

    def draw_weights(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``N x K`` fused weights: Dirichlet over a random subset per sample, then extrapolated."""
        k = len(self.bank)
        m = k if self.config.models_per_sample is None else max(1, min(self.config.models_per_sample, k))
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        rng = np.random.default_rng(seed)  # numpy: torch's Dirichlet cannot take a Generator
        weights = np.zeros((batch, k), dtype=np.float32)
        for i in range(batch):
            chosen = rng.choice(k, size=m, replace=False)
            w = rng.dirichlet(np.full(m, self.config.alpha))
            weights[i, chosen] = extrapolate(torch.from_numpy(w), self.config.beta).numpy()
        return torch.from_numpy(weights)

    def fused_params(self, x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu*, b*)`` for images ``x`` given ``N x K`` weights; models with zero weight are not evaluated."""
        mu = torch.zeros_like(x)
        b = torch.zeros_like(x)
        weights = weights.to(x.device, x.dtype)
        for k in range(len(self.bank)):
            rows = torch.nonzero(weights[:, k] != 0).flatten()
            if rows.numel() == 0:
                continue
            mu_k, b_k = self.bank.params(k, x[rows])
            w = weights[rows, k].view(-1, 1, 1, 1)
            mu[rows] += w * mu_k
            b[rows] += w * b_k
        return mu, b.clamp_min(self.config.b_min)

    @torch.no_grad()
    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, weights: torch.Tensor | None = None
    ) -> SimulatorOutput:
        """Pseudo-fakes of real images ``x`` (``N x 3 x H x W`` in [0, 1])."""
        if weights is None:
            weights = self.draw_weights(len(x), generator)
        mu, b = self.fused_params(x, weights)
        lo, hi = self.config.gamma
        gamma = lo + (hi - lo) * torch.rand(len(x), generator=generator)
        cpu_gen = generator if x.device.type == "cpu" else None
        noise = gamma.to(x.device).view(-1, 1, 1, 1) * sample_laplace(mu, b, cpu_gen)
        images = torch.round((x + noise).clamp(0, 1) * 255) / 255
        return SimulatorOutput(images=images, noise=noise, weights=weights, gamma=gamma)
