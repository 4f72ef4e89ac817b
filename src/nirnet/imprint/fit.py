"""Building the imprint bank: residuals of real crops per autoencoder, Laplace fits, held-out likelihoods."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..data.pool import crop_pool
from .autoencoders import Reconstructor, create_autoencoder
from .bank import BankEntry, ImprintBank
from .copula import fit_colouring_kernel, neighbour_correlations
from .laplace import ClosedFormGaussian, ClosedFormLaplace, evaluate_nll, fit_learned_laplace
from .residuals import MARGIN, cached_residuals


def is_heldout(path: str | Path, fraction: float = 0.2) -> bool:
    """Deterministic split by the SHA-1 of the file name (stable across machines and folder moves)."""
    digest = hashlib.sha1(Path(path).name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


@dataclass(frozen=True)
class FitConfig:
    crop: int = 128  # reconstructed crop; the residual keeps its centre (crop - 2 * MARGIN)
    crops_per_image: int = 2
    max_train_images: int = 300
    max_heldout_images: int = 100
    heldout_fraction: float = 0.2
    steps: int = 400
    hidden: int = 16
    seed: int = 0


@dataclass
class ResidualSet:
    """Images ``x`` (float [0, 1], the residual's region) and residuals ``r`` of one autoencoder."""

    x: torch.Tensor
    r: torch.Tensor


def residual_set(ae: Reconstructor, crops: torch.Tensor, cache_dir: str | os.PathLike | None) -> ResidualSet:
    r = cached_residuals(ae, crops, cache_dir)
    x = crops[..., MARGIN:-MARGIN, MARGIN:-MARGIN].float() / 255
    return ResidualSet(x, r)


def split_crops(paths: Sequence[str | Path], config: FitConfig) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """uint8 crops of the training and held-out images (and how many images each came from)."""
    train = [p for p in paths if not is_heldout(p, config.heldout_fraction)][: config.max_train_images]
    held = [p for p in paths if is_heldout(p, config.heldout_fraction)][: config.max_heldout_images]
    train_crops = crop_pool(train, config.crop, config.crops_per_image, seed=config.seed)
    held_crops = crop_pool(held, config.crop, config.crops_per_image, seed=config.seed + 1)
    return train_crops, held_crops, len(train), len(held)


def fit_bank(
    autoencoders: Sequence[str | Reconstructor],
    image_paths: Sequence[str | Path],
    config: FitConfig = FitConfig(),
    cache_dir: str | os.PathLike | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> ImprintBank:
    """Fit one learned Laplace per autoencoder and report held-out NLLs (learned vs closed form vs Gaussian)."""
    train_crops, held_crops, n_train, n_held = split_crops(image_paths, config)
    entries, models, kernels = [], [], []
    for item in autoencoders:
        ae = create_autoencoder(item) if isinstance(item, str) else item
        if on_progress:
            on_progress(f"residuals of {ae.name}")
        train, held = residual_set(ae, train_crops, cache_dir), residual_set(ae, held_crops, cache_dir)
        if on_progress:
            on_progress(f"fitting {ae.name}")
        learned = fit_learned_laplace(train.x, train.r, ae.stride, config.steps, hidden=config.hidden, seed=config.seed)
        closed = ClosedFormLaplace.fit(train.r, ae.stride)
        gauss = ClosedFormGaussian.fit(train.r, ae.stride)
        nll = {
            "learned_laplace": evaluate_nll(learned, held.x, held.r),
            "closed_form_laplace": evaluate_nll(closed, held.x, held.r),
            "closed_form_gaussian": evaluate_nll(gauss, held.x, held.r, gaussian=True),
        }
        kernel, correlation = _copula_fit(train, held, learned, config.seed)
        extra = {
            "residual_mean_abs": float(train.r.abs().mean()),
            "residual_std": float(train.r.std()),
            "residual_correlation": correlation,
        }
        entries.append(
            BankEntry(ae.name, ae.stride, config.hidden, n_train, len(train_crops), heldout_nll=nll, extra=extra)
        )
        models.append(learned)
        kernels.append(kernel)
    return ImprintBank(entries, models, kernels)


def _copula_fit(
    train: ResidualSet, held: ResidualSet, laplace: torch.nn.Module, seed: int
) -> tuple[torch.Tensor, dict[str, float]]:
    """The colouring kernel of one source (from its training residuals) and the held-out residuals' correlations."""
    return fit_colouring_kernel(train.x, train.r, laplace, seed=seed), neighbour_correlations(held.r)


def add_colouring_kernels(
    bank: ImprintBank,
    autoencoders: Sequence[str | Reconstructor],
    image_paths: Sequence[str | Path],
    config: FitConfig = FitConfig(),
    cache_dir: str | os.PathLike | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> ImprintBank:
    """A new bank with copula colouring kernels fitted on the residuals of ``autoencoders`` (one per entry, matched
    by name); the Laplace models are kept as they are and ``bank`` itself is not changed."""
    train_crops, held_crops, _, _ = split_crops(image_paths, config)
    models = [create_autoencoder(a) if isinstance(a, str) else a for a in autoencoders]
    by_name = {ae.name: ae for ae in models}
    missing = [n for n in bank.names if n not in by_name]
    if missing:
        raise KeyError(f"no autoencoder given for bank entries {missing}")
    entries, kernels = [], []
    for entry, laplace in zip(bank.entries, bank.models):
        if on_progress:
            on_progress(f"colouring kernel of {entry.name}")
        train = residual_set(by_name[entry.name], train_crops, cache_dir)
        held = residual_set(by_name[entry.name], held_crops, cache_dir)
        kernel, correlation = _copula_fit(train, held, laplace, config.seed)
        entries.append(replace(entry, extra={**entry.extra, "residual_correlation": correlation}))
        kernels.append(kernel)
    return ImprintBank(entries, list(bank.models), kernels)


DEFAULT_BANK_AUTOENCODERS = ("taef2",)  # plus the shipped high-fidelity set, see default_bank_sources()


def default_bank_sources() -> list[str]:
    """taef2 and every shipped high-fidelity ``ours:hf_*`` autoencoder of the ``hifi`` family. Other sources stay
    selectable by name (``--ae ours:nearest_s8``, ``--ae taesana``) but are not defaults: the legacy set and the
    TAESana decoder reconstruct at 16-21 dB, so their residual is mostly lost detail rather than decoder structure."""
    from .ours import HIFI_AE_CONFIGS, list_shipped

    shipped = set(list_shipped())
    return list(DEFAULT_BANK_AUTOENCODERS) + [f"ours:{c.name}" for c in HIFI_AE_CONFIGS if c.name in shipped]
