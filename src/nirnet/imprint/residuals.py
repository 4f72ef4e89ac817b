"""Residuals ``r_k = x - D_k(E_k(x))`` of real crops, batched and optionally cached on disk.

Autoencoders are slow on a CPU (about a second per photo for TAEF2), so everything downstream (the Laplace fits,
the imprint bank, benchmarks) reads residuals from the cache instead of running the autoencoder again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .._atomic import atomic_write
from .autoencoders import Reconstructor

#: Reconstruct with this margin around each crop and keep the centre, so padding effects at the borders of the
#: autoencoder's input do not enter the residual. A multiple of every stride we use (4, 8, 16), so the decoder
#: grid stays aligned with the crop's top-left corner.
MARGIN = 16


@torch.no_grad()
def reconstruct_batched(ae: Reconstructor, x: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """``ae.reconstruct`` over ``x`` (float [0, 1]) in batches."""
    return torch.cat([ae.reconstruct(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def residuals(ae: Reconstructor, crops: torch.Tensor, batch_size: int = 16, margin: int = MARGIN) -> torch.Tensor:
    """Residuals of the centre of uint8 ``crops`` (``N x 3 x S x S``): ``N x 3 x (S-2m) x (S-2m)`` float32.

    The reconstruction is quantised to 8 bits first, as a generator's output would be saved.
    """
    x = crops.float() / 255
    recon = torch.round(reconstruct_batched(ae, x, batch_size) * 255) / 255
    r = x - recon
    return r[..., margin : r.shape[-2] - margin, margin : r.shape[-1] - margin].contiguous()


def _key(ae_name: str, crops: torch.Tensor, margin: int) -> str:
    digest = hashlib.sha1(crops.numpy().tobytes())
    digest.update(f"{ae_name}|{margin}|{tuple(crops.shape)}".encode())
    return digest.hexdigest()[:20]


def cached_residuals(
    ae: Reconstructor,
    crops: torch.Tensor,
    cache_dir: str | os.PathLike | None,
    batch_size: int = 16,
    margin: int = MARGIN,
) -> torch.Tensor:
    """:func:`residuals`, read from / written to ``cache_dir`` (keyed by autoencoder name and crop content)."""
    if cache_dir is None:
        return residuals(ae, crops, batch_size, margin)
    path = Path(cache_dir) / f"residuals-{ae.name.replace(':', '_')}-{_key(ae.name, crops, margin)}.safetensors"
    if path.is_file():
        return load_file(str(path))["r"].float()
    r = residuals(ae, crops, batch_size, margin)
    # float16 keeps 1/255 steps exactly enough and halves the disk
    atomic_write(path, lambda tmp: save_file({"r": r.half()}, tmp))
    return r.half().float()
