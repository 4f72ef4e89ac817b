"""Pooled out-of-fold AUC of leave-family-out score sets on the same held-out images, optionally without some
families (e.g. the families a fixed baseline trained on, so both are measured on families neither saw).

    python benchmarks/lfo_compare.py runs/lfo_default runs/lfo_fast runs/lfo_default+runs/lfo_fast \
        [--without sd1] [--seeds 0 1 2]

Each run folder is a ``leave_family_out.py --runs`` folder (``s<seed>/fold<k>/lfo_scores.json``, written by that
script, with or without ``--model``); the held-out images are re-listed from the recipe's config. ``A+B`` is an
ensemble: the mean of the two score sets' probabilities per image (as ``unseen_generators.py`` pairs models).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from leave_family_out import FOLDS, fold_overrides, held_out_samples
from nirnet.eval.stats import bootstrap_auc


def fold_scores(root: Path, seed: int, fold: int, count: int) -> np.ndarray:
    stored = json.loads((root / f"s{seed}" / f"fold{fold}" / "lfo_scores.json").read_text())
    if len(stored["scores"]) != count:
        raise SystemExit(f"{root}: fold {fold} holds {len(stored['scores'])} scores for {count} images")
    return np.array([np.nan if v is None else v for v in stored["scores"]])


def run_scores(spec: str, seed: int, fold: int, count: int) -> np.ndarray:
    """One run's held-out probabilities, or the mean of several runs' for ``A+B``."""
    return np.mean([fold_scores(Path(part), seed, fold, count) for part in spec.split("+")], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="leave_family_out.py --runs folders; A+B = their mean probability")
    parser.add_argument("-c", "--config", default="configs/nirnet_tiny_texture_dn_families.yaml")
    parser.add_argument("--without", nargs="*", default=[], help="families left out of the pooled AUC")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="held-out draws (training seeds)")
    args = parser.parse_args()
    aucs: dict[str, list[float]] = {root: [] for root in args.runs}
    without = f" without {', '.join(args.without)}" if args.without else ""
    for seed in args.seeds:
        folds = [held_out_samples(args.config, fold_overrides(k, seed, Path("."), None), k) for k in range(len(FOLDS))]
        for root in args.runs:
            labels, scores, names = [], [], []
            for k, (samples, groups) in enumerate(folds):
                s = run_scores(root, seed, k, len(samples))
                keep = ~np.isnan(s) & np.array([g not in set(args.without) for g in groups])
                labels.append(np.array([x.label for x in samples])[keep])
                scores.append(s[keep])
                names.append(np.array(groups)[keep])
            y, s, g = np.concatenate(labels), np.concatenate(scores), np.concatenate(names)
            auc, lo, hi = bootstrap_auc(y, s)
            aucs[root].append(auc)
            counts = f"{int(y.sum())} fakes, {int((y == 0).sum())} reals"
            print(f"seed {seed} {root}{without}: pooled AUC {auc:.3f} ({lo:.2f}-{hi:.2f}), {counts}")
            # each real source's held-out photos against all held-out fakes (the "every real source")
            per_source = []
            for source in sorted(set(g[y == 0].tolist())):
                pick = (y == 1) | (g == source)
                per_source.append(f"{source} {bootstrap_auc(y[pick], s[pick])[0]:.2f}")
            print(f"    per real source: {', '.join(per_source)}")
    if len(args.seeds) > 1:
        for root, values in aucs.items():
            print(f"{root}{without}: pooled AUC {np.mean(values):.3f} ± {np.std(values):.3f} over seeds {args.seeds}")


if __name__ == "__main__":
    main()
