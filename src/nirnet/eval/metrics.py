"""Detection metrics (scikit-learn): ACC at a threshold, real-ACC, fake-ACC, AP, ROC-AUC, per subset and mean."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from ..decision import DEFAULT_THRESHOLD, DecisionRule

REAL_SUBSET = "real"


def binary_metrics(
    labels: Sequence[int], scores: Sequence[float], threshold: float = DEFAULT_THRESHOLD
) -> dict[str, float]:
    """Metrics of probabilities ``scores`` (higher = generated) against ``labels`` (1 = generated).

    AP and AUC are NaN when only one class is present; class accuracies are NaN when that class is absent.
    """
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    pred = DecisionRule(threshold).flags(s).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "n_real": int((y == 0).sum()),
        "n_fake": int((y == 1).sum()),
        "acc": float((pred == y).mean()) if len(y) else math.nan,
        "real_acc": float((pred[y == 0] == 0).mean()) if (y == 0).any() else math.nan,
        "fake_acc": float((pred[y == 1] == 1).mean()) if (y == 1).any() else math.nan,
        "ap": float(average_precision_score(y, s)) if both else math.nan,
        "auc": float(roc_auc_score(y, s)) if both else math.nan,
    }


def per_subset_metrics(
    labels: Sequence[int], scores: Sequence[float], subsets: Sequence[str], threshold: float = DEFAULT_THRESHOLD
) -> dict[str, dict[str, float]]:
    """Metrics per subset plus ``mean`` (unweighted over subsets) and ``all`` (pooled).

    A subset that holds only generated images (a generator of a benchmark whose real photos are shared, like
    bench-dev's ``real`` subset) is evaluated against *all* real images, so every subset has both classes.
    """
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    g = np.asarray(subsets)
    real_mask = y == 0
    out: dict[str, dict[str, float]] = {}
    for subset in sorted(set(g.tolist())):
        mask = g == subset
        if (y[mask] == 0).all() and subset == REAL_SUBSET:
            continue  # the shared real pool is not a generator of its own
        if not (y[mask] == 0).any():
            mask = mask | real_mask
        out[subset] = binary_metrics(y[mask], s[mask], threshold)
    keys = ("acc", "real_acc", "fake_acc", "ap", "auc")
    if out:
        out["mean"] = {k: float(np.nanmean([m[k] for m in out.values()])) for k in keys}
    out["all"] = binary_metrics(y, s, threshold)
    return out


def best_threshold(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Threshold that maximises balanced accuracy (mean of real-ACC and fake-ACC) on a validation set.

    Balanced accuracy is ``(TPR + 1 - FPR) / 2``, so the best threshold is the ROC point maximising ``TPR - FPR``
    (Youden's J); scikit-learn's ``roc_curve`` gives every point in one sort. Ties go to the highest threshold."""
    from sklearn.metrics import roc_curve

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    if y.min() == y.max():
        return 0.5  # one class only: nothing to balance
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    finite = np.isfinite(thresholds)
    j = (tpr - fpr)[finite]
    return float(thresholds[finite][int(np.argmax(j))])
