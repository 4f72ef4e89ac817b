"""`nirnet eval`: per-subset metrics under the aligned protocol, robustness grid, threshold calibration."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import Progress

from nirnet.cli._common import BACKEND_HELP

console = Console()


def eval_command(
    data: Path = typer.Option(..., "--data", "-d", help="Dataset (any layout `nirnet data summary` reads)."),
    model: str = typer.Option(None, "--model", "-m", help="Model folder or shipped model name (default: embedded)."),
    protocol: str = typer.Option("aligned", help="aligned (centre crop <= 512 px + JPEG 90, both classes) or raw."),
    robustness: bool = typer.Option(False, "--robustness", help="Also run the JPEG / blur / resize grid."),
    calibrate: Path = typer.Option(
        None, help="Validation dataset: fit the threshold (balanced accuracy) and store it in the model's config."
    ),
    out: Path = typer.Option(Path("out/eval"), help="Folder for metrics.json, report.md and plots."),
    split: str = typer.Option(None, help="GenImage only: train or val."),
    backend: str = typer.Option("auto", help=BACKEND_HELP),
) -> None:
    """Evaluate a detector per subset (generator): ACC@threshold, real-ACC, fake-ACC, AP, ROC-AUC, and means."""
    import dataclasses

    import numpy as np

    from nirnet._atomic import atomic_write_text
    from nirnet.cli._common import load_detector
    from nirnet.data.datasets import read_dataset
    from nirnet.decision import DecisionRule
    from nirnet.eval.evaluate import RobustnessLog, evaluate_robustness, score_samples
    from nirnet.eval.metrics import best_threshold
    from nirnet.eval.protocol import PROTOCOLS
    from nirnet.eval.report import metrics_table, plot_robustness, plot_roc, robustness_table
    from nirnet.models.base import DetectorModel

    if protocol not in PROTOCOLS:
        raise typer.BadParameter(f"protocol must be one of {list(PROTOCOLS)}")
    detector = load_detector(model, backend=backend)
    scorer = lambda images: [p for p, _ in detector.predict_images(images)]  # noqa: E731
    proto = PROTOCOLS[protocol]
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "model": detector.name,
        **detector.provenance(),  # which checkpoint was evaluated
        "backend": detector.backend,
        "data": str(data),
        "protocol": dataclasses.asdict(proto),
    }
    with Progress(console=console, transient=True) as progress:
        if calibrate is not None:
            val = score_samples(scorer, read_dataset(calibrate), proto, progress=progress, description="calibrating")
            ok = ~np.isnan(val.scores)
            threshold = best_threshold([s.label for s, g in zip(val.samples, ok) if g], val.scores[ok])
            detector.rule = DecisionRule(threshold)  # calibration replaces the rule the model was loaded with
            if model and Path(model).is_dir():
                stored = DetectorModel.store_threshold(model, threshold)
                console.print(f"stored threshold {threshold:.4f} in {stored}")
            else:
                console.print(f"calibrated threshold {threshold:.4f} (pass --model FOLDER to store it)")
            report["threshold_calibrated_on"] = str(calibrate)
        samples = read_dataset(data, split=split)
        scored = score_samples(scorer, samples, proto, progress=progress)
        metrics = scored.metrics(detector.threshold)
        report.update(threshold=detector.threshold, metrics=metrics, failures=scored.failures)
        markdown = metrics_table(metrics, f"{detector.name} on {data} ({protocol} protocol)")
        plot_roc(scored, out / "roc.png", f"{detector.name}: ROC per subset ({protocol})")
        if robustness:
            key = {k: report[k] for k in ("model", "weights_sha256", "data", "protocol")}
            log = RobustnessLog(out / "robustness.partial.json", {**key, "threshold": detector.threshold})
            if log.done:
                console.print(f"resuming the robustness grid: {len(log.done)} cells already in {log.path}")
            # The grid's clean cell is the evaluation just made, not a second scoring of the same images.
            rows = evaluate_robustness(scorer, samples, proto, detector.threshold, progress, log.done, log.add, scored)
            report["robustness"] = rows
            markdown += "\n\n**Robustness (mean over subsets)**\n\n" + robustness_table(rows)
            plot_robustness(rows, out / "robustness.png")
    atomic_write_text(out / "metrics.json", json.dumps(report, indent=1))
    atomic_write_text(out / "report.md", markdown + "\n")
    if robustness:
        log.close()  # the finished grid is in metrics.json
    console.print(Markdown(markdown))
    for source, reason in scored.failures:
        console.print(f"[yellow]skipped[/yellow] {source}: {reason}")
    console.print(f"wrote {out / 'metrics.json'}, {out / 'report.md'}, {out / 'roc.png'}")
