"""`nirnet scale`: score folders, path lists and tar shards on a Ray cluster (or a local Ray), resumably."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from nirnet.cli._common import attribute_option, backend_option
from nirnet.defaults import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SIZE

console = Console(stderr=True)


def scale(
    inputs: list[str] = typer.Argument(
        ...,
        help="Image files, folders (recursive; *.tar inside are shards), globs, CSV or Parquet lists "
        "with a 'path' column, tar shards.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: part-*.parquet (one per chunk), resumable."),
    model: str = typer.Option(None, "--model", "-m", help="Model folder or shipped model name (default: embedded)."),
    threshold: float = typer.Option(None, min=0.0, max=1.0, help="Override the model's decision threshold."),
    address: str = typer.Option(
        None, help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray started in this process)."
    ),
    actors: int = typer.Option(None, help="Scoring actors, one detector each (default: one per CPU of the cluster)."),
    chunk_size: int = typer.Option(
        DEFAULT_CHUNK_SIZE, help="Paths per chunk (the unit of work and of resume); a tar shard is one."
    ),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, help="Crops per forward pass inside an actor."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Also write all rows to OUT/results.jsonl."),
    backend: str = backend_option(),
    verbose: bool = typer.Option(False, "--verbose", help="Show Ray's own log lines (start-up, Data progress)."),
    attribute: bool = attribute_option(
        "in the family and family_scores columns; chunks already written by an earlier run are kept as they are"
    ),
) -> None:
    """Score images at scale with Ray Data: one detector per actor, one row per image (path, probability, verdict,
    error, model, threshold) in Parquet. A rerun into the same folder skips the chunks already written; a bad file
    is a row with an error."""
    from nirnet.cli._common import fail, printable

    try:
        from nirnet.scale import score_at_scale

        report = score_at_scale(
            inputs, out, model, threshold, address or os.environ.get("RAY_ADDRESS"), actors, chunk_size, batch_size,
            jsonl, backend, verbose=verbose, attribute=attribute,
        )  # fmt: skip
    except ImportError as exc:
        fail(exc)
    except (FileNotFoundError, ValueError) as exc:
        fail(exc)
    for path, reason in report.skipped[:20]:
        console.print(f"skipped {printable(path)}: {reason}")
    if len(report.skipped) > 20:
        console.print(f"... and {len(report.skipped) - 20} more files skipped")
    console.print(
        f"{report.rows} images in {report.chunks} chunks ({report.skipped_chunks} already done), "
        f"{report.failed} could not be read -> {report.output}"
    )
