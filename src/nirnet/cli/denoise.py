"""`nirnet pretrain-denoiser`: self-supervised denoising pretraining of the noise extractor."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress

from nirnet.cli._common import fail

console = Console()


def pretrain_denoiser(
    data: Path = typer.Argument(..., help="Folder of real photos (searched recursively) or a dataset (label 0 used)."),
    out: Path = typer.Option(Path("runs/denoiser"), help="Output folder (denoiser.safetensors, denoiser.json, PNG)."),
    width: int = typer.Option(16, help="Channels of the extractor; must match the model's noise_width."),
    depth: int = typer.Option(5, help="Convolution layers of the extractor; must match the model's noise_depth."),
    steps: int = typer.Option(1500, help="Optimisation steps (cosine learning-rate decay)."),
    batch_size: int = typer.Option(32, help="Crops per step."),
    crop: int = typer.Option(64, help="Side of the training crops, native resolution."),
    sigma_max: float = typer.Option(25.0, help="Largest added noise standard deviation, in 8-bit levels."),
    lr: float = typer.Option(2e-3, help="Peak learning rate (Adam)."),
    limit: int = typer.Option(None, help="Use at most this many images."),
    seed: int = typer.Option(0, help="Random seed (crops, noise, initial weights)."),
) -> None:
    """Train the noise extractor as a blind Gaussian denoiser (DnCNN residual learning: it predicts the added
    noise) on the training split of real photos, and report held-out denoising PSNR and how much scene structure
    its noise map keeps. Start a detector from it with `init.noise_extractor=OUT` and
    `model_overrides.noise_width=WIDTH model_overrides.noise_depth=DEPTH` in `nirnet train`."""
    from nirnet.data.datasets import real_image_paths
    from nirnet.data.pool import crop_pool
    from nirnet.engine.denoise import DenoiseConfig, evaluate_denoiser, save_denoiser
    from nirnet.engine.denoise import pretrain_denoiser as run_pretraining
    from nirnet.imprint.fit import is_heldout

    if min(width, depth - 1, steps, batch_size, crop - 15) < 1 or not 0 < sigma_max <= 100:
        fail("width, steps and batch size must be >= 1, depth >= 2, crop >= 16 and 0 < sigma-max <= 100")
    if not data.exists():
        fail(f"{data} does not exist")
    paths = real_image_paths([data], limit)
    train_paths = [p for p in paths if not is_heldout(p)]
    heldout_paths = [p for p in paths if is_heldout(p)][:100]
    if not train_paths or not heldout_paths:
        fail(f"{data}: need images on both sides of the held-out split (found {len(paths)} images)")
    config = DenoiseConfig(
        width, depth, crop, sigma=(1.0, sigma_max), steps=steps, batch_size=batch_size, lr=lr, seed=seed
    )
    console.print(f"{len(train_paths)} training and {len(heldout_paths)} held-out images")
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("pretrain denoiser", total=steps)
            extractor, metrics = run_pretraining(
                train_paths, config, on_step=lambda step, loss: progress.update(task, completed=step + 1)
            )
    except ValueError as exc:
        fail(exc)
    report = {"train": metrics, "heldout": evaluate_denoiser(extractor, crop_pool(heldout_paths, 128, seed=seed))}
    save_denoiser(extractor, config, report, out)
    console.print(json.dumps(report["heldout"], indent=1))
    console.print(f"denoiser: {out}")
