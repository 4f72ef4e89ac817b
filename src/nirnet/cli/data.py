"""`nirnet data ...`: inspect and validate datasets."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from nirnet.cli._common import fail
from nirnet.data.datasets import LAYOUTS, DatasetLayoutError, count_by_subset, detect_layout, read_dataset
from nirnet.data.io import ImageLoadError, load_image

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Inspect and validate datasets (layouts: " + ", ".join(LAYOUTS) + ").",
    no_args_is_help=True,
)
console = Console()

LAYOUT_HELP = "Dataset layout: auto, " + ", ".join(LAYOUTS) + "."


def _read(root: Path, layout: str, split: str | None):
    try:
        return read_dataset(root, layout=layout, split=split)
    except DatasetLayoutError as exc:
        fail(exc)


@app.command()
def summary(
    root: Path = typer.Argument(..., help="Dataset folder or CSV manifest."),
    layout: str = typer.Option("auto", help=LAYOUT_HELP),
    split: str | None = typer.Option(None, help="GenImage only: 'train' or 'val' (default: both)."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON instead of a table."),
) -> None:
    """Count the real and generated images per subset (generator) of a dataset."""
    samples = _read(root, layout, split)
    counts = count_by_subset(samples)
    if as_json:
        name = detect_layout(root) if layout == "auto" else layout
        typer.echo(json.dumps({"layout": name, "subsets": counts, "total": len(samples)}, indent=2))
        return
    table = Table(title=f"{root} ({detect_layout(root) if layout == 'auto' else layout})")
    for column in ("subset", "real", "fake"):
        table.add_column(column, justify="left" if column == "subset" else "right")
    for subset, row in counts.items():
        table.add_row(subset, str(row["real"]), str(row["fake"]))
    table.add_row(
        "[b]total[/b]",
        str(sum(r["real"] for r in counts.values())),
        str(sum(r["fake"] for r in counts.values())),
    )
    console.print(table)


@app.command()
def check(
    root: Path = typer.Argument(..., help="Dataset folder or CSV manifest."),
    layout: str = typer.Option("auto", help=LAYOUT_HELP),
    split: str | None = typer.Option(None, help="GenImage only: 'train' or 'val' (default: both)."),
) -> None:
    """Decode every image of a dataset and list the ones that cannot be loaded (exit status 1 if any)."""
    samples = _read(root, layout, split)
    failures = []
    for sample in track(samples, description="checking", console=console):
        try:
            load_image(sample.path)
        except ImageLoadError as exc:
            failures.append(exc)
    for exc in failures:
        console.print(f"[red]bad[/red] {exc.source}: {exc.reason}")
    console.print(f"{len(samples) - len(failures)} of {len(samples)} images load")
    if failures:
        raise typer.Exit(1)


@app.command("build-corpus")
def build_corpus_command(
    sources: Path = typer.Argument(
        ..., help="Source list CSV (repo,commit,path,box,generator,label,license,sha256,kind,note)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the images, manifest.csv and LICENSES.md."),
    mirror_root: Path = typer.Option(
        None,
        "--mirror-root",
        help="Read repositories from local bare snapshots ROOT/OWNER+NAME/repo (and Debian packages from "
        "ROOT/debian/) instead of downloading them from GitHub (or with apt-get).",
    ),
    holdout: list[Path] = typer.Option(
        None,
        "--holdout",
        help="An evaluation manifest (path,label,generator,source,...; repeatable): rows whose file is one of its "
        "images, or that come from a Debian package it draws from, are refused, and so is a built image that is "
        "one of its images at another size or quality (it is deleted). The project's held-out repositories and "
        "generator families are always refused.",
    ),
) -> None:
    """Fetch every image of a pinned source list, check its sha256, and write a dataset with `manifest.csv`.

    A row that cannot be fetched or whose hash does not match is reported in one line and left out. A rerun keeps
    what is already there and verified. Rows drawn from evaluation data (--holdout) are refused, never built.
    Exit status: 0 = every row built, 1 = some rows missing or refused, 2 = usage error."""
    from rich.progress import Progress

    from nirnet.cli._common import printable
    from nirnet.data.blobs import BlobSource
    from nirnet.data.corpus import SourceListError, build_corpus, read_sources
    from nirnet.data.holdout import HoldOut, held_out_rows

    err = Console(stderr=True)  # stdout stays free for scripts; messages and progress go to stderr
    try:
        rows = read_sources(sources)
    except SourceListError as exc:
        fail(exc)
    if mirror_root is not None and not mirror_root.is_dir():
        fail(f"--mirror-root {mirror_root} is not a folder")
    for manifest in holdout or []:
        if not manifest.is_file():
            fail(f"--holdout {manifest} is not a file")
    held = HoldOut.from_manifests(*(holdout or []))
    refused = held_out_rows(rows, held)
    for row, why in refused:
        err.print(f"[yellow]warning:[/yellow] refused {printable(row.describe())}: {why}", highlight=False)
    refused_lines = {row.line for row, _ in refused}
    rows = [row for row in rows if row.line not in refused_lines]
    blobs = BlobSource(mirror_root, cache_dir=out / ".cache" / "debs")
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("building", total=len(rows))
        report = build_corpus(
            rows,
            out,
            blobs,
            warn=lambda message: err.print(f"[yellow]warning:[/yellow] {printable(message)}", highlight=False),
            advance=lambda: progress.advance(task),
            refuse=held.near_duplicate if held.images else None,
        )
    refused_count = len(refused) + len(report.refused)
    err.print(
        f"{report.built} built, {report.present} already present, {len(report.missing)} missing, "
        f"{refused_count} refused of {len(rows) + len(refused)} rows -> {printable(out / 'manifest.csv')}"
    )
    if not report.ok or refused_count:
        raise typer.Exit(1)
