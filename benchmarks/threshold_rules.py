"""Which rule should set a frozen-feature detector's stored threshold? Compared on out-of-fold scores and bench-dev.

    python benchmarks/threshold_rules.py --fit runs/stack/s0 --fit runs/stack/sub0 ... [--bench-cache runs/unseen_cache]

Each ``--fit`` is a run folder of ``nirnet train`` on a ``frozen_probe`` recipe with ``probe.calibrate`` (it holds
``leave_family_out_scores.csv``: the out-of-fold scores of held-out families against held-out photos). Rules:

* ``max_balanced``: the threshold of the best balanced accuracy on all out-of-fold scores (what the fit stores);
* ``max_balanced_bagged``: the median of that threshold over bootstrap resamples of the scores;
* ``equal_error``: where held-out photos and held-out generated images are misclassified at the same rate;
* ``real_<p>``: the score below which a share ``p`` of the held-out photos falls (a false-positive budget).

For each rule: the threshold on each fit (its spread over fits says how much a verdict depends on the draw), the
balanced accuracy *nested* over the family folds (the threshold chosen on the other folds' scores, applied to the
held-out fold's families and that fold's photos, so the rule is judged on families it did not see), and with
``--bench`` the real / unseen-generated / balanced accuracy on bench-dev (aligned protocol) of the fit's own model.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from nirnet.decision import DecisionRule
from nirnet.engine.probe_fit import best_balanced_threshold, read_out_of_fold_csv
from nirnet.eval.protocol import PROTOCOLS
from nirnet.eval.stats import class_accuracies
from unseen_generators import model_scores, read_manifest


def equal_error_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold where the share of photos at or above it equals the share of generated images below it."""
    candidates = np.unique(scores)
    real, generated = np.sort(scores[labels == 0]), np.sort(scores[labels == 1])
    false_pos = 1 - np.searchsorted(real, candidates, side="left") / len(real)
    false_neg = np.searchsorted(generated, candidates, side="left") / len(generated)
    return float(candidates[int(np.argmin(np.abs(false_pos - false_neg)))])


def bagged_balanced_threshold(labels: np.ndarray, scores: np.ndarray, rounds: int = 200, seed: int = 0) -> float:
    """The median, over bootstrap resamples of the images (classes separately), of the best-balanced threshold: the
    maximum of a flat curve moves with the draw, the median of where it lands moves less."""
    rng = np.random.default_rng(seed)
    real, generated = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    found = []
    for _ in range(rounds):
        rows = np.r_[rng.choice(real, real.size), rng.choice(generated, generated.size)]
        found.append(best_balanced_threshold(labels[rows], scores[rows])[0])
    return float(np.median(found))


def rules(real_quantiles: list[float]) -> dict:
    out = {
        "max_balanced": lambda y, s: best_balanced_threshold(y, s)[0],
        "max_balanced_bagged": bagged_balanced_threshold,
        "equal_error": equal_error_threshold,
    }
    for q in real_quantiles:
        out[f"real_{q:g}"] = lambda y, s, q=q: float(np.quantile(s[y == 0], q))
    return out


def accuracies(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(real, generated, balanced) accuracy of the project's decision rule at ``threshold``."""
    return class_accuracies(labels, DecisionRule(threshold).flags(scores))


def read_scores(fit: Path, protocol: str) -> dict[str, np.ndarray]:
    try:
        rows = read_out_of_fold_csv(fit / "leave_family_out_scores.csv", protocol)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    return {
        "fold": np.array([int(r["fold"]) for r in rows]),
        "label": np.array([int(r["label"]) for r in rows]),
        "score": np.array([float(r["score"]) for r in rows]),
    }


def nested(oof: dict[str, np.ndarray], rule) -> tuple[float, float, float]:
    """Accuracies when each fold's threshold comes from the other folds' scores."""
    y, s, f = oof["label"], oof["score"], oof["fold"]
    flags = np.zeros(len(s), dtype=bool)
    for fold in np.unique(f):
        flags[f == fold] = DecisionRule(rule(y[f != fold], s[f != fold])).flags(s[f == fold])
    return class_accuracies(y, flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", action="append", required=True, help="a probe fit's run folder (repeatable)")
    parser.add_argument("--protocol", default="families_and_sources", help="families_and_sources or families")
    parser.add_argument("--real-quantile", type=float, action="append", default=None, help="e.g. 0.9 (repeatable)")
    parser.add_argument("--bench", default=None, help="bench-dev folder: also score each fit's model there")
    parser.add_argument("--seen", nargs="*", default=["sd1", "sdxl", "sdxl-turbo", "flux1"])
    parser.add_argument("--bench-cache", default=None, help="unseen_generators.py --cache folder (scores reused)")
    parser.add_argument("--backend", default="onnx")
    parser.add_argument("--out", default=None, help="write threshold_rules.json here")
    args = parser.parse_args()
    chosen = rules(args.real_quantile or [0.9, 0.95])
    bench = None
    if args.bench:
        samples, _ = read_manifest(Path(args.bench))
        labels = np.array([s.label for s in samples])
        unseen = (labels == 0) | ~np.isin([s.subset for s in samples], args.seen)
        bench = (samples, labels, unseen)
    results: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for fit in map(Path, args.fit):
        oof = read_scores(fit, args.protocol)
        scored = None
        if bench is not None:
            samples, labels, unseen = bench
            scored, _ = model_scores(
                fit.name, str(fit / "final"), samples, PROTOCOLS["aligned"], args.bench_cache, args.bench, args.backend
            )
        for name, rule in chosen.items():
            threshold = rule(oof["label"], oof["score"])
            row = results[name]
            row["threshold"].append(threshold)
            row["oof"].append(accuracies(oof["label"], oof["score"], threshold))
            row["nested"].append(nested(oof, rule))
            if scored is not None:
                ok = unseen & ~np.isnan(scored)
                row["bench"].append(accuracies(labels[ok], scored[ok], threshold))
    print(f"{len(args.fit)} fits, protocol {args.protocol}; accuracies as real / generated / balanced, mean over fits")
    print()
    header = "| rule | threshold (each fit) | out-of-fold | nested over family folds |"
    print(header + (" bench-dev unseen |" if bench else ""))
    print("|---" * (5 if bench else 4) + "|")
    for name, row in results.items():
        cells = [name, ", ".join(f"{t:.3f}" for t in row["threshold"])]
        for key in ("oof", "nested", "bench") if bench else ("oof", "nested"):
            mean = np.mean(row[key], axis=0)
            spread = np.std([b for *_, b in row[key]])
            cells.append(f"{mean[0]:.3f} / {mean[1]:.3f} / **{mean[2]:.3f}** ± {spread:.3f}")
        print("| " + " | ".join(cells) + " |")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        payload = {"fits": args.fit, "protocol": args.protocol, "rules": {k: dict(v) for k, v in results.items()}}
        (Path(args.out) / "threshold_rules.json").write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
