"""What every reconstructor is: an autoencoder seen as a map of [0, 1] RGB images to a latent and back, and where
third-party autoencoder weights are looked up. The registry (:mod:`nirnet.imprint.autoencoders`) and the
project's own autoencoders (:mod:`nirnet.imprint.ours`) both build on this module; it imports neither.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------- weights lookup

WEIGHTS_ENV = "NIRNET_AE_WEIGHTS"


def find_weights(filename: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """Locate a third-party autoencoder file: ``weights_dir``, ``$NIRNET_AE_WEIGHTS``, ``../shared/data/weights``
    (relative to the working directory), ``~/.cache/nirnet/weights``. Raises ``FileNotFoundError`` naming them."""
    candidates = [Path(d) for d in (weights_dir, os.environ.get(WEIGHTS_ENV)) if d]
    candidates += [Path("..") / "shared" / "data" / "weights", Path.home() / ".cache" / "nirnet" / "weights"]
    for folder in candidates:
        if (folder / filename).is_file():
            return folder / filename
    raise FileNotFoundError(
        f"{filename} not found in: {', '.join(str(c) for c in candidates)}. Pass weights_dir=... or set {WEIGHTS_ENV}."
    )


# ---------------------------------------------------------------- base class


class Reconstructor(nn.Module):
    """An autoencoder seen as a reconstructor of [0, 1] RGB images. Subclasses implement ``_encode``/``_decode``
    for inputs whose sides are multiples of ``stride``."""

    name: str = "reconstructor"
    stride: int = 8
    can_decode: bool = True

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = (-height) % self.stride, (-width) % self.stride
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        return x

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent of ``x`` (``N x 3 x H x W`` in [0, 1]); sides are padded up to a multiple of the stride."""
        return self._encode(self._pad(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Image in [0, 1] from a latent."""
        if not self.can_decode:
            raise RuntimeError(f"autoencoder {self.name!r} has no decoder")
        return self._decode(z).clamp(0, 1)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``D(E(x))`` with the shape of ``x``."""
        height, width = x.shape[-2:]
        return self.decode(self.encode(x))[..., :height, :width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(x)
