"""Scoring a dataset under a protocol, per-subset metrics, and the robustness grid."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image
from rich.progress import Progress

from .._atomic import atomic_write_text
from ..data.datasets import Sample
from ..data.io import ImageLoadError, load_image
from ..decision import DEFAULT_THRESHOLD
from .metrics import per_subset_metrics
from .protocol import PROTOCOLS, Protocol, Transform, robustness_grid

#: A scorer maps a batch of RGB images to probabilities that each is generated.
Scorer = Callable[[Sequence[Image.Image]], Sequence[float]]


@dataclass
class ScoredSet:
    samples: list[Sample]
    scores: np.ndarray  # NaN where the image could not be loaded
    failures: list[tuple[str, str]]

    def metrics(self, threshold: float = DEFAULT_THRESHOLD) -> dict[str, dict[str, float]]:
        ok = ~np.isnan(self.scores)
        kept = [s for s, good in zip(self.samples, ok) if good]
        return per_subset_metrics([s.label for s in kept], self.scores[ok], [s.subset for s in kept], threshold)


def score_samples(
    scorer: Scorer,
    samples: Sequence[Sample],
    protocol: Protocol,
    extra: Transform | None = None,
    batch_size: int = 16,
    progress: Progress | None = None,
    description: str = "scoring",
    cropped: Sequence[Image.Image | ImageLoadError] | None = None,
) -> ScoredSet:
    """Score ``samples`` under ``protocol`` (+ ``extra`` degradation). ``cropped``: the protocol's crops of the
    samples (or the load error of each), when the caller already has them (see :func:`crop_samples`)."""
    scores = np.full(len(samples), np.nan)
    failures: list[tuple[str, str]] = []
    task = progress.add_task(description, total=len(samples)) if progress else None
    for start in range(0, len(samples), batch_size):
        batch, index = [], []
        for i in range(start, min(start + batch_size, len(samples))):
            try:
                img = cropped[i] if cropped is not None else protocol.crop(load_image(samples[i].path))
                if isinstance(img, ImageLoadError):
                    raise img
                batch.append(protocol.finish(img, extra))
                index.append(i)
            except ImageLoadError as exc:
                failures.append((exc.source, exc.reason))
        if batch:
            scores[index] = np.asarray(scorer(batch), dtype=float)
        if progress is not None:
            progress.advance(task, min(batch_size, len(samples) - start))
    return ScoredSet(list(samples), scores, failures)


def crop_samples(
    samples: Sequence[Sample], protocol: Protocol, progress: Progress | None = None
) -> list[Image.Image | ImageLoadError]:
    """Decode and crop every sample once (the protocol's crop is ≤ 512 px, so this stays small in memory)."""
    task = progress.add_task("decoding", total=len(samples)) if progress else None
    out: list[Image.Image | ImageLoadError] = []
    for sample in samples:
        try:
            out.append(protocol.crop(load_image(sample.path)))
        except ImageLoadError as exc:
            out.append(exc)
        if progress is not None:
            progress.advance(task)
    return out


def evaluate_robustness(
    scorer: Scorer,
    samples: Sequence[Sample],
    protocol: Protocol = PROTOCOLS["aligned"],
    threshold: float = DEFAULT_THRESHOLD,
    progress: Progress | None = None,
    done: dict[str, dict] | None = None,
    on_row: Callable[[dict], None] | None = None,
    clean: ScoredSet | None = None,
) -> list[dict]:
    """Mean metrics over subsets for every cell of the robustness grid (plus the undegraded protocol).

    Every image is decoded and cropped once for all cells. Cells whose label is in ``done`` are taken from it
    (a resumed run); ``on_row`` sees each new row as soon as it is measured, so an interrupted grid loses at most
    the cell in progress. ``clean``: ``samples`` already scored under ``protocol`` (an evaluation that came first),
    used for the undegraded cell instead of scoring the same images again."""
    done = done or {}
    cells = [("none", "clean", 0.0, None)] + robustness_grid()
    todo = [c for c in cells if c[1] not in done and not (c[1] == "clean" and clean is not None)]
    cropped = crop_samples(samples, protocol, progress) if todo else None
    rows = []
    for family, label, value, transform in cells:
        if label in done:
            rows.append(done[label])
            continue
        if label == "clean" and clean is not None:
            scored = clean
        else:
            # The JPEG cells are the compression: the protocol's own JPEG step is not applied on top of them.
            proto = replace(protocol, jpeg_quality=None) if family == "jpeg" else protocol
            scored = score_samples(
                scorer, samples, proto, transform, progress=progress, description=label, cropped=cropped
            )
        rows.append({"family": family, "label": label, "value": value, **scored.metrics(threshold)["mean"]})
        if on_row is not None:
            on_row(rows[-1])
    return rows


class RobustnessLog:
    """Finished cells of a robustness grid, saved after each one to ``path`` (atomically), so that an interrupted
    grid resumes where it stopped. ``key`` says what was evaluated; rows saved under another key are ignored."""

    def __init__(self, path: str | os.PathLike, key: dict) -> None:
        self.path = Path(path)
        self.key = json.loads(json.dumps(key))  # as it reads back from JSON
        self.rows: list[dict] = []
        try:
            saved = json.loads(self.path.read_text())
            if saved.get("key") == self.key:
                self.rows = list(saved.get("rows", []))
        except (OSError, ValueError):
            pass
        self.done = {row["label"]: row for row in self.rows}

    def add(self, row: dict) -> None:
        self.rows.append(row)
        atomic_write_text(self.path, json.dumps({"key": self.key, "rows": self.rows}, indent=1))

    def close(self) -> None:
        self.path.unlink(missing_ok=True)
