"""`nirnet eval`: per-subset metrics under the aligned protocol, robustness grid, threshold calibration. The work is
:func:`nirnet.eval.workflow.run_evaluation`; this verb parses, calls and prints."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import Progress

from nirnet.cli._common import backend_option
from nirnet.eval.workflow import DEFAULT_PROTOCOL

console = Console()


def eval_command(
    data: Path = typer.Option(..., "--data", "-d", help="Dataset (any layout `nirnet data summary` reads)."),
    model: str = typer.Option(None, "--model", "-m", help="Model folder or shipped model name (default: embedded)."),
    protocol: str = typer.Option(
        DEFAULT_PROTOCOL, help="aligned (centre crop <= 512 px + JPEG 90, both classes) or raw."
    ),
    robustness: bool = typer.Option(False, "--robustness", help="Also run the JPEG / blur / resize grid."),
    calibrate: Path = typer.Option(
        None, help="Validation dataset: fit the threshold (balanced accuracy) and store it in the model's config."
    ),
    out: Path = typer.Option(Path("out/eval"), help="Folder for metrics.json, report.md and plots."),
    split: str = typer.Option(None, help="GenImage only: train or val."),
    backend: str = backend_option(),
) -> None:
    """Evaluate a detector per subset (generator): ACC@threshold, real-ACC, fake-ACC, AP, ROC-AUC, and means."""
    from nirnet.cli._common import fail, load_detector, printable
    from nirnet.eval.workflow import resolve_protocol, run_evaluation

    try:
        resolve_protocol(protocol)  # before the model loads
    except ValueError as exc:
        fail(exc)
    detector = load_detector(model, backend=backend)
    try:
        with Progress(console=console, transient=True) as progress:
            result = run_evaluation(
                detector, data, out, protocol=protocol, robustness=robustness, calibrate=calibrate,
                model_folder=model, split=split, progress=progress, on_message=console.print,
            )  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        fail(exc)
    console.print(Markdown(result.markdown))
    for source, reason in result.failures:
        console.print(f"[yellow]skipped[/yellow] {printable(source)}: {printable(reason)}")
    console.print(f"wrote {', '.join(str(p) for p in result.written)}")
