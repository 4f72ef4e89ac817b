"""Registry of reconstructors: the autoencoders whose round trips leave the imprints we model.

A :class:`Reconstructor` maps RGB images in [0, 1] (``N x 3 x H x W``, float32) to a latent and back. Inputs whose
sides are not multiples of the stride are mirror-padded before encoding and the reconstruction is cropped back, so
``reconstruct(x)`` always has the shape of ``x``.

Entries:

* ``taef2``: the tiny FLUX.2 autoencoder (TAE family), from ``taef2_encoder.pth`` / ``taef2_decoder.pth``;
* ``tae``: any TAE-family pair of state dicts given by path (TAESD, TAESD3, TAEF1, ...: latent width and
  which blocks carry a ``pool`` branch are read from the keys);
* ``taesana_encoder``: the TAESana encoder alone (32x stride; encode only);
* ``taesana``: the TAESana encoder with the 32x decoder this project trained for it;
* ``diffusers``: ``AutoencoderKL`` / ``AutoencoderTiny`` / ``VQModel`` from a local folder or single file
  (optional ``diffusers`` extra);
* ``ours:<name>``: the small autoencoders trained by this project (``nirnet imprint train-ae``) and shipped in
  ``nirnet/weights/autoencoders``.

``create_autoencoder(name, **kwargs)`` builds one; ``list_autoencoders()`` names them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .ours import list_shipped, load_shipped
from .reconstructor import Reconstructor, find_weights

# ---------------------------------------------------------------- TAE family


class _PoolBranch(nn.Sequential):
    def __init__(self, channels: int) -> None:
        super().__init__(
            nn.Conv2d(channels, 4 * channels, 1, bias=False),
            nn.GroupNorm(4, 4 * channels),
            nn.ReLU(),
            nn.Conv2d(4 * channels, channels, 1, bias=False),
        )


class TAEBlock(nn.Module):
    """Residual block of the TAE family: ``relu(convs(x) + x)``, optionally after ``x = x + pool(x)``."""

    def __init__(self, channels: int, pool: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.pool = _PoolBranch(channels) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return F.relu(self.conv(x) + x)


class SoftClamp(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z / 3) * 3


def _conv(cin: int, cout: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


def _pooled_blocks(state: dict[str, torch.Tensor]) -> set[int]:
    return {int(key.split(".")[0]) for key in state if ".pool." in key}


def _add_down_stages(layers: list[nn.Module], pooled: set[int]) -> None:
    """Three times: a stride-2 conv and three blocks (index-aware, so pool branches land where the keys say)."""
    for _ in range(3):
        start = len(layers)
        layers += [_conv(64, 64, stride=2, bias=False)]
        layers += [TAEBlock(64, start + 1 + i in pooled) for i in range(3)]


def tae_encoder(state: dict[str, torch.Tensor]) -> nn.Sequential:
    """The 8x TAE encoder whose layout matches ``state`` (latent width and pool blocks read from the keys)."""
    pooled, latent = _pooled_blocks(state), state["14.weight"].shape[0]
    layers: list[nn.Module] = [_conv(3, 64), TAEBlock(64, 1 in pooled)]
    _add_down_stages(layers, pooled)
    layers.append(_conv(64, latent))
    return nn.Sequential(*layers)


def tae_decoder(state: dict[str, torch.Tensor]) -> nn.Sequential:
    """The 8x TAE decoder whose layout matches ``state``."""
    pooled, latent = _pooled_blocks(state), state["1.weight"].shape[1]
    layers: list[nn.Module] = [SoftClamp(), _conv(latent, 64), nn.ReLU()]
    for _ in range(3):
        start = len(layers)
        layers += [TAEBlock(64, start + i in pooled) for i in range(3)]
        layers += [nn.Upsample(scale_factor=2), _conv(64, 64, bias=False)]
    layers += [TAEBlock(64, len(layers) in pooled), _conv(64, 3)]
    return nn.Sequential(*layers)


def taesana_encoder(state: dict[str, torch.Tensor]) -> nn.Sequential:
    """The 32x TAESana encoder whose layout matches ``state``."""
    pooled, latent = _pooled_blocks(state), state["17.weight"].shape[0]
    layers: list[nn.Module] = [_conv(3, 32, stride=2), nn.ReLU(), _conv(32, 64, stride=2), nn.ReLU()]
    layers.append(TAEBlock(64, 4 in pooled))
    _add_down_stages(layers, pooled)
    layers.append(_conv(64, latent))
    return nn.Sequential(*layers)


def taesana_decoder(latent: int = 32) -> nn.Sequential:
    """A 32x decoder in the TAE style for the TAESana latent. No TAESana decoder is distributed with the encoder we
    have, so this one is ours: three TAE stages as in the 8x decoder, then two light upsampling stages."""
    layers: list[nn.Module] = [SoftClamp(), _conv(latent, 64), nn.ReLU()]
    for _ in range(3):
        layers += [TAEBlock(64), TAEBlock(64), nn.Upsample(scale_factor=2), _conv(64, 64, bias=False)]
    layers += [TAEBlock(64), nn.Upsample(scale_factor=2), _conv(64, 32), nn.ReLU()]
    layers += [nn.Upsample(scale_factor=2), _conv(32, 32), nn.ReLU(), _conv(32, 3)]
    return nn.Sequential(*layers)


TAESANA_DECODER = Path(__file__).resolve().parents[1] / "weights" / "taesana_decoder.safetensors"


def _load_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


class TAEAutoencoder(Reconstructor):
    """A TAE-family encoder (and decoder, if given) loaded from plain ``nn.Sequential`` state dicts."""

    def __init__(
        self,
        encoder_path: str | os.PathLike,
        decoder_path: str | os.PathLike | None = None,
        name: str = "tae",
        encoder_kind: str = "tae8",
    ) -> None:
        """``encoder_kind`` "tae8" (8x, with the TAE 8x decoder) or "taesana" (32x, with :func:`taesana_decoder`)."""
        super().__init__()
        self.name = name
        enc_state = _load_state(encoder_path)
        build = {"tae8": tae_encoder, "taesana": taesana_encoder}[encoder_kind]
        self.encoder = build(enc_state)
        self.encoder.load_state_dict(enc_state)
        self.stride = 32 if encoder_kind == "taesana" else 8
        self.decoder = None
        if decoder_path is not None:
            dec_state = _load_state(decoder_path)
            if encoder_kind == "taesana":
                self.decoder = taesana_decoder(dec_state["1.weight"].shape[1])
            else:
                self.decoder = tae_decoder(dec_state)
            self.decoder.load_state_dict(dec_state)
        self.can_decode = self.decoder is not None
        self.requires_grad_(False).eval()

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


# ---------------------------------------------------------------- diffusers


class DiffusersAutoencoder(Reconstructor):
    """A diffusers ``AutoencoderKL``, ``AutoencoderTiny`` or ``VQModel`` from a local folder or single file.

    diffusers works in [-1, 1] (``AutoencoderTiny`` in [0, 1]); this wrapper converts so that the interface stays
    [0, 1]. The encoder's distribution mode (not a sample) is used, so reconstructions are deterministic.
    """

    def __init__(self, path: str | os.PathLike, kind: str = "AutoencoderKL", name: str | None = None) -> None:
        super().__init__()
        try:
            import diffusers
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise ImportError("the 'diffusers' autoencoders need `pip install nirnet[diffusers]`") from exc
        cls = getattr(diffusers, kind)
        path = Path(path)
        self.model = cls.from_single_file(str(path)) if path.is_file() else cls.from_pretrained(str(path))
        self.model.requires_grad_(False).eval()
        self.kind = kind
        self.name = name or f"diffusers:{path.name}"
        config = self.model.config
        blocks = config.encoder_block_out_channels if kind == "AutoencoderTiny" else config.block_out_channels
        self.stride = 2 ** (len(blocks) - 1)
        self._signed = kind != "AutoencoderTiny"

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 2 - 1 if self._signed else x
        if self.kind == "AutoencoderKL":
            return self.model.encode(x).latent_dist.mode()
        if self.kind == "VQModel":
            return self.model.encode(x).latents
        return self.model.encode(x).latents

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        out = self.model.decode(z).sample
        return (out + 1) / 2 if self._signed else out


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Reconstructor]
    variants: Callable[[], list[str]] | None  # a family named "<name>:<variant>"; None: a single name


_REGISTRY: dict[str, _Entry] = {}


def register_autoencoder(
    name: str, variants: Callable[[], list[str]] | None = None
) -> Callable[[Callable[..., Reconstructor]], Callable[..., Reconstructor]]:
    """Register the decorated factory as ``name`` (called with the caller's keyword arguments), or, with
    ``variants`` (a function listing them), as the family ``name:<variant>`` (called with the variant first)."""

    def wrap(factory: Callable[..., Reconstructor]) -> Callable[..., Reconstructor]:
        if name in _REGISTRY:
            raise ValueError(f"autoencoder {name!r} is registered twice")
        _REGISTRY[name] = _Entry(factory, variants)
        return factory

    return wrap


@register_autoencoder("taef2")
def _taef2(weights_dir: str | os.PathLike | None = None) -> Reconstructor:
    return TAEAutoencoder(
        find_weights("taef2_encoder.pth", weights_dir), find_weights("taef2_decoder.pth", weights_dir), name="taef2"
    )


@register_autoencoder("taesana_encoder")
def _taesana_encoder(weights_dir: str | os.PathLike | None = None) -> Reconstructor:
    return TAEAutoencoder(find_weights("taesana_encoder.pth", weights_dir), name="taesana", encoder_kind="taesana")


@register_autoencoder("taesana")
def _taesana(weights_dir: str | os.PathLike | None = None, decoder_path: str | None = None) -> Reconstructor:
    """The TAESana encoder with the decoder this project trained for it (``nirnet imprint train-ae --taesana``)."""
    decoder = Path(decoder_path) if decoder_path else TAESANA_DECODER
    if not decoder.is_file():
        raise FileNotFoundError(f"no TAESana decoder at {decoder}; train one with `nirnet imprint train-ae --taesana`")
    return TAEAutoencoder(
        find_weights("taesana_encoder.pth", weights_dir), decoder, name="taesana", encoder_kind="taesana"
    )


@register_autoencoder("tae")
def _tae(encoder_path: str, decoder_path: str | None = None, name: str = "tae") -> Reconstructor:
    return TAEAutoencoder(encoder_path, decoder_path, name=name)


@register_autoencoder("diffusers")
def _diffusers(path: str, kind: str = "AutoencoderKL", name: str | None = None) -> Reconstructor:
    return DiffusersAutoencoder(path, kind=kind, name=name)


@register_autoencoder("ours", variants=list_shipped)
def _ours(variant: str, **kwargs) -> Reconstructor:
    """The small autoencoders trained by this project (``nirnet imprint train-ae``), shipped in the package."""
    return load_shipped(variant, **kwargs)


def list_autoencoders() -> list[str]:
    """Registered names, then each family's members as ``<family>:<variant>`` (``ours:<name>``)."""
    single = sorted(n for n, e in _REGISTRY.items() if e.variants is None)
    return single + [f"{n}:{v}" for n, e in sorted(_REGISTRY.items()) if e.variants for v in e.variants()]


def create_autoencoder(name: str, **kwargs) -> Reconstructor:
    """Build a registered reconstructor (``ours:<name>`` loads one of the project's own trained autoencoders)."""
    family, colon, variant = name.partition(":")
    entry = _REGISTRY.get(family)
    if entry is None or bool(colon) != (entry.variants is not None):
        raise KeyError(f"unknown autoencoder {name!r}; known: {', '.join(list_autoencoders())}")
    return entry.factory(variant, **kwargs) if colon else entry.factory(**kwargs)
