"""Training of the project's own small autoencoders (:mod:`nirnet.imprint.ours`) on real photographs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import Progress

from ..data.pool import crop_pool, to_float
from .ours import AEConfig, SmallAutoencoder


@dataclass(frozen=True)
class AETrainConfig:
    steps: int = 1500
    batch_size: int = 8
    crop: int = 64
    lr: float = 2e-3
    kl_weight: float = 1e-4
    crops_per_image: int = 4
    seed: int = 0


def train_autoencoder(
    config: AEConfig,
    image_paths: Sequence[str | Path],
    train: AETrainConfig = AETrainConfig(),
    progress: Progress | None = None,
) -> tuple[SmallAutoencoder, dict[str, float]]:
    """Train one autoencoder with L1 (+ KL) loss on random crops; returns the model and final metrics."""
    torch.manual_seed(train.seed)
    pool = crop_pool(image_paths, train.crop, per_image=train.crops_per_image, seed=train.seed)
    if len(pool) < train.batch_size:
        raise ValueError(f"only {len(pool)} crops of {train.crop}px could be made from {len(image_paths)} images")
    model = SmallAutoencoder(config).train()
    model.requires_grad_(True)
    optimizer = torch.optim.Adam(model.parameters(), lr=train.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / train.steps))
    )
    generator = torch.Generator().manual_seed(train.seed)
    task = progress.add_task(f"train {config.name}", total=train.steps) if progress else None
    recent: list[float] = []
    for _ in range(train.steps):
        index = torch.randint(len(pool), (train.batch_size,), generator=generator)
        x = to_float(pool[index])
        mean, logvar = model.encode_distribution(x)
        if logvar is not None:
            z = mean + torch.randn(mean.shape, generator=generator) * (0.5 * logvar).exp()
            kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        else:
            z, kl = mean, torch.zeros(())
        recon = model.decoder(z)
        loss = F.l1_loss(recon, x) + train.kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        recent = (recent + [F.mse_loss(recon.detach().clamp(0, 1), x).item()])[-50:]
        if progress is not None:
            progress.advance(task)
    model.requires_grad_(False).eval()
    psnr = 10 * math.log10(1 / max(sum(recent) / len(recent), 1e-12))
    return model, {"train_psnr_db": psnr, "final_loss": float(loss.detach())}
