"""Error bars for detection numbers: bootstrap confidence intervals of AUC, pooled and per subset.

A development benchmark with 6-20 fakes per generator moves a per-generator AUC by 0.1-0.2 between training
seeds; a number without an interval is not a finding. Intervals here resample *images* (within each class, so
every resample keeps both classes); seed-to-seed spread is reported separately as mean ± sd over models. Where one
image is scored several times (a held-out photo once per leave-family-out fold), ``clusters`` names the image of
each row and the resample draws images, not rows: drawing rows would count seven scores of eight photos as 56
independent photos and give an interval far too narrow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..decision import DecisionRule


def bootstrap_auc(
    labels: Sequence[int],
    scores: Sequence[float],
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    clusters: Sequence | None = None,
) -> tuple[float, float, float]:
    """``(AUC, lower, upper)``: the AUC and its percentile bootstrap interval (classes resampled separately;
    ``clusters``: the image each row scores, resampled as a whole)."""
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    real, fake = _class_rows(y)
    values = [_auc_of(s[r], s[f]) for r, f in _resamples(real, fake, rounds, seed, clusters)]
    return (_auc_of(s[real], s[fake]), *_interval(values, level))


def _class_rows(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the real (0) and generated (1) images; both must be present."""
    real, fake = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    if not len(real) or not len(fake):
        raise ValueError("an AUC needs both classes")
    return real, fake


def _resamples(real: np.ndarray, fake: np.ndarray, rounds: int, seed: int, clusters: Sequence | None = None):
    """``rounds`` bootstrap resamples of the rows, each class resampled separately (so both stay present); with
    ``clusters`` (one id per row), each class's clusters are drawn with replacement and bring all their rows."""
    rng = np.random.default_rng(seed)
    if clusters is None:
        for _ in range(rounds):
            yield real[rng.integers(0, len(real), len(real))], fake[rng.integers(0, len(fake), len(fake))]
        return
    ids = np.asarray(clusters)
    if len(ids) != len(real) + len(fake):
        raise ValueError("clusters needs one id per scored row")
    groups = [_rows_by_cluster(rows, ids) for rows in (real, fake)]
    for _ in range(rounds):
        yield tuple(np.concatenate([g[i] for i in rng.integers(0, len(g), len(g))]) for g in groups)


def _rows_by_cluster(rows: np.ndarray, ids: np.ndarray) -> list[np.ndarray]:
    """``rows`` split by their cluster id (in sorted id order, so a seed gives the same draw every run)."""
    _, inverse, counts = np.unique(ids[rows], return_inverse=True, return_counts=True)
    grouped = rows[np.argsort(inverse, kind="stable")]
    return np.split(grouped, np.cumsum(counts)[:-1])


def _interval(values, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def _auc_of(real: np.ndarray, fake: np.ndarray) -> float:
    """AUC of fake vs real by ranks (ties count one half), fast enough for a bootstrap loop."""
    both = np.r_[real, fake]
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    sorted_scores = both[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2 + 1
    ranks[order] = np.repeat(average, counts)
    fake_ranks = ranks[len(real) :].sum()
    return float((fake_ranks - len(fake) * (len(fake) + 1) / 2) / (len(real) * len(fake)))


def bootstrap_mean_auc(
    real_scores: np.ndarray,
    fake_scores_by_subset: dict[str, np.ndarray],
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Mean over subsets of each subset's AUC against the shared real pool, with a joint bootstrap interval (the
    real pool and every subset are resampled together in each round, as they are shared)."""
    rng = np.random.default_rng(seed)
    subsets = list(fake_scores_by_subset.values())
    point = float(np.mean([_auc_of(real_scores, f) for f in subsets]))
    values = np.empty(rounds)
    for i in range(rounds):
        r = real_scores[rng.integers(0, len(real_scores), len(real_scores))]
        values[i] = np.mean([_auc_of(r, f[rng.integers(0, len(f), len(f))]) for f in subsets])
    tail = (1 - level) / 2 * 100
    return point, float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def class_accuracies(labels: Sequence[int], flags: Sequence[bool]) -> tuple[float, float, float]:
    """(real accuracy, generated accuracy, balanced accuracy) of ``flags`` (True: called generated), e.g.
    ``DecisionRule(threshold).flags(scores)``."""
    y, pred = np.asarray(labels, dtype=int), np.asarray(flags, dtype=bool)
    real, generated = float((~pred[y == 0]).mean()), float(pred[y == 1].mean())
    return real, generated, 0.5 * (real + generated)


def balanced_accuracy(labels: Sequence[int], scores: Sequence[float], threshold: float) -> float:
    return class_accuracies(labels, DecisionRule(threshold).flags(scores))[2]


__all__ = ["balanced_accuracy", "bootstrap_auc", "bootstrap_mean_auc", "class_accuracies"]


def bootstrap_auc_difference(
    labels: Sequence[int],
    scores_a: Sequence[float],
    scores_b: Sequence[float],
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    clusters: Sequence | None = None,
) -> tuple[float, float, float]:
    """``(AUC_a - AUC_b, lower, upper)`` for two scorers of the *same* images: each round resamples the images
    once (classes separately) and scores both on that resample, so what the images share cancels; two separate
    intervals that overlap can still hide a difference that this one excludes from zero, and the reverse."""
    y = np.asarray(labels, dtype=int)
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.shape != b.shape or a.shape != y.shape:
        raise ValueError("both scorers need one score per label")
    real, fake = _class_rows(y)
    values = [_auc_of(a[r], a[f]) - _auc_of(b[r], b[f]) for r, f in _resamples(real, fake, rounds, seed, clusters)]
    return (_auc_of(a[real], a[fake]) - _auc_of(b[real], b[fake]), *_interval(values, level))
