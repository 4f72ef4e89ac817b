"""Training losses: BCE with label smoothing, and the Difference-Aware Loss (L_DA).

L_DA (METHOD.md section 2): for aligned pairs (real ``x``, its fake twin ``x'``) the target is the latent
difference of a frozen encoder, ``dz = pool(E_fix(x') - E_fix(x))`` average-pooled to a ``g x g`` grid and divided
by its running RMS per dimension (kept in the model as ``da_scale`` so it is saved and resumed with it). The
prediction is ``MLP(f_n(x') - f_n(x))``, or with ``da_spatial`` a per-cell prediction from the noise encoder's
feature maps pooled to the same grid; the loss is their mean squared error, optionally after centring both over
the batch (``centred``). Real and fake sub-crops go through the extractor in one forward. To keep ``E_fix``
affordable on a CPU, L_DA runs on ``da_pairs`` pairs per batch, on aligned sub-crops of side ``da_crop``.
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
    def __init__(
        self,
        encoder: nn.Module,
        grid: int = 2,
        crop: int = 64,
        pairs: int = 4,
        momentum: float = 0.05,
        centred: bool = False,
    ):
        super().__init__()
        self.encoder = encoder.requires_grad_(False).eval()
        self.grid, self.crop, self.pairs, self.momentum = grid, crop, pairs, momentum
        self.centred = centred

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
        # One forward over both halves: train-mode BatchNorm then normalises real and fake with the same batch
        # statistics (two forwards of n images each would let the statistics themselves differ by class).
        noise = model.imprint.extractor(torch.cat([real_sub, fake_sub]))
        if model.config.da_spatial:
            maps = model.imprint.encoder.feature_map(noise)
            prediction = model.da_head(maps[n:] - maps[:n])
        else:
            feats = model.imprint.encoder(noise)
            prediction = model.da_head(feats[n:] - feats[:n])
        if self.centred:
            # What differs between twins, not the shift every twin shares (e.g. "all twins are smoother").
            target = target - target.mean(dim=0, keepdim=True)
            prediction = prediction - prediction.mean(dim=0, keepdim=True)
        return F.mse_loss(prediction, target)
