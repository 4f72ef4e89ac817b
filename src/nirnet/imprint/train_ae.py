"""Training of the project's own small autoencoders (:mod:`nirnet.imprint.ours`) on real photographs.

Pixel losses alone make decoders that blur: their residual is lost detail, not decoder structure. Real latent
decoders are trained with a perceptual and an adversarial term and *make* texture. So besides L1 (and the KL or VQ
terms of the bottleneck) the loss has

* a high-frequency term: L1 between the Laplacian-filtered reconstruction and photo, so fine detail counts as
  much as flat regions;
* an adversarial term from a small patch discriminator (hinge loss), switched on after ``adv_start`` of the steps
  when the reconstruction is already close, which pushes the decoder to synthesise plausible texture.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch import nn

from ..data.pool import crop_pool, to_float
from .autoencoders import Reconstructor
from .ours import HIFI_AE_CONFIGS, HIFI_EXTRA_CONFIGS, LEGACY_AE_CONFIGS, AEConfig, SmallAutoencoder, save_module


@dataclass(frozen=True)
class AETrainConfig:
    steps: int = 1500
    batch_size: int = 8
    crop: int = 64
    lr: float = 2e-3
    kl_weight: float = 1e-4
    crops_per_image: int = 4
    seed: int = 0
    hf_weight: float = 0.0  # Laplacian-domain L1
    adv_weight: float = 0.0  # patch-discriminator hinge loss on the decoder
    adv_start: float = 0.5  # fraction of the steps after which the adversarial term is on
    vq_beta: float = 0.25  # commitment weight of a VQ latent


#: How each family of shipped autoencoders was trained (``nirnet imprint train-ae --family ...``).
HIFI_TRAINING = AETrainConfig(steps=1000, batch_size=8, crop=64, lr=1e-3, hf_weight=1.0, adv_weight=0.05, adv_start=0.5)
AE_FAMILIES: dict[str, tuple[tuple[AEConfig, ...], AETrainConfig]] = {
    "hifi": (HIFI_AE_CONFIGS, HIFI_TRAINING),
    "hifi-extra": (HIFI_EXTRA_CONFIGS, HIFI_TRAINING),
    "legacy": (LEGACY_AE_CONFIGS, AETrainConfig()),
}
#: The TAESana decoder sees 128 px crops (a 4 x 4 latent at stride 32).
TAESANA_TRAINING = replace(HIFI_TRAINING, steps=500, crop=128, batch_size=4, crops_per_image=2)

_LAPLACIAN = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """Per-channel 3x3 Laplacian (valid region): the image's finest detail."""
    kernel = _LAPLACIAN.to(x).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(x, kernel, groups=x.shape[1])


class PatchDiscriminator(nn.Module):
    """A small PatchGAN: one real/fake logit per ~22 px receptive field."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),
            nn.GroupNorm(8, 2 * channels),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * channels, 2 * channels, 3, padding=1),
            nn.GroupNorm(8, 2 * channels),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * channels, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)


def cosine_schedule(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate from its peak to 0 over ``steps`` (half a cosine), no warm-up."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))


def _latent(model: SmallAutoencoder, x: torch.Tensor, train: AETrainConfig, generator: torch.Generator):
    """A training latent and the bottleneck's own loss (KL, or VQ codebook + commitment)."""
    mean, logvar = model.encode_distribution(x)
    if logvar is not None:
        z = mean + torch.randn(mean.shape, generator=generator) * (0.5 * logvar).exp()
        return z, train.kl_weight * 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
    if model.quantizer is not None:
        z, codebook, commitment = model.quantizer.quantize_for_training(mean)
        return z, codebook + train.vq_beta * commitment
    return mean, torch.zeros(())


def _init_codebook(model: SmallAutoencoder, pool: torch.Tensor, generator: torch.Generator) -> None:
    """Seed each group's codebook with encoder outputs of random crops, so that no code starts dead."""
    if model.quantizer is None:
        return
    with torch.no_grad():
        index = torch.randint(len(pool), (min(len(pool), 64),), generator=generator)
        flat = model.quantizer.flat(model._encoder_out(to_float(pool[index])))  # groups x M x dim
        groups, codes, dim = model.quantizer.codebook.shape
        pick = torch.randint(flat.shape[1], (codes,), generator=generator)
        jitter = 0.01 * torch.randn(groups, codes, dim, generator=generator)
        model.quantizer.codebook.copy_(flat[:, pick] + jitter)


def train_autoencoder(
    config: AEConfig,
    image_paths: Sequence[str | Path],
    train: AETrainConfig = AETrainConfig(),
    progress: Progress | None = None,
) -> tuple[SmallAutoencoder, dict[str, float]]:
    """Train one autoencoder on random crops; returns the model and final training metrics."""
    torch.manual_seed(train.seed)
    pool = _pool(image_paths, train)
    generator = torch.Generator().manual_seed(train.seed)
    model = SmallAutoencoder(config).train()
    model.requires_grad_(True)
    if config.shortcut:
        sample = torch.randint(len(pool), (min(len(pool), 256),), generator=generator)
        model.init_shortcuts(to_float(pool[sample]))
    _init_codebook(model, pool, generator)

    def round_trip(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, bottleneck_loss = _latent(model, x, train, generator)
        return model._decode(z), bottleneck_loss

    metrics = _optimise(round_trip, list(model.parameters()), pool, train, generator, progress, config.name)
    return model.requires_grad_(False).eval(), metrics


def train_decoder(
    encoder: nn.Module,
    decoder: nn.Module,
    image_paths: Sequence[str | Path],
    train: AETrainConfig,
    progress: Progress | None = None,
    name: str = "decoder",
) -> dict[str, float]:
    """Train ``decoder`` for a fixed, given ``encoder`` (e.g. a third-party encoder whose decoder is not available)."""
    torch.manual_seed(train.seed)
    pool = _pool(image_paths, train)
    generator = torch.Generator().manual_seed(train.seed)
    encoder.requires_grad_(False).eval()
    decoder.requires_grad_(True).train()

    def round_trip(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            z = encoder(x)
        return decoder(z), torch.zeros(())

    metrics = _optimise(round_trip, list(decoder.parameters()), pool, train, generator, progress, name)
    decoder.requires_grad_(False).eval()
    return metrics


def _pool(image_paths: Sequence[str | Path], train: AETrainConfig) -> torch.Tensor:
    pool = crop_pool(image_paths, train.crop, per_image=train.crops_per_image, seed=train.seed)
    if len(pool) < train.batch_size:
        raise ValueError(f"only {len(pool)} crops of {train.crop}px could be made from {len(image_paths)} images")
    return pool


def _optimise(
    round_trip: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    parameters: list[nn.Parameter],
    pool: torch.Tensor,
    train: AETrainConfig,
    generator: torch.Generator,
    progress: Progress | None,
    name: str,
) -> dict[str, float]:
    """The training loop shared by whole autoencoders and lone decoders: L1 + bottleneck + high-frequency +
    adversarial terms, cosine learning rate."""
    optimizer = torch.optim.Adam(parameters, lr=train.lr)
    schedule = cosine_schedule(optimizer, train.steps)
    critic = PatchDiscriminator() if train.adv_weight > 0 else None
    critic_opt = torch.optim.Adam(critic.parameters(), lr=train.lr / 4, betas=(0.5, 0.9)) if critic else None
    adv_from = int(train.adv_start * train.steps)
    task = progress.add_task(f"train {name}", total=train.steps) if progress else None
    recent: list[float] = []
    for step in range(train.steps):
        x = to_float(pool[torch.randint(len(pool), (train.batch_size,), generator=generator)])
        recon, loss = round_trip(x)
        loss = loss + F.l1_loss(recon, x)
        if train.hf_weight > 0:
            loss = loss + train.hf_weight * F.l1_loss(laplacian(recon), laplacian(x))
        adversarial = critic is not None and step >= adv_from
        if adversarial:
            critic.requires_grad_(False)
            loss = loss - train.adv_weight * critic(recon).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if adversarial:
            critic.requires_grad_(True)
            critic_loss = F.relu(1 - critic(x)).mean() + F.relu(1 + critic(recon.detach())).mean()
            critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward()
            critic_opt.step()
        recent = (recent + [F.mse_loss(recon.detach().clamp(0, 1), x).item()])[-50:]
        if progress is not None:
            progress.advance(task)
    psnr = 10 * math.log10(1 / max(sum(recent) / len(recent), 1e-12))
    return {"train_psnr_db": psnr, "final_loss": float(loss.detach()), **asdict(train)}


def heldout_crops(image_paths: Sequence[str | Path], crop: int = 256, seed: int = 0) -> torch.Tensor:
    """One random ``crop`` px uint8 crop of each held-out photo (decoded once, reused for every model)."""
    crops = crop_pool(image_paths, crop, per_image=1, seed=seed)
    if not len(crops):
        raise ValueError(f"no held-out image is at least {crop}px")
    return crops


@torch.no_grad()
def heldout_psnr(ae: Reconstructor, crops: torch.Tensor) -> float:
    """PSNR (dB, 8-bit quantised reconstruction) over :func:`heldout_crops`."""
    from .residuals import MARGIN, residuals

    return psnr_of(residuals(ae, crops, batch_size=4, margin=MARGIN))


def psnr_of(residual: torch.Tensor) -> float:
    """Mean PSNR (dB) of per-image residuals in [0, 1] units."""
    mse = residual.pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return float((10 * torch.log10(1 / mse)).mean())


def train_and_report(
    configs: Sequence[AEConfig],
    train_paths: Sequence[str | Path],
    heldout_paths: Sequence[str | Path],
    settings: AETrainConfig,
    save: Callable[[SmallAutoencoder, dict], Path],
    progress: Progress | None = None,
    eval_crop: int = 256,
) -> dict[str, dict[str, float]]:
    """Train each config, save it with ``save(model, training_settings)`` and measure its held-out PSNR."""
    report = {}
    held = heldout_crops(heldout_paths, eval_crop) if configs else None
    for config in configs:
        start = time.perf_counter()
        model, metrics = train_autoencoder(config, train_paths, settings, progress)
        metrics["train_seconds"] = time.perf_counter() - start
        path = save(model, asdict(settings))
        metrics["heldout_psnr_db"] = heldout_psnr(model, held)
        metrics["file_mb"] = path.stat().st_size / 2**20
        report[config.name] = metrics
    return report


def train_taesana_decoder(
    train_paths: Sequence[str | Path],
    heldout_paths: Sequence[str | Path],
    out: str | os.PathLike,
    settings: AETrainConfig = TAESANA_TRAINING,
    weights_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
    eval_crop: int = 256,
) -> dict[str, float]:
    """Train a 32x decoder for the (frozen) TAESana encoder, save it to ``out`` and report its held-out PSNR."""
    from .autoencoders import TAEAutoencoder, find_weights, taesana_decoder

    start = time.perf_counter()
    encoder_path = find_weights("taesana_encoder.pth", weights_dir)
    encoder = TAEAutoencoder(encoder_path, name="taesana", encoder_kind="taesana").encoder
    decoder = taesana_decoder(latent=encoder[-1].out_channels)
    metrics = train_decoder(encoder, decoder, train_paths, settings, progress, name="taesana decoder")
    metrics["train_seconds"] = time.perf_counter() - start
    path = save_module(decoder, out, {"nirnet_decoder_for": "taesana_encoder.pth"}, asdict(settings))
    model = TAEAutoencoder(encoder_path, path, "taesana", "taesana")
    metrics["heldout_psnr_db"] = heldout_psnr(model, heldout_crops(heldout_paths, eval_crop))
    metrics["file_mb"] = path.stat().st_size / 2**20
    return metrics
