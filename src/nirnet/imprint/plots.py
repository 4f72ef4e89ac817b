"""Pictures of imprints: PCA of spectral imprint features (the paper's Fig. 4) and residual panels."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch


def radial_spectrum(r: torch.Tensor, bins: int = 32) -> np.ndarray:
    """Imprint feature: log of the radially averaged power spectrum of each residual (grey), ``N x bins``.

    Periodic decoder artefacts show up as peaks at multiples of ``1 / stride``; the overall level tells the
    imprint's strength.
    """
    grey = r.float().mean(dim=1)
    grey = grey - grey.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fftshift(torch.fft.fft2(grey).abs().pow(2), dim=(-2, -1))
    h, w = grey.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    radius = torch.sqrt((yy.float() / (h / 2)) ** 2 + (xx.float() / (w / 2)) ** 2) / np.sqrt(2)
    index = (radius * bins).long().clamp(max=bins - 1).flatten()
    flat = power.flatten(1)
    sums = torch.zeros(len(flat), bins).index_add_(1, index, flat)
    counts = torch.bincount(index, minlength=bins).clamp_min(1)
    return torch.log10(sums / counts + 1e-12).numpy()


def spectrum_gaps(groups: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Per source, the RMS difference (in decades of power) between the mean log spectrum of its real residuals
    and of its single-source simulated imprints (``name`` and ``sim:name`` in ``groups``); 0 = same spectrum."""
    return {
        name: float(np.sqrt(np.mean((groups[name].mean(0) - groups[f"sim:{name}"].mean(0)) ** 2)))
        for name in groups
        if f"sim:{name}" in groups
    }


def plot_imprint_pca(
    groups: Mapping[str, np.ndarray], out_path: str | os.PathLike, title: str = "Imprint features (PCA)"
) -> None:
    """Scatter of the first two principal components of ``{label: N x D features}``; labels starting with
    ``sim:`` are drawn as crosses, ``fused`` in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    labels = list(groups)
    pca = PCA(n_components=2, random_state=0).fit(np.concatenate([groups[k] for k in labels]))
    fig, ax = plt.subplots(figsize=(7, 6))
    colours = {}
    palette = plt.get_cmap("tab10")
    for label in labels:
        base = label.removeprefix("sim:")
        if base not in colours and label != "fused":
            colours[base] = palette(len(colours) % 10)
    for label in labels:
        points = pca.transform(groups[label])
        if label == "fused":
            ax.scatter(points[:, 0], points[:, 1], s=10, c="0.6", alpha=0.5, label="fused + extrapolated (simulated)")
        elif label.startswith("sim:"):
            base = label.removeprefix("sim:")
            ax.scatter(points[:, 0], points[:, 1], s=18, marker="x", color=colours[base], label=f"{base} (simulated)")
        else:
            ax.scatter(points[:, 0], points[:, 1], s=14, color=colours[label], alpha=0.8, label=f"{label} (real)")
    ax.set_xlabel(f"PC 1 ({pca.explained_variance_ratio_[0]:.0%})")
    ax.set_ylabel(f"PC 2 ({pca.explained_variance_ratio_[1]:.0%})")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)


def plot_residual_panel(
    image: torch.Tensor,
    residuals: Mapping[str, torch.Tensor],
    simulated: torch.Tensor,
    out_path: str | os.PathLike,
) -> None:
    """One row: the image (``3 x H x W`` in [0, 1]), its residual per autoencoder and a simulated imprint.

    Residuals are shown as grey maps scaled to +-3 standard deviations, so weak and strong imprints are both
    visible; the title gives each one's mean absolute value in 8-bit levels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("image", None)] + list(residuals.items()) + [("simulated imprint", simulated)]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    for ax, (name, r) in zip(np.atleast_1d(axes), panels):
        if r is None:
            ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_title(name, fontsize=8)
        else:
            grey = r.float().mean(dim=0).numpy()
            scale = 3 * grey.std() + 1e-8
            ax.imshow(grey, cmap="gray", vmin=-scale, vmax=scale)
            ax.set_title(f"{name}\n|r| = {r.abs().mean().item() * 255:.2f}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)


def imprint_pictures(
    sim,
    autoencoders: Sequence,
    crops: torch.Tensor,
    cache_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    seed: int = 0,
) -> dict[str, float]:
    """Draw ``imprint_pca.png`` (real residuals per source, their single-source simulations and fused samples) and
    ``residuals.png`` into ``out_dir`` from uint8 ``crops``; returns each source's real-vs-simulated spectrum gap.
    ``autoencoders``: one per bank entry of the simulator ``sim``, in order (names or reconstructors)."""
    from .autoencoders import create_autoencoder
    from .fit import residual_set

    generator = torch.Generator().manual_seed(seed)
    groups, residual_maps = {}, {}
    x = None
    for k, (name, ae) in enumerate(zip(sim.bank.names, autoencoders)):
        held = residual_set(create_autoencoder(ae) if isinstance(ae, str) else ae, crops, cache_dir)
        x = held.x
        groups[name] = radial_spectrum(held.r)
        residual_maps[name] = held.r[0]
        one_hot = torch.zeros(len(held.x), len(sim.bank))
        one_hot[:, k] = 1
        groups[f"sim:{name}"] = radial_spectrum(sim(held.x, generator, weights=one_hot).noise)
    fused = sim(x, generator)
    groups["fused"] = radial_spectrum(fused.noise)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_imprint_pca(groups, out_dir / "imprint_pca.png")
    plot_residual_panel(x[0], residual_maps, fused.noise[0], out_dir / "residuals.png")
    return spectrum_gaps(groups)
