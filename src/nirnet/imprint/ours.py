"""The project's own small autoencoders, built with deliberately different decoders.

Real generators differ most in how their decoders upsample (nearest + conv, transposed convolution, pixel shuffle,
bilinear) and at which stride; each leaves its own periodic pattern. Training a handful of tiny autoencoders that
differ in exactly those choices gives the simulator several distinct imprint sources without any download.

Checkpoints are ``<name>.safetensors`` with the :class:`AEConfig` as JSON in the safetensors metadata.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .autoencoders import Reconstructor

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights" / "autoencoders"
UPSAMPLERS = ("nearest", "deconv", "pixelshuffle", "bilinear")


@dataclass(frozen=True)
class AEConfig:
    name: str
    stride: int = 8  # 4, 8 or 16
    upsample: str = "nearest"  # one of UPSAMPLERS
    kl: bool = False  # variational latent (mean + log-variance) with a KL penalty
    channels: int = 32
    latent_channels: int = 8

    def __post_init__(self) -> None:
        if self.upsample not in UPSAMPLERS:
            raise ValueError(f"upsample must be one of {UPSAMPLERS}, got {self.upsample!r}")
        if self.stride not in (2, 4, 8, 16, 32):
            raise ValueError(f"stride must be a power of two in 2..32, got {self.stride}")


def _upsampler(kind: str, channels: int) -> nn.Module:
    if kind == "nearest":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, channels, 3, padding=1))
    if kind == "bilinear":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
    if kind == "deconv":
        return nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1)
    return nn.Sequential(nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2))


class SmallAutoencoder(Reconstructor):
    """A small convolutional autoencoder; ``config`` fixes its stride, decoder upsampler and latent type."""

    def __init__(self, config: AEConfig) -> None:
        super().__init__()
        self.config = config
        self.name = f"ours:{config.name}"
        self.stride = config.stride
        ch, levels = config.channels, int(math.log2(config.stride))
        enc: list[nn.Module] = [nn.Conv2d(3, ch, 3, padding=1), nn.ReLU()]
        for _ in range(levels):
            enc += [nn.Conv2d(ch, ch, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU()]
        enc.append(nn.Conv2d(ch, config.latent_channels * (2 if config.kl else 1), 3, padding=1))
        if config.kl:
            # Start with a small posterior variance: unit-variance latent noise at initialisation drowns the
            # signal and the decoder settles on the mean colour (seen: 11 dB PSNR at stride 16).
            with torch.no_grad():
                enc[-1].bias[config.latent_channels :].fill_(-8.0)
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(config.latent_channels, ch, 3, padding=1), nn.ReLU()]
        for _ in range(levels):
            dec += [_upsampler(config.upsample, ch), nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU()]
        dec.append(nn.Conv2d(ch, 3, 3, padding=1))
        self.decoder = nn.Sequential(*dec)

    def encode_distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean, log-variance) of the latent; log-variance is ``None`` without a KL latent."""
        h = self.encoder(self._pad(x))
        if not self.config.kl:
            return h, None
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        # Deterministic: the mean of the latent distribution (reconstructions must be repeatable).
        h = self.encoder(x)
        return h.chunk(2, dim=1)[0] if self.config.kl else h

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def save(self, path: str | os.PathLike) -> None:
        """Write ``path`` (.safetensors) atomically with the config in its metadata."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(tmp), metadata={"nirnet_ae_config": json.dumps(asdict(self.config))})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SmallAutoencoder:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            config = AEConfig(**json.loads(handle.metadata()["nirnet_ae_config"]))
        model = cls(config)
        model.load_state_dict(load_file(str(path)))
        return model.requires_grad_(False).eval()


# The shipped set: every decoder type, strides 4/8/16, with and without a KL latent.
DEFAULT_AE_CONFIGS = (
    AEConfig("nearest_s8", stride=8, upsample="nearest"),
    AEConfig("deconv_s4", stride=4, upsample="deconv"),
    AEConfig("pixelshuffle_s16_kl", stride=16, upsample="pixelshuffle", kl=True),
    AEConfig("bilinear_s8_kl", stride=8, upsample="bilinear", kl=True),
    AEConfig("deconv_s8_kl", stride=8, upsample="deconv", kl=True),
)


def list_shipped(folder: str | os.PathLike | None = None) -> list[str]:
    folder = Path(folder) if folder else SHIPPED_DIR
    return sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []


def load_shipped(name: str, folder: str | os.PathLike | None = None) -> SmallAutoencoder:
    path = (Path(folder) if folder else SHIPPED_DIR) / f"{name}.safetensors"
    if not path.is_file():
        raise KeyError(f"no shipped autoencoder {name!r}; shipped: {', '.join(list_shipped(folder)) or 'none'}")
    return SmallAutoencoder.load(path)
