"""`nirnet train`: train a detector from a YAML config with dotted overrides."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def train(
    config: Path = typer.Option(None, "--config", "-c", help="YAML training config (see configs/)."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. optim.steps=500 run.out_dir=runs/x"),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the newest checkpoint in run.out_dir (from step 0 if it has none)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Start again in a run.out_dir that holds an earlier run (its checkpoints go)."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="Do not draw a progress bar."),
) -> None:
    """Train a NIRNet model on aligned real/fake pairs (simulator twins, autoencoder twins, generated images).

    The resolved config is written to <run.out_dir>/config.yaml, metrics to metrics.jsonl, checkpoints to
    step_*/ and the final model to final/ (model.safetensors + config.json). For several GPUs or nodes, launch
    with torchrun: `torchrun --nproc_per_node 4 -m nirnet.cli.main train -c CONFIG`. A frozen-feature model
    (nirnet_probe, configs/nirnet_probe.yaml) is fitted in closed form on cached per-image features instead, its
    threshold set on leave-family-out folds (leave_family_out.json beside final/).
    """
    from nirnet.cli._common import fail
    from nirnet.engine.config import ConfigError, load_config
    from nirnet.engine.train import SetupError
    from nirnet.engine.train import train as run_training

    if config is None:
        fail("no training config: pass one with -c, e.g. `nirnet train -c configs/nirnet_tiny_cpu.yaml`")
    if resume and overwrite:
        fail("--resume and --overwrite contradict each other; pass one")
    try:
        cfg = load_config(config, overrides or [])
        final = run_training(
            cfg, resume=resume, show_progress=not no_progress, overwrite=overwrite, on_message=console.print
        )
    except (ConfigError, SetupError, FileNotFoundError) as exc:
        fail(str(exc))
    console.print(f"final model: {final}")
