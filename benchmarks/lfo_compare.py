"""Pooled out-of-fold AUC of leave-family-out score sets on the same held-out images, optionally without some
families (e.g. the families a fixed baseline trained on, so both are measured on families neither saw).

    python benchmarks/lfo_compare.py runs/lfo_default runs/lfo_fast [--without sd1] [--seed 0]

Each run folder is a ``leave_family_out.py --runs`` folder (``s<seed>/fold<k>/lfo_scores.json``, written by that
script, with or without ``--model``); the held-out images are re-listed from the recipe's config.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="leave_family_out.py --runs folders")
    parser.add_argument("-c", "--config", default="configs/nirnet_tiny_texture_dn_families.yaml")
    parser.add_argument("--without", nargs="*", default=[], help="families left out of the pooled AUC")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folds = [held_out_samples(args.config, fold_overrides(k, args.seed, Path("."), None), k) for k in range(len(FOLDS))]
    for root in args.runs:
        labels, scores = [], []
        for k, (samples, groups) in enumerate(folds):
            s = fold_scores(root, args.seed, k, len(samples))
            keep = ~np.isnan(s) & np.array([g not in set(args.without) for g in groups])
            labels.append(np.array([x.label for x in samples])[keep])
            scores.append(s[keep])
        y, s = np.concatenate(labels), np.concatenate(scores)
        auc, lo, hi = bootstrap_auc(y, s)
        without = f" without {', '.join(args.without)}" if args.without else ""
        counts = f"{int(y.sum())} fakes, {int((y == 0).sum())} reals"
        print(f"{root}{without}: pooled AUC {auc:.3f} ({lo:.2f}-{hi:.2f}), {counts}")


if __name__ == "__main__":
    main()
