"""The evaluation workflow behind `nirnet eval`: (calibrate the threshold, store it), score a dataset under a
protocol, (run the robustness grid), write metrics.json, report.md and the plots. The command line only parses its
options, calls :func:`run_evaluation` and prints what it returns."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.progress import Progress

from .._atomic import atomic_write_text
from ..decision import DecisionRule
from .protocol import PROTOCOLS, Protocol

if TYPE_CHECKING:
    from ..detect import Detector

DEFAULT_PROTOCOL = "aligned"


def resolve_protocol(name: str) -> Protocol:
    """The protocol called ``name``; a ValueError naming the known ones otherwise."""
    if name not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {name!r}")
    return PROTOCOLS[name]


@dataclass
class EvalResult:
    report: dict  # what metrics.json holds
    markdown: str  # what report.md holds
    written: list[Path]  # the files written, in order
    failures: list[tuple[str, str]]  # (image, reason) of the images that could not be read


def calibrate_threshold(detector: Detector, data: str | os.PathLike, protocol: Protocol, progress=None) -> float:
    """The threshold with the best balanced accuracy on ``data`` under ``protocol``."""
    from ..data.datasets import read_dataset
    from .evaluate import score_samples
    from .metrics import best_threshold

    scored = score_samples(
        _scorer(detector), read_dataset(data), protocol, progress=progress, description="calibrating"
    )
    ok = ~np.isnan(scored.scores)
    return best_threshold([s.label for s, good in zip(scored.samples, ok) if good], scored.scores[ok])


def run_evaluation(
    detector: Detector,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    protocol: str = DEFAULT_PROTOCOL,
    robustness: bool = False,
    calibrate: str | os.PathLike | None = None,
    model_folder: str | os.PathLike | None = None,
    split: str | None = None,
    progress: Progress | None = None,
    on_message: Callable[[str], None] = lambda _: None,
) -> EvalResult:
    """Evaluate ``detector`` per subset of ``data`` and write the report into ``out``.

    ``calibrate``: a validation dataset whose best balanced-accuracy threshold replaces the detector's rule before
    the evaluation, and is stored in ``model_folder`` when that is a model folder. ``robustness``: also the JPEG /
    blur / resize grid, resumable from ``out/robustness.partial.json``. ``on_message``: progress notes (a stored
    threshold, a resumed grid) as they happen."""
    from ..data.datasets import read_dataset
    from ..models.base import DetectorModel
    from .evaluate import RobustnessLog, evaluate_robustness, score_samples
    from .report import metrics_table, plot_robustness, plot_roc, robustness_table

    proto = resolve_protocol(protocol)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scorer = _scorer(detector)
    report: dict = {
        "model": detector.name,
        **detector.provenance(),  # which checkpoint was evaluated
        "backend": detector.backend,
        "data": str(data),
        "protocol": dataclasses.asdict(proto),
    }
    if calibrate is not None:
        threshold = calibrate_threshold(detector, calibrate, proto, progress)
        detector.rule = DecisionRule(threshold)  # calibration replaces the rule the model was loaded with
        if model_folder is not None and Path(model_folder).is_dir():
            stored = DetectorModel.store_threshold(model_folder, threshold)
            on_message(f"stored threshold {threshold:.4f} in {stored}")
        else:
            on_message(f"calibrated threshold {threshold:.4f} (not stored: the model is not a folder)")
        report["threshold_calibrated_on"] = str(calibrate)
    samples = read_dataset(data, split=split)
    scored = score_samples(scorer, samples, proto, progress=progress)
    metrics = scored.metrics(detector.threshold)
    report.update(threshold=detector.threshold, metrics=metrics, failures=scored.failures)
    markdown = metrics_table(metrics, f"{detector.name} on {data} ({protocol} protocol)")
    plot_roc(scored, out / "roc.png", f"{detector.name}: ROC per subset ({protocol})")
    written = [out / "metrics.json", out / "report.md", out / "roc.png"]
    log = None
    if robustness:
        key = {k: report[k] for k in ("model", "weights_sha256", "data", "protocol")}
        log = RobustnessLog(out / "robustness.partial.json", {**key, "threshold": detector.threshold})
        if log.done:
            on_message(f"resuming the robustness grid: {len(log.done)} cells already in {log.path}")
        # The grid's clean cell is the evaluation just made, not a second scoring of the same images.
        rows = evaluate_robustness(scorer, samples, proto, detector.threshold, progress, log.done, log.add, scored)
        report["robustness"] = rows
        markdown += "\n\n**Robustness (mean over subsets)**\n\n" + robustness_table(rows)
        plot_robustness(rows, out / "robustness.png")
        written.append(out / "robustness.png")
    atomic_write_text(out / "metrics.json", json.dumps(report, indent=1))
    atomic_write_text(out / "report.md", markdown + "\n")
    if log is not None:
        log.close()  # the finished grid is in metrics.json
    return EvalResult(report, markdown, written, scored.failures)


def _scorer(detector: Detector) -> Callable:
    return lambda images: [p for p, _ in detector.predict_images(images)]
