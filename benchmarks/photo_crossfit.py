"""Leave-family-out with every real photo scored: the recipe's folds, crossed with K splits of the photos.

    python benchmarks/photo_crossfit.py -c configs/nirnet_stack.yaml [--splits 5] [--fit runs/stack/s0] \
        [--out docs/results/crossfit] [overrides such as probe.c=0.03]

The fit's own report scores its held-out families against the photos of ``data.validation`` (20 %): 14 photos
for the smallest source, so a per-source AUC has an interval 0.4 wide. Here the real photos of each source are
split into ``--splits`` parts (seeded, per source); for every part and every fold of families the recipe is fitted
without that part's photos and without the fold's families (and the recipe's held-out generated files), and
scores the fold's families against that part's photos. Every photo is then scored by fits that never saw it, and
every source's AUC rests on all its photos. Generated images are scored once per part (by fits that differ only
in their training photos); intervals resample images, so repeated scorings of one image move together.

Reported: pooled AUC, per family and per real source AUC with bootstrap intervals, the best balanced accuracy,
and with ``--fit`` the balanced accuracy at that fit's stored threshold. Features come from the recipe's cache.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from nirnet._atomic import atomic_write_text
from nirnet.decision import DecisionRule
from nirnet.engine.config import load_config
from nirnet.engine.probe_fit import (
    OutOfFold,
    content_blinding,
    detect_columns,
    leave_family_out_report,
    out_of_fold,
    recipe_features,
)
from nirnet.eval.stats import class_accuracies


def photo_splits(labels: np.ndarray, sources: np.ndarray, splits: int, seed: int) -> np.ndarray:
    """Per row, the part (0..splits-1) its real photo falls in, drawn per source so that each source spreads
    evenly over the parts; -1 for generated rows."""
    rng = np.random.default_rng(seed)
    part = np.full(len(labels), -1)
    for source in sorted(set(sources[labels == 0])):
        rows = np.flatnonzero((labels == 0) & (sources == source))
        part[rng.permutation(rows)] = np.arange(len(rows)) % splits
    return part


def crossfit(x, labels, families, sources, held, weights, c, splits, seed, **blinding) -> OutOfFold:
    """The out-of-fold scores of every part, concatenated (see the module docstring); ``blinding``: the recipe's
    ``probe.content_blind`` rows and columns."""
    part = photo_splits(labels, sources, splits, seed)
    scored = []
    for k in range(splits):
        held_k = np.where(labels == 0, part == k, held)  # this part's photos; the recipe's held generated files
        scored.append(out_of_fold(x, labels, families, sources, held_k, weights, c, 1.0, seed, **blinding))
    cat = [np.concatenate([getattr(o, f) for o in scored]) for f in ("labels", "scores", "groups", "rows")]
    held_source = np.concatenate([o.held_source for o in scored])
    fold = np.concatenate([o.fold for o in scored])
    return OutOfFold(*cat, scored[0].folds, held_source, fold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="configs/nirnet_stack.yaml")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. probe.c=0.03")
    parser.add_argument("--splits", type=int, default=5, help="parts the real photos of each source are split into")
    parser.add_argument("--fit", default=None, help="a fit folder: accuracies at its stored threshold too")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for photo_crossfit.json")
    args = parser.parse_args()
    if args.splits < 2:
        raise SystemExit("--splits must be at least 2")
    config = load_config(args.config, args.overrides)
    p = config.probe
    model, table, x, ok = recipe_features(config)
    columns = detect_columns(model, p.detect_without)
    arrays = [a[ok] for a in (table.labels, table.families, table.sources, table.held, table.weights)]
    blind, content = content_blinding(model, p.content_blind, arrays[0], arrays[1])
    blinding = {"blind": blind, "blind_columns": content[columns]}
    oof = crossfit(x[ok][:, columns], *arrays, p.c, args.splits, args.seed, **blinding)
    report = leave_family_out_report(oof)
    n_photos = len(set(oof.rows[oof.labels == 0]))
    print(f"{config.model}, C {p.c}, {args.splits} photo parts: {n_photos} photos, each scored by fits without it")
    auc = report["pooled_auc"]
    best = f"best balanced accuracy {report['balanced_accuracy']:.3f} at {report['threshold']:.3f}"
    print(f"pooled AUC {auc[0]:.3f} ({auc[1]:.2f}-{auc[2]:.2f}); {best}")
    if args.fit:
        threshold = json.loads((Path(args.fit) / "summary.json").read_text())["threshold"]
        real, generated, balanced = class_accuracies(oof.labels, DecisionRule(threshold).flags(oof.scores))
        report["at_stored"] = {"threshold": threshold, "real": real, "generated": generated, "balanced": balanced}
        print(f"at {args.fit}'s stored threshold {threshold:.3f}: real {real:.3f}, generated {generated:.3f}, "
              f"balanced {balanced:.3f}")  # fmt: skip
    counts = {s: len(set(oof.rows[(oof.labels == 0) & (oof.groups == s)])) for s in set(oof.groups[oof.labels == 0])}
    print("\nper real source (photos; AUC against every held-out family):")
    for source, (a, lo, hi) in sorted(report["per_real_source_auc"].items(), key=lambda kv: kv[1][0]):
        print(f"  {source}: {counts[source]} photos, {a:.3f} ({lo:.2f}-{hi:.2f})")
    print("\nper family (AUC against every photo):")
    for family, (a, lo, hi) in sorted(report["per_family_auc"].items(), key=lambda kv: kv[1][0]):
        print(f"  {family}: {a:.3f} ({lo:.2f}-{hi:.2f})")
    if args.out:
        report["splits"], report["seed"], report["photos"] = args.splits, args.seed, n_photos
        atomic_write_text(Path(args.out) / "photo_crossfit.json", json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
