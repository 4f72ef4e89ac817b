"""`nirnet family fit`: fit a generator-family head (with an open-set "unknown") on a detector's features."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Generator-family attribution: which family made an image the detector calls generated.",
    no_args_is_help=True,
)


@app.command("fit")
def fit(
    corpus: list[Path] = typer.Option(
        ...,
        "--corpus",
        help="Dataset folder with a manifest.csv (path,label,generator[,source,family]); its generated images are "
        "the training set. Repeat for more datasets.",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Folder to write: the model's config.json and weights plus family_head.{json,safetensors}."
    ),
    model: str = typer.Option(
        "default", "--model", "-m", help="Model folder or shipped model name ('default' = the embedded default)."
    ),
    extra: list[Path] = typer.Option(
        [], "--extra", help="More datasets of generated images (same manifest format), e.g. gen-train. Repeatable."
    ),
    parts: str = typer.Option(
        "head_input,texture",
        help="Feature parts, comma-separated: head_input (what the real/generated head reads), hidden (its hidden "
        "layer), texture (the frozen backbone's texture statistics).",
    ),
    c: float = typer.Option(0.1, "--c", min=1e-6, help="Inverse L2 strength of the logistic head (smaller = simpler)."),
    min_images: int = typer.Option(8, min=2, help="A family needs at least this many images to be known."),
    score: str = typer.Option("max_softmax", help="Open-set score: max_softmax or energy."),
    seeds: list[int] = typer.Option(
        [0, 1, 2], "--seed", help="Draws of held-out source files for the open-set calibration (repeatable)."
    ),
    rows: str = typer.Option(
        "crops", help="Training rows: crops (every crop of every image, measured better) or images (crop means)."
    ),
    cache: Path = typer.Option(
        Path("runs/family_features"), help="Folder for cached features (keyed by file list and model)."
    ),
) -> None:
    """Fit a class-balanced linear family head on the detector's features, calibrate its "unknown" threshold on
    leave-family-out folds, and write a model folder that `nirnet detect --attribute --model OUT` uses. The
    detector's own outputs do not change."""
    from rich.progress import Progress

    from nirnet.cli._common import fail, load_detector
    from nirnet.family import FamilyHeadError, fit_family_head

    detector = load_detector(None if model == "default" else model, backend="torch")
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("features", total=None)
            head = fit_family_head(
                detector,
                [*corpus, *extra],
                out,
                parts=[p.strip() for p in parts.split(",") if p.strip()],
                c=c,
                min_images=min_images,
                score=score,
                seeds=seeds,
                cache=cache,
                rows=rows,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except (FamilyHeadError, OSError) as exc:
        fail(exc)
    cal = head.info["open_set_calibration"]
    typer.echo(f"family head for {detector.name}: {len(head.families)} families ({', '.join(head.families)})")
    typer.echo(
        f"open set ({cal['score']}): leave-family-out AUROC {cal['auroc']:.3f}, threshold {cal['threshold']:.4f} "
        f"keeps {cal['known_kept']:.0%} of known-family images and calls {cal['unknown_caught']:.0%} of unseen "
        "families unknown"
    )
    typer.echo(f"wrote {out}")
