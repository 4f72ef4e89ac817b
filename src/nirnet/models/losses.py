"""Training losses: BCE with label smoothing, and the Difference-Aware Loss (L_DA).

L_DA (METHOD.md section 2): for aligned pairs (real ``x``, its fake twin ``x'``) the target is the latent
difference of a frozen encoder, ``dz = pool(E_fix(x') - E_fix(x))`` average-pooled to a ``g x g`` grid and divided
by its running RMS per dimension (kept in the model as ``da_scale`` so it is saved and resumed with it). The
prediction is ``MLP(f_n(x') - f_n(x))``; the loss is their mean squared error. To keep ``E_fix`` affordable on a
CPU, L_DA runs on ``da_pairs`` pairs per batch, on aligned sub-crops of side ``da_crop``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bce_with_smoothing(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.1) -> torch.Tensor:
    """Binary cross-entropy against labels pulled towards 0.5 by ``smoothing``."""
    targets = labels.float() * (1 - smoothing) + 0.5 * smoothing
    return F.binary_cross_entropy_with_logits(logits, targets)


class DifferenceAwareLoss(nn.Module):
    def __init__(self, encoder: nn.Module, grid: int = 2, crop: int = 64, pairs: int = 4, momentum: float = 0.05):
        super().__init__()
        self.encoder = encoder.requires_grad_(False).eval()
        self.grid, self.crop, self.pairs, self.momentum = grid, crop, pairs, momentum

    def train(self, mode: bool = True) -> DifferenceAwareLoss:
        super().train(mode)
        self.encoder.eval()
        return self

    @torch.no_grad()
    def target(self, model: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        z = self.encoder.encode(torch.cat([real, fake]))
        diff = z[len(real) :] - z[: len(real)]
        pooled = F.adaptive_avg_pool2d(diff, self.grid).flatten(1)
        scale = model.da_scale
        rms = pooled.pow(2).mean(dim=0).sqrt()
        if self.training:
            if scale.abs().sum() == 0:  # first batch: start from its own statistics
                scale.copy_(rms)
            else:
                scale.mul_(1 - self.momentum).add_(self.momentum * rms)
        return pooled / scale.clamp_min(1e-6)

    def forward(
        self, model: nn.Module, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """L_DA on the first ``pairs`` aligned pairs of (``real``, ``fake``), ``N x 3 x H x W`` in [0, 1]."""
        if model.da_head is None:
            raise RuntimeError("the model has no Difference-Aware head (noise branch off or lambda_da = 0)")
        n = min(self.pairs, len(real))
        height, width = real.shape[-2:]
        size = min(self.crop, height, width)
        top, left = (int(torch.randint(0, d - size + 1, (1,), generator=generator)) for d in (height, width))
        real_sub = real[:n, :, top : top + size, left : left + size]
        fake_sub = fake[:n, :, top : top + size, left : left + size]
        target = self.target(model, real_sub, fake_sub)
        _, f_real = model.imprint(real_sub)
        _, f_fake = model.imprint(fake_sub)
        return F.mse_loss(model.da_head(f_fake - f_real), target)
