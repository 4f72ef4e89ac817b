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
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .._atomic import atomic_write
from .reconstructor import Reconstructor

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights" / "autoencoders"
UPSAMPLERS = ("nearest", "deconv", "pixelshuffle", "bilinear")


NORMS = ("none", "group")


@dataclass(frozen=True)
class AEConfig:
    name: str
    stride: int = 8  # 2 .. 32
    upsample: str = "nearest"  # one of UPSAMPLERS
    kl: bool = False  # variational latent (mean + log-variance) with a KL penalty
    channels: int = 32
    latent_channels: int = 8
    norm: str = "none"  # "group": GroupNorm after every decoder conv, as in the SD / FLUX VAEs
    res_blocks: int = 0  # residual blocks per decoder level (capacity where texture is made)
    vq_codes: int = 0  # > 0: vector-quantised latent, groups of ``vq_dim`` channels, this many codes per group
    vq_dim: int = 4
    # DC-AE style space-to-channel shortcuts: the encoder adds a linear map of the pixel-unshuffled image to its
    # latent and the decoder adds a pixel-shuffled linear map of the latent to its output. They carry the coarse
    # image, so training reaches a high PSNR quickly, and leave the conv paths to make the detail.
    shortcut: bool = False

    def __post_init__(self) -> None:
        if self.upsample not in UPSAMPLERS:
            raise ValueError(f"upsample must be one of {UPSAMPLERS}, got {self.upsample!r}")
        if self.stride not in (2, 4, 8, 16, 32):
            raise ValueError(f"stride must be a power of two in 2..32, got {self.stride}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.vq_codes and self.kl:
            raise ValueError("a latent is either KL or VQ, not both")
        if self.vq_codes and self.latent_channels % self.vq_dim:
            raise ValueError(f"latent_channels {self.latent_channels} is not a multiple of vq_dim {self.vq_dim}")

    @property
    def bottleneck(self) -> str:
        return "vq" if self.vq_codes else "kl" if self.kl else "plain"


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


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.GroupNorm(min(8, channels), channels) if kind == "group" else nn.Identity()


class ResidualBlock(nn.Module):
    """``x + conv(act(norm(conv(act(norm(x))))))``: the pre-activation block of latent-diffusion decoders."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(norm, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            _norm(norm, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class VectorQuantizer(nn.Module):
    """Product vector quantisation: the latent's channels are split into groups of ``dim``, and each group is
    snapped to the nearest of its own ``codes`` code vectors (one codebook per group, since groups carry very
    different energy). Straight-through gradients; the codebooks learn by the usual codebook + commitment losses
    (:meth:`losses`)."""

    def __init__(self, channels: int, codes: int, dim: int) -> None:
        super().__init__()
        self.dim, self.groups = dim, channels // dim
        self.codebook = nn.Parameter(torch.randn(self.groups, codes, dim) * 0.5)

    def flat(self, z: torch.Tensor) -> torch.Tensor:
        """``N x C x H x W`` -> ``groups x (N H W) x dim``."""
        n, _, h, w = z.shape
        return z.view(n, self.groups, self.dim, h, w).permute(1, 0, 3, 4, 2).reshape(self.groups, -1, self.dim)

    def _unflat(self, flat: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        n, _, h, w = shape
        return flat.view(self.groups, n, h, w, self.dim).permute(1, 0, 4, 2, 3).reshape(shape)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """The nearest code vector of every group of ``z``."""
        flat = self.flat(z)
        index = torch.cdist(flat, self.codebook).argmin(dim=2)  # groups x (N H W)
        codes = torch.gather(self.codebook, 1, index[..., None].expand(-1, -1, self.dim))
        return self._unflat(codes, z.shape)

    def quantize_for_training(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(nearest code vectors with straight-through gradients to ``z``, codebook loss, commitment loss), from one
        nearest-neighbour search."""
        q = self.nearest(z)
        return z + (q - z).detach(), (q - z.detach()).pow(2).mean(), (z - q.detach()).pow(2).mean()


class SmallAutoencoder(Reconstructor):
    """A small convolutional autoencoder; ``config`` fixes its stride, decoder upsampler, normalisation, capacity
    and latent type (plain, KL or VQ)."""

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
        self.encoder = nn.Sequential(*enc)
        self.quantizer = (
            VectorQuantizer(config.latent_channels, config.vq_codes, config.vq_dim) if config.vq_codes else None
        )
        dec: list[nn.Module] = [nn.Conv2d(config.latent_channels, ch, 3, padding=1), nn.ReLU()]
        for _ in range(levels):
            dec += [ResidualBlock(ch, config.norm) for _ in range(config.res_blocks)]
            dec += [_upsampler(config.upsample, ch), nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1)]
            dec += [_norm(config.norm, ch)] if config.norm != "none" else []
            dec += [nn.ReLU()]
        dec.append(nn.Conv2d(ch, 3, 3, padding=1))
        self.decoder = nn.Sequential(*dec)
        if config.shortcut:
            patch = 3 * config.stride**2
            self.enc_shortcut = nn.Conv2d(patch, config.latent_channels, 1)
            self.dec_shortcut = nn.Conv2d(config.latent_channels, patch, 1)
            # The conv paths start silent, so the untrained model is exactly its shortcut (see init_shortcuts).
            for last in (self.encoder[-1], self.decoder[-1]):
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
        if config.kl:
            # Start with a small posterior variance: unit-variance latent noise at initialisation drowns the
            # signal and the decoder settles on the mean colour (seen: 11 dB PSNR at stride 16).
            with torch.no_grad():
                self.encoder[-1].bias[config.latent_channels :].fill_(-8.0)

    @torch.no_grad()
    def init_shortcuts(self, images: torch.Tensor) -> None:
        """Set the shortcuts to the principal components of ``stride`` x ``stride`` patches of ``images`` (float
        [0, 1]): a transform code that already reconstructs well, which training then refines."""
        patches = F.pixel_unshuffle(images * 2 - 1, self.stride).permute(0, 2, 3, 1).flatten(0, 2)
        mean = patches.mean(0)
        basis = torch.linalg.svd(patches - mean, full_matrices=False).Vh[: self.config.latent_channels]
        self.enc_shortcut.weight.copy_(basis[:, :, None, None])
        self.enc_shortcut.bias.copy_(-basis @ mean)
        self.dec_shortcut.weight.copy_(basis.T[:, :, None, None])
        self.dec_shortcut.bias.copy_(mean)

    def _encoder_out(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        if self.config.shortcut:
            lift = self.enc_shortcut(F.pixel_unshuffle(x * 2 - 1, self.stride))
            # the KL latent's log-variance half gets no shortcut
            h = torch.cat([h[:, : lift.shape[1]] + lift, h[:, lift.shape[1] :]], dim=1)
        return h

    def encode_distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean, log-variance) of the latent before quantisation; log-variance is ``None`` without a KL latent."""
        h = self._encoder_out(self._pad(x))
        if not self.config.kl:
            return h, None
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        # Deterministic: the mean of the latent distribution (reconstructions must be repeatable).
        h = self._encoder_out(x)
        if self.quantizer is not None:
            return self.quantizer.nearest(h)  # exactly the code vectors (no straight-through arithmetic)
        return h.chunk(2, dim=1)[0] if self.config.kl else h

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder(z)
        if self.config.shortcut:
            out = out + (F.pixel_shuffle(self.dec_shortcut(z), self.stride) + 1) / 2
        return out

    def save(self, path: str | os.PathLike, training: dict | None = None) -> Path:
        """Write ``path`` (.safetensors) atomically with the config (and how it was trained) in its metadata."""
        return save_module(self, path, {"nirnet_ae_config": json.dumps(asdict(self.config))}, training)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SmallAutoencoder:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            config = AEConfig(**json.loads(handle.metadata()["nirnet_ae_config"]))
        model = cls(config)
        model.load_state_dict(load_file(str(path)))
        return model.requires_grad_(False).eval()


def save_module(module: nn.Module, path: str | os.PathLike, metadata: dict[str, str], training: dict | None) -> Path:
    """A module's state dict as safetensors, atomically, with string metadata (+ the training settings as JSON)."""
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    if training is not None:
        metadata = {**metadata, "nirnet_training": json.dumps(training)}
    return atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))


# The first shipped set (L1 only, narrow latents): every decoder type, strides 4/8/16, with and without a KL latent.
# Their residual is mostly lost detail (16-20 dB); kept selectable by name, not in the default bank.
LEGACY_AE_CONFIGS = (
    AEConfig("nearest_s8", stride=8, upsample="nearest"),
    AEConfig("deconv_s4", stride=4, upsample="deconv"),
    AEConfig("pixelshuffle_s16_kl", stride=16, upsample="pixelshuffle", kl=True),
    AEConfig("bilinear_s8_kl", stride=8, upsample="bilinear", kl=True),
    AEConfig("deconv_s8_kl", stride=8, upsample="deconv", kl=True),
)


# The high-fidelity set (``nirnet imprint train-ae --family hifi``): wide latents and decoders trained with
# high-frequency and adversarial losses, so that the residual is decoder structure rather than blur. Together they
# cover the axes on which real latent decoders differ: upsampler, latent width, stride, normalisation, KL / VQ.
_HF = {"channels": 48, "res_blocks": 1, "shortcut": True}
HIFI_AE_CONFIGS = (
    AEConfig("hf_nearest_s8_c16_gn_kl", stride=8, upsample="nearest", kl=True, latent_channels=16, norm="group", **_HF),
    AEConfig("hf_deconv_s8_c16_vq", stride=8, upsample="deconv", latent_channels=16, vq_codes=256, vq_dim=2, **_HF),
    AEConfig("hf_pixelshuffle_s16_c32_gn_kl", stride=16, upsample="pixelshuffle", kl=True, latent_channels=32,
             norm="group", **_HF),
    AEConfig("hf_bilinear_s8_c32_kl", stride=8, upsample="bilinear", kl=True, latent_channels=32, **_HF),
    AEConfig("hf_pixelshuffle_s4_c4_kl", stride=4, upsample="pixelshuffle", kl=True, latent_channels=4, **_HF),
    AEConfig("hf_deconv_s16_c32_gn", stride=16, upsample="deconv", latent_channels=32, norm="group", **_HF),
)  # fmt: skip
# The Stable Diffusion 1.x / SDXL latent shape (4 channels at stride 8), trained like the set above. At our budget it
# reconstructs at 22.6 dB, below the 23 dB floor of a bank source, so it ships but is not in the default bank.
HIFI_EXTRA_CONFIGS = (
    AEConfig("hf_nearest_s8_c4_gn_kl", stride=8, upsample="nearest", kl=True, latent_channels=4, norm="group", **_HF),
)  # fmt: skip


def list_shipped(folder: str | os.PathLike | None = None) -> list[str]:
    folder = Path(folder) if folder else SHIPPED_DIR
    return sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []


def load_shipped(name: str, folder: str | os.PathLike | None = None) -> SmallAutoencoder:
    path = (Path(folder) if folder else SHIPPED_DIR) / f"{name}.safetensors"
    if not path.is_file():
        raise KeyError(f"no shipped autoencoder {name!r}; shipped: {', '.join(list_shipped(folder)) or 'none'}")
    return SmallAutoencoder.load(path)
