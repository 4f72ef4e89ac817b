"""`nirnet imprint ...`: the Noise-based Imprint Simulator (train autoencoders, fit the bank, sample, plot)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress

from nirnet.cli._common import fail, output_console
from nirnet.data.datasets import real_image_paths

app = typer.Typer(
    rich_markup_mode="markdown",
    help="The Noise-based Imprint Simulator: autoencoders, imprint bank, sampling, plots.",
    no_args_is_help=True,
)
console = Console()


def _image_paths(root: Path, limit: int | None) -> list[Path]:
    return real_image_paths([root], limit)


def _autoencoders(names: list[str], weights_dir: Path | None) -> list:
    """Names as given, or built with ``weights_dir`` for the third-party ones when a folder is named."""
    from nirnet.imprint.autoencoders import create_autoencoder

    if not weights_dir:
        return list(names)
    return [n if n.startswith("ours:") else create_autoencoder(n, weights_dir=weights_dir) for n in names]


@app.command("train-ae")
def train_ae(
    data: Path = typer.Argument(..., help="Folder of real photos (searched recursively) or a dataset (label 0 used)."),
    out: Path = typer.Option(
        Path("runs/autoencoders"), help="Output folder; never the package's own weights unless named explicitly."
    ),
    family: str = typer.Option(
        "hifi",
        help="Config set: 'hifi' (decoders trained with high-frequency and adversarial losses, the default bank's "
        "sources), 'hifi-extra' (the SD-shaped 4-channel stride-8 one, below the PSNR floor) or 'legacy' (the "
        "first, L1-only set).",
    ),
    names: list[str] = typer.Option(None, "--name", help="Train only these configs of the family (default: all)."),
    taesana: bool = typer.Option(False, "--taesana", help="Also train the 32x decoder for the TAESana encoder."),
    only_taesana: bool = typer.Option(False, "--only-taesana", help="Train the TAESana decoder and nothing else."),
    steps: int = typer.Option(None, help="Optimisation steps per autoencoder (default: the family's)."),
    batch_size: int = typer.Option(None, help="Crops per step (default: the family's)."),
    crop: int = typer.Option(None, help="Crop side in pixels, native resolution (default: the family's)."),
    lr: float = typer.Option(None, help="Peak learning rate, cosine decay (default: the family's)."),
    limit: int = typer.Option(None, help="Use at most this many images."),
    eval_crop: int = typer.Option(256, help="Side of the held-out crop (one per photo) that PSNR is measured on."),
    weights_dir: Path = typer.Option(None, help="Folder with taesana_encoder.pth (for --taesana)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Train the project's own autoencoders on the training split of real photos (the SHA-1 rule of `imprint fit`
    holds photos out) and report each one's held-out PSNR; writes OUT/NAME.safetensors and OUT/report.json."""
    from dataclasses import replace

    from nirnet._atomic import atomic_write_text
    from nirnet.imprint.fit import is_heldout
    from nirnet.imprint.train_ae import AE_FAMILIES, TAESANA_TRAINING, train_and_report, train_taesana_decoder

    if family not in AE_FAMILIES:
        fail(f"unknown family {family!r}; known: {', '.join(AE_FAMILIES)}")
    family_configs, settings = AE_FAMILIES[family]
    configs = [] if only_taesana else [c for c in family_configs if not names or c.name in names]
    if names and not configs:
        fail(f"no config named {', '.join(names)} in family {family!r}; known: {[c.name for c in family_configs]}")
    overrides = {"steps": steps, "batch_size": batch_size, "crop": crop, "lr": lr, "seed": seed}
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    paths = _image_paths(data, limit)
    train_paths = [p for p in paths if not is_heldout(p)]
    heldout_paths = [p for p in paths if is_heldout(p)][:100]
    if not train_paths or not heldout_paths:
        fail(
            f"{data}: need photos on both sides of the held-out split (found {len(train_paths)} / {len(heldout_paths)})"
        )
    with Progress(console=console) as progress:
        report = train_and_report(
            configs,
            train_paths,
            heldout_paths,
            settings,
            lambda m, t: m.save(out / f"{m.config.name}.safetensors", t),
            progress,
            eval_crop,
        )
        if taesana or only_taesana:
            tae_settings = replace(TAESANA_TRAINING, **{k: v for k, v in overrides.items() if v is not None})
            report["taesana"] = train_taesana_decoder(
                train_paths,
                heldout_paths,
                out / "taesana_decoder.safetensors",
                tae_settings,
                weights_dir,
                progress,
                eval_crop,
            )
    for name, metrics in report.items():
        console.print(f"{name}: held-out PSNR {metrics['heldout_psnr_db']:.2f} dB ({metrics['train_seconds']:.0f} s)")
    atomic_write_text(out / "report.json", json.dumps(report, indent=2))
    console.print(f"wrote {len(report)} autoencoders and {out / 'report.json'}")


@app.command()
def fit(
    data: Path = typer.Argument(..., help="Folder of real photos (searched recursively) or a dataset (label 0 used)."),
    out: Path = typer.Option(
        Path("runs/imprint_bank.safetensors"), help="Bank file to write (the shipped bank only if named explicitly)."
    ),
    autoencoders: list[str] = typer.Option(
        None, "--ae", help="Autoencoders to model (default: taef2 and the shipped ours:hf_* set of the hifi family)."
    ),
    weights_dir: Path = typer.Option(None, help="Folder with third-party autoencoder weights (taef2_*.pth)."),
    steps: int = typer.Option(400, help="Optimisation steps of each learned Laplace model."),
    max_train_images: int = typer.Option(300, help="Images used for fitting (2 crops each)."),
    max_heldout_images: int = typer.Option(100, help="Held-out images for the likelihood report."),
    cache_dir: Path = typer.Option(Path("cache/residuals"), help="Cache of autoencoder residuals."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Fit the imprint bank: one learned Laplace model per autoencoder, with held-out NLL against the
    closed-form Laplace and Gaussian fits (lower is better)."""
    from rich.table import Table

    from nirnet.imprint.fit import FitConfig, default_bank_sources, fit_bank

    models = _autoencoders(autoencoders or default_bank_sources(), weights_dir)
    config = FitConfig(steps=steps, max_train_images=max_train_images, max_heldout_images=max_heldout_images, seed=seed)
    with console.status("fitting") as status:
        bank = fit_bank(models, _image_paths(data, None), config, cache_dir, on_progress=status.update)
    bank.save(out)
    table = Table(title=f"held-out NLL (nats per value, lower is better) -> {out}")
    for column in (
        "autoencoder",
        "stride",
        "learned Laplace",
        "closed-form Laplace",
        "closed-form Gaussian",
        "|r| (8-bit)",
    ):
        table.add_column(column)
    for e in bank.entries:
        n = e.heldout_nll
        table.add_row(
            e.name,
            str(e.stride),
            f"{n['learned_laplace']:.4f}",
            f"{n['closed_form_laplace']:.4f}",
            f"{n['closed_form_gaussian']:.4f}",
            f"{e.extra['residual_mean_abs'] * 255:.2f}",
        )
    output_console().print(table)


SAMPLER_HELP = (
    "How imprint noise is drawn: 'independent' (every pixel and channel on its own) or 'copula' (Laplace marginals "
    "with the real residuals' spatial and cross-channel correlation; needs a bank with colouring kernels)."
)


def _simulator(
    bank: Path | None,
    alpha: float,
    beta: float,
    gamma_lo: float,
    gamma_hi: float,
    per_sample: int,
    sampler: str = "independent",
):
    from nirnet.imprint.bank import ImprintBank
    from nirnet.imprint.fusion import ImprintSimulator, SimulatorConfig

    try:
        config = SimulatorConfig(
            alpha=alpha,
            beta=beta,
            gamma=(gamma_lo, gamma_hi),
            models_per_sample=per_sample if per_sample > 0 else None,
            sampler=sampler,
        )
        return ImprintSimulator(ImprintBank.load(bank), config)
    except (ValueError, FileNotFoundError) as exc:
        fail(exc)


@app.command()
def copula(
    data: Path = typer.Argument(..., help="Folder of real photos (searched recursively) or a dataset (label 0 used)."),
    out: Path = typer.Option(..., help="Bank file to write (the input bank is never modified)."),
    bank: Path = typer.Option(None, help="Bank whose entries get kernels (default: the shipped one)."),
    weights_dir: Path = typer.Option(None, help="Folder with third-party autoencoder weights (taef2_*.pth)."),
    max_train_images: int = typer.Option(300, help="Images whose residuals are used (2 crops each)."),
    cache_dir: Path = typer.Option(Path("cache/residuals"), help="Cache of autoencoder residuals."),
    seed: int = typer.Option(0, help="Random seed (crop positions; the same as `fit` uses by default)."),
) -> None:
    """Fit the copula sampler's colouring kernels (spatial and cross-channel correlation of each autoencoder's
    residual) into an existing bank, keeping its Laplace models; `nirnet imprint fit` fits them for new banks."""
    from nirnet.imprint.bank import ImprintBank
    from nirnet.imprint.fit import FitConfig, fit_bank

    source = ImprintBank.load(bank)
    models = _autoencoders(source.names, weights_dir)
    config = FitConfig(max_train_images=max_train_images, seed=seed)
    with console.status("fitting") as status:
        result = fit_bank(models, _image_paths(data, None), config, cache_dir, status.update, laplace_from=source)
    result.save(out)
    for entry in result.entries:
        corr = entry.extra["residual_correlation"]
        console.print(
            f"{entry.name}: real residual lag-1 correlation {corr['lag1_h']:.2f} (h) / {corr['lag1_v']:.2f} (v), "
            f"between channels {corr['cross_channel']:.2f}"
        )
    console.print(f"wrote {out}")


@app.command()
def sample(
    image: Path = typer.Argument(..., help="A real image to stamp with a simulated imprint."),
    out: Path = typer.Option(..., help="Output PNG (lossless, so the imprint survives)."),
    bank: Path = typer.Option(None, help="Imprint bank (default: the shipped one)."),
    alpha: float = typer.Option(1.0, help="Dirichlet concentration of the fusion weights."),
    beta: float = typer.Option(0.3, help="Extrapolation beyond the simplex (0 = convex fusion only)."),
    gamma_lo: float = typer.Option(0.2, help="Lowest imprint strength."),
    gamma_hi: float = typer.Option(1.0, help="Highest imprint strength."),
    models_per_sample: int = typer.Option(3, help="Bank entries fused per image (0 = all)."),
    sampler: str = typer.Option("independent", help=SAMPLER_HELP),
    noise_out: Path = typer.Option(None, help="Also write the imprint itself as a grey PNG (scaled to +-3 std)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Embed a simulated (fused, extrapolated) generator imprint into IMAGE and save the pseudo-fake."""
    import torch
    from PIL import Image

    from nirnet.data.io import ImageLoadError, load_image_array
    from nirnet.data.tensors import to_float_tensor, to_image

    try:
        x = to_float_tensor(load_image_array(image))
    except ImageLoadError as exc:
        fail(exc)
    sim = _simulator(bank, alpha, beta, gamma_lo, gamma_hi, models_per_sample, sampler)
    result = sim(x, torch.Generator().manual_seed(seed))
    to_image(result.images[0]).save(out)
    if noise_out:
        from nirnet.render import residual_to_uint8

        Image.fromarray(residual_to_uint8(result.noise[0].mean(0).numpy())).save(noise_out)
    used = {n: round(float(w), 3) for n, w in zip(sim.bank.names, result.weights[0]) if w != 0}
    change = (result.images - x).abs().mean().item() * 255
    console.print(f"wrote {out}: weights {used}, gamma {result.gamma[0]:.2f}, mean |change| {change:.2f} levels")


@app.command()
def plot(
    data: Path = typer.Argument(..., help="Folder of real photos or a dataset (label 0 used)."),
    out_dir: Path = typer.Option(Path("out/imprint"), help="Folder for imprint_pca.png and residuals.png."),
    bank: Path = typer.Option(None, help="Imprint bank (default: the shipped one)."),
    images: int = typer.Option(40, help="Held-out images to take crops from."),
    sampler: str = typer.Option("independent", help=SAMPLER_HELP),
    weights_dir: Path = typer.Option(None, help="Folder with third-party autoencoder weights."),
    cache_dir: Path = typer.Option(Path("cache/residuals"), help="Cache of autoencoder residuals."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """PCA scatter of imprint features: real residuals per autoencoder, their simulated counterparts and fused
    samples (paper Fig. 4); and a panel with an image, its residuals and a simulated imprint."""
    from nirnet.imprint.fit import FitConfig, split_crops
    from nirnet.imprint.plots import imprint_pictures

    sim = _simulator(bank, 1.0, 0.3, 1.0, 1.0, 3, sampler)
    _, crops, _, _ = split_crops(_image_paths(data, None), FitConfig(max_heldout_images=images, seed=seed))
    models = _autoencoders(sim.bank.names, weights_dir)
    gaps = imprint_pictures(sim, models, crops, cache_dir, out_dir, seed)
    for name, gap in gaps.items():
        console.print(f"{name}: real vs simulated mean log spectrum, RMS gap {gap:.3f} decades")
    console.print(f"wrote {out_dir / 'imprint_pca.png'} and {out_dir / 'residuals.png'}")


@app.command()
def reconstruct(
    data: Path = typer.Argument(..., help="Folder of real photos (searched recursively) or a dataset (label 0 used)."),
    out: Path = typer.Option(Path("cache/recon"), help="Cache folder (index.json + one PNG per image and model)."),
    autoencoders: list[str] = typer.Option(
        None, "--ae", help="Autoencoders to run (default: taef2 and the shipped ours:hf_* set of the hifi family)."
    ),
    region: int = typer.Option(384, help="Side of the centred box that is reconstructed."),
    limit: int = typer.Option(None, help="Use at most this many images (spread evenly over the sorted list)."),
    weights_dir: Path = typer.Option(None, help="Folder with third-party autoencoder weights."),
) -> None:
    """Cache autoencoder round trips of real photos: the "autoencoder twin" fakes used in training.
    Resumable: images already in the cache are skipped."""
    from nirnet.imprint.fit import default_bank_sources
    from nirnet.imprint.recon_cache import build_recon_cache

    paths = _image_paths(data, limit)
    models = _autoencoders(autoencoders or default_bank_sources(), weights_dir)
    with Progress(console=console) as progress:
        task = progress.add_task("reconstructing", total=len(paths))
        index = build_recon_cache(models, paths, out, region, on_image=lambda _: progress.advance(task))
    console.print(f"wrote {index}")
