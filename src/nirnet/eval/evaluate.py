"""Scoring a dataset under a protocol, per-subset metrics, and the robustness grid."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image
from rich.progress import Progress

from ..data.datasets import Sample
from ..data.io import ImageLoadError, load_image
from .metrics import per_subset_metrics
from .protocol import PROTOCOLS, Protocol, Transform, robustness_grid

#: A scorer maps a batch of RGB images to probabilities that each is generated.
Scorer = Callable[[Sequence[Image.Image]], Sequence[float]]


@dataclass
class ScoredSet:
    samples: list[Sample]
    scores: np.ndarray  # NaN where the image could not be loaded
    failures: list[tuple[str, str]]

    def metrics(self, threshold: float = 0.5) -> dict[str, dict[str, float]]:
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
) -> ScoredSet:
    scores = np.full(len(samples), np.nan)
    failures: list[tuple[str, str]] = []
    task = progress.add_task(description, total=len(samples)) if progress else None
    for start in range(0, len(samples), batch_size):
        batch, index = [], []
        for i in range(start, min(start + batch_size, len(samples))):
            try:
                batch.append(protocol(load_image(samples[i].path), extra))
                index.append(i)
            except ImageLoadError as exc:
                failures.append((exc.source, exc.reason))
        if batch:
            scores[index] = np.asarray(scorer(batch), dtype=float)
        if progress is not None:
            progress.advance(task, min(batch_size, len(samples) - start))
    return ScoredSet(list(samples), scores, failures)


def evaluate_robustness(
    scorer: Scorer,
    samples: Sequence[Sample],
    protocol: Protocol = PROTOCOLS["aligned"],
    threshold: float = 0.5,
    progress: Progress | None = None,
) -> list[dict]:
    """Mean metrics over subsets for every cell of the robustness grid (plus the undegraded protocol)."""
    rows = []
    cells = [("none", "clean", 0.0, None)] + robustness_grid()
    for family, label, value, transform in cells:
        # The JPEG cells are the compression: the protocol's own JPEG step is not applied on top of them.
        proto = replace(protocol, jpeg_quality=None) if family == "jpeg" else protocol
        scored = score_samples(scorer, samples, proto, transform, progress=progress, description=label)
        mean = scored.metrics(threshold)["mean"]
        rows.append({"family": family, "label": label, "value": value, **mean})
    return rows
