"""Reports: Markdown tables and plots (ROC per subset, accuracy vs degradation)."""

from __future__ import annotations

import math
import os

import numpy as np

from .evaluate import ScoredSet

COLUMNS = ("auc", "ap", "acc", "real_acc", "fake_acc")


def _fmt(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def metrics_table(metrics: dict[str, dict[str, float]], title: str | None = None) -> str:
    lines = [f"**{title}**", ""] if title else []
    lines += ["| subset | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for subset, m in metrics.items():
        name = f"**{subset}**" if subset in ("mean", "all") else subset
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def robustness_table(rows: list[dict]) -> str:
    lines = ["| degradation | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for r in rows:
        lines.append(f"| {r['label']} | " + " | ".join(_fmt(r.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def plot_roc(scored: ScoredSet, out_path: str | os.PathLike, title: str = "ROC per subset") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    ok = ~np.isnan(scored.scores)
    labels = np.array([s.label for s in scored.samples])[ok]
    subsets = np.array([s.subset for s in scored.samples])[ok]
    scores = scored.scores[ok]
    fig, ax = plt.subplots(figsize=(6, 6))
    for subset in sorted(set(subsets[labels == 1].tolist())):
        mask = (subsets == subset) | (labels == 0)
        fpr, tpr, _ = roc_curve(labels[mask], scores[mask])
        ax.plot(fpr, tpr, label=subset)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate (real called generated)")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)


def plot_robustness(rows: list[dict], out_path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clean = next((r for r in rows if r["family"] == "none"), None)
    families = [f for f in ("jpeg", "blur", "resize") if any(r["family"] == f for r in rows)]
    fig, axes = plt.subplots(1, len(families), figsize=(4 * len(families), 3.5), squeeze=False)
    for ax, family in zip(axes[0], families):
        cells = [r for r in rows if r["family"] == family]
        xs = [r["value"] for r in cells]
        for metric in ("auc", "acc"):
            ax.plot(xs, [r[metric] for r in cells], marker="o", label=f"mean {metric}")
        if clean:
            ax.axhline(clean["auc"], color="gray", ls="--", lw=0.8, label="clean AUC")
        ax.set_title(family)
        ax.set_xlabel({"jpeg": "quality", "blur": "sigma", "resize": "scale"}[family])
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
