"""Self-supervised denoising pretraining of the noise extractor (METHOD.md section 2, DnCNN-style).

The extractor ``N`` is trained to predict the Gaussian noise added to clean crops of real photos:
``N(x + n) ~ n``. A network that has learnt this separates noise from content, so on an unmodified image its output
is what a denoiser would remove (sensor noise, demosaicing and decoder patterns) rather than a high-pass copy of the
scene. The detector then starts from these weights (``init.noise_extractor`` in a training config) and keeps
training them.

Also here: two plain statistics that say whether a noise map "looks like noise" (:func:`noise_map_stats`), used to
compare extractors in ``benchmarks/noise_maps.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .._atomic import atomic_write, atomic_write_text
from ..data.pool import crop_pool, to_float
from ..imprint.train_ae import cosine_schedule, psnr_of
from ..models.extractor import NoiseExtractor

WEIGHTS_FILE = "denoiser.safetensors"
CONFIG_FILE = "denoiser.json"


@dataclass(frozen=True)
class DenoiseConfig:
    width: int = 16
    depth: int = 5
    crop: int = 64  # training crops: the receptive field of a depth-5 network is 11 px, so small crops suffice
    crops_per_image: int = 8
    sigma: tuple[float, float] = (1.0, 25.0)  # noise standard deviation range, in 8-bit levels
    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0


def add_noise(x: torch.Tensor, sigma: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise for ``x`` (``N x 3 x H x W`` in [0, 1]), one standard deviation per image (blind denoising)."""
    low, high = sigma
    levels = low + (high - low) * torch.rand(len(x), 1, 1, 1, generator=generator)
    return torch.randn(x.shape, generator=generator) * levels / 255


def pretrain_denoiser(
    image_paths: Sequence[str | Path],
    config: DenoiseConfig = DenoiseConfig(),
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[NoiseExtractor, dict[str, float]]:
    """Train a :class:`NoiseExtractor` to predict added noise on crops of ``image_paths``; returns it (eval mode)
    and training metrics."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    pool = crop_pool(image_paths, config.crop, per_image=config.crops_per_image, seed=config.seed)
    if len(pool) < config.batch_size:
        raise ValueError(f"only {len(pool)} crops of {config.crop} px could be made from {len(image_paths)} images")
    extractor = NoiseExtractor(config.width, config.depth)
    # Start from "no noise" (a zero last layer): a random last layer starts with maps of the scene ten times the
    # noise's energy, and the first few hundred steps would go into unlearning them.
    last = extractor.net[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    optimizer = torch.optim.Adam(extractor.parameters(), lr=config.lr)
    schedule = cosine_schedule(optimizer, config.steps)
    extractor.train()
    recent: list[float] = []
    for step in range(config.steps):
        x = to_float(pool[torch.randint(len(pool), (config.batch_size,), generator=generator)])
        # Random flips and 90-degree turns: noise has no orientation, content does.
        x = torch.rot90(x, int(torch.randint(4, (1,), generator=generator)), dims=(-2, -1))
        noise = add_noise(x, config.sigma, generator)
        loss = F.mse_loss(extractor(x + noise), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        recent = (recent + [float(loss.detach())])[-50:]
        if on_step is not None:
            on_step(step, recent[-1])
    extractor.eval()
    return extractor, {"train_mse": sum(recent) / len(recent), "crops": len(pool)}


@torch.no_grad()
def denoising_psnr(extractor: NoiseExtractor, crops: torch.Tensor, sigma: float, seed: int = 0) -> dict[str, float]:
    """PSNR (dB) of noisy crops and of their denoised versions ``y - N(y)`` at noise level ``sigma`` (8-bit levels)."""
    generator = torch.Generator().manual_seed(seed)
    x = to_float(crops)
    noisy = x + torch.randn(x.shape, generator=generator) * sigma / 255
    denoised = noisy - extractor.eval()(noisy)
    return {"noisy_db": psnr_of(noisy.clamp(0, 1) - x), "denoised_db": psnr_of(denoised.clamp(0, 1) - x)}


def _laplacian(x: torch.Tensor) -> torch.Tensor:
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=x.shape[1])


def noise_map_stats(images: torch.Tensor, noise: torch.Tensor) -> dict[str, float]:
    """How much of the scene a noise map carries. ``images`` and ``noise``: ``N x 3 x H x W``.

    - ``edge_correlation``: |Pearson correlation| between the map and the image's Laplacian, mean over images and
      channels. A high-pass filter of the scene scores near 1; noise independent of the scene near 0.
    - ``low_freq_share``: the fraction of the map's power below a quarter of the Nyquist frequency (radially).
      White noise puts about 5 % there; scene structure (shading, object outlines) puts much more.
    """
    lap = _laplacian(images).flatten(2)
    n = noise.flatten(2)
    lap = lap - lap.mean(-1, keepdim=True)
    n = n - n.mean(-1, keepdim=True)
    corr = (lap * n).sum(-1) / (lap.norm(dim=-1) * n.norm(dim=-1)).clamp_min(1e-12)
    power = torch.fft.fft2(noise - noise.mean(dim=(-2, -1), keepdim=True)).abs().pow(2).mean(dim=(0, 1))
    fy = torch.fft.fftfreq(noise.shape[-2]).abs()[:, None]
    fx = torch.fft.fftfreq(noise.shape[-1]).abs()[None, :]
    low = torch.sqrt(fx**2 + fy**2) < 0.125  # a quarter of the Nyquist frequency (0.5 cycles per pixel)
    return {
        "edge_correlation": float(corr.abs().mean()),
        "low_freq_share": float(power[low].sum() / power.sum().clamp_min(1e-12)),
    }


def save_denoiser(extractor: NoiseExtractor, config: DenoiseConfig, report: dict, folder: str | Path) -> Path:
    """``folder/denoiser.safetensors`` (the extractor's state) + ``folder/denoiser.json`` (config and report)."""
    folder = Path(folder)
    state = {k: v.detach().contiguous() for k, v in extractor.state_dict().items()}
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(state, tmp))
    atomic_write_text(folder / CONFIG_FILE, json.dumps({"config": asdict(config), "report": report}, indent=1))
    return folder / WEIGHTS_FILE


def denoiser_file(path: str | Path) -> Path:
    """The weights file of a saved denoiser: ``path`` itself, or ``path/denoiser.safetensors`` for a folder."""
    path = Path(path)
    return path / WEIGHTS_FILE if path.is_dir() else path


def load_denoiser_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state saved by :func:`save_denoiser`; ``path`` is the folder or the ``.safetensors`` file."""
    file = denoiser_file(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no pretrained denoiser (make one with `nirnet pretrain-denoiser`)")
    return load_file(str(file))


def init_noise_extractor(extractor: NoiseExtractor, path: str | Path) -> None:
    """Load a pretrained denoiser into ``extractor``; a clear error when the shapes (width, depth) differ."""
    state = load_denoiser_state(path)
    own = extractor.state_dict()
    mismatched = sorted(set(own) ^ set(state)) + [k for k in own if k in state and own[k].shape != state[k].shape]
    if mismatched:
        raise ValueError(
            f"{path}: the pretrained denoiser does not fit this model's noise extractor (differs at "
            f"{', '.join(mismatched[:3])}); set model_overrides.noise_width/noise_depth to the denoiser's"
        )
    extractor.load_state_dict(state)


def evaluate_denoiser(extractor: NoiseExtractor, crops: torch.Tensor, sigmas: Sequence[float] = (5, 15, 25)) -> dict:
    """Held-out report: denoising PSNR at each ``sigma`` and :func:`noise_map_stats` of ``N`` on the clean crops."""
    report: dict = {f"sigma_{s:g}": denoising_psnr(extractor, crops, s) for s in sigmas}
    with torch.no_grad():
        images = to_float(crops)
        report["clean_noise_map"] = noise_map_stats(images, extractor.eval()(images))
    report["heldout_crops"] = len(crops)
    return report


def noise_panel(images: torch.Tensor, noise_maps: Sequence[torch.Tensor], path: str | Path) -> Path:
    """A PNG with one row per image: the image, then each noise map (each scaled to +-3 sd around mid-grey)."""
    import numpy as np
    from PIL import Image

    from ..data.tensors import to_uint8_array
    from ..render import residual_to_uint8

    rows = []
    for i, image in enumerate(images):
        tiles = [to_uint8_array(image)] + [residual_to_uint8(m[i].permute(1, 2, 0).numpy()) for m in noise_maps]
        rows.append(np.concatenate(tiles, axis=1))
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    return atomic_write(path, lambda tmp: grid.save(tmp, format="PNG"))
