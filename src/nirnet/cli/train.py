"""`nirnet train`: train a detector from a YAML config with dotted overrides."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def train(
    config: Path = typer.Option(None, "--config", "-c", help="YAML training config (see configs/)."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. optim.steps=500 run.out_dir=runs/x"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in run.out_dir."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Do not draw a progress bar."),
) -> None:
    """Train a NIRNet model on aligned real/fake pairs (simulator twins, autoencoder twins, generated images).

    The resolved config is written to <run.out_dir>/config.yaml, metrics to metrics.jsonl, checkpoints to
    step_*/ and the final model to final/ (model.safetensors + config.json). For several GPUs or nodes, launch
    with torchrun: `torchrun --nproc_per_node 4 -m nirnet.cli.main train -c CONFIG`.
    """
    from nirnet.engine.config import load_config
    from nirnet.engine.train import train as run_training

    try:
        cfg = load_config(config, overrides or [])
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    final = run_training(cfg, resume=resume, show_progress=not no_progress)
    console.print(f"final model: {final}")
