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
    laplace_from: ImprintBank | None = None,
) -> ImprintBank:
    """Fit one learned Laplace and one copula colouring kernel per autoencoder, and report held-out NLLs (learned
    vs closed form vs Gaussian).

    With ``laplace_from``, its Laplace models and reports are kept (matched by name, in its order) and only the
    colouring kernels are fitted: how a bank fitted before the copula sampler existed gains it. That bank itself is
    not changed."""
    train_crops, held_crops, n_train, _ = split_crops(image_paths, config)
    models = [create_autoencoder(a) if isinstance(a, str) else a for a in autoencoders]
    if laplace_from is not None:
        by_name = {ae.name: ae for ae in models}
        missing = [n for n in laplace_from.names if n not in by_name]
        if missing:
            raise KeyError(f"no autoencoder given for bank entries {missing}")
        models = [by_name[n] for n in laplace_from.names]
    entries, laplaces, kernels = [], [], []
    for i, ae in enumerate(models):
        if on_progress:
            on_progress(f"residuals of {ae.name}")
        train, held = residual_set(ae, train_crops, cache_dir), residual_set(ae, held_crops, cache_dir)
        if on_progress:
            on_progress(f"fitting {ae.name}" if laplace_from is None else f"fitting the colouring kernel of {ae.name}")
        if laplace_from is None:
            learned, entry = _fit_laplace(ae, train, held, config, n_train, len(train_crops))
        else:
            learned, entry = laplace_from.models[i], laplace_from.entries[i]
        kernel = fit_colouring_kernel(train.x, train.r, learned, seed=config.seed)
        entries.append(replace(entry, extra={**entry.extra, "residual_correlation": neighbour_correlations(held.r)}))
        laplaces.append(learned)
        kernels.append(kernel)
    return ImprintBank(entries, laplaces, kernels)


def _fit_laplace(
    ae: Reconstructor, train: ResidualSet, held: ResidualSet, config: FitConfig, n_images: int, n_crops: int
) -> tuple[torch.nn.Module, BankEntry]:
    """The learned Laplace of one source and its bank entry (held-out NLLs against the closed forms)."""
    learned = fit_learned_laplace(train.x, train.r, ae.stride, config.steps, hidden=config.hidden, seed=config.seed)
    closed = ClosedFormLaplace.fit(train.r, ae.stride)
    gauss = ClosedFormGaussian.fit(train.r, ae.stride)
    nll = {
        "learned_laplace": evaluate_nll(learned, held.x, held.r),
        "closed_form_laplace": evaluate_nll(closed, held.x, held.r),
        "closed_form_gaussian": evaluate_nll(gauss, held.x, held.r, gaussian=True),
    }
    extra = {"residual_mean_abs": float(train.r.abs().mean()), "residual_std": float(train.r.std())}
    return learned, BankEntry(ae.name, ae.stride, config.hidden, n_images, n_crops, heldout_nll=nll, extra=extra)


DEFAULT_BANK_AUTOENCODERS = ("taef2",)  # plus the shipped high-fidelity set, see default_bank_sources()


def default_bank_sources() -> list[str]:
    """taef2 and every shipped high-fidelity ``ours:hf_*`` autoencoder of the ``hifi`` family. Other sources stay
    selectable by name (``--ae ours:nearest_s8``, ``--ae taesana``) but are not defaults: the legacy set and the
    TAESana decoder reconstruct at 16-21 dB, so their residual is mostly lost detail rather than decoder structure."""
    from .ours import HIFI_AE_CONFIGS, list_shipped

    shipped = set(list_shipped())
    return list(DEFAULT_BANK_AUTOENCODERS) + [f"ours:{c.name}" for c in HIFI_AE_CONFIGS if c.name in shipped]
