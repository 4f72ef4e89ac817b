"""Two probe recipes compared on the same held-out images: pooled out-of-fold AUC of each and the paired difference.

    python benchmarks/paired_recipes.py --base runs/a/s0 --other runs/b/s0 [--protocol families_and_sources]

Each folder is a ``nirnet train`` run of a ``frozen_probe`` recipe with ``probe.calibrate`` (it holds
``leave_family_out_scores.csv``). The comparison keeps the test images both recipes scored, keyed by (fold, held-out
real source, path): a recipe with one more real source folder is compared on the sources both hold out, so the
difference is what the extra data does to the same images, not a change of test set. Several ``--base`` /
``--other`` pairs (same order) are several seeds; each pair's difference and their mean ± sd are printed.
``--per-family`` adds, for the first pair, each held-out family's paired difference (its images against every
shared real photo), so a claim that a family moved can be read against its own interval.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from nirnet.engine.probe_fit import read_out_of_fold_csv
from nirnet.eval.stats import bootstrap_auc, bootstrap_auc_difference


def read_scores(fit: Path, protocol: str) -> dict[tuple[str, str, str], tuple[int, float, str]]:
    try:
        rows = read_out_of_fold_csv(fit / "leave_family_out_scores.csv", protocol)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    return {(r["fold"], r["held_source"], r["path"]): (int(r["label"]), float(r["score"]), r["group"]) for r in rows}


def compare(base: Path, other: Path, protocol: str, family: str | None = None) -> dict:
    """Paired AUCs of the shared test rows; with ``family``, only that family's generated rows (and every photo)."""
    a, b = read_scores(base, protocol), read_scores(other, protocol)
    keys = sorted(k for k in set(a) & set(b) if family is None or a[k][0] == 0 or a[k][2] == family)
    if not keys:
        raise SystemExit(f"error: {base} and {other} share no scored image")
    labels = np.array([a[k][0] for k in keys])
    if any(a[k][0] != b[k][0] for k in keys):
        raise SystemExit("error: the two recipes disagree on a label")
    sa, sb = np.array([a[k][1] for k in keys]), np.array([b[k][1] for k in keys])
    images = [k[2] for k in keys]  # a photo is scored once per fold: its rows are resampled together
    return {
        "rows": len(keys),
        "images": len(set(images)),
        "only_base": len(set(a) - set(b)),
        "only_other": len(set(b) - set(a)),
        "base_auc": bootstrap_auc(labels, sa, clusters=images),
        "other_auc": bootstrap_auc(labels, sb, clusters=images),
        "difference": bootstrap_auc_difference(labels, sb, sa, clusters=images),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", action="append", required=True, help="run folder of the reference recipe")
    parser.add_argument("--other", action="append", required=True, help="run folder of the recipe compared")
    parser.add_argument("--protocol", default="families_and_sources", help="families_and_sources or families")
    parser.add_argument("--per-family", action="store_true", help="each family's paired difference (first pair)")
    args = parser.parse_args()
    if len(args.base) != len(args.other):
        raise SystemExit("error: give as many --other as --base folders (one pair per seed)")
    diffs = []
    for base, other in zip(map(Path, args.base), map(Path, args.other)):
        r = compare(base, other, args.protocol)
        d = r["difference"]
        diffs.append(d[0])
        print(
            f"{other} - {base}: {r['other_auc'][0]:.3f} vs {r['base_auc'][0]:.3f} on {r['rows']} shared test "
            f"rows of {r['images']} images ({r['only_other']} rows only in the other, {r['only_base']} only in the "
            "base): "
            f"{d[0]:+.3f} ({d[1]:+.3f} to {d[2]:+.3f})"
        )
    if len(diffs) > 1:
        print(f"mean over {len(diffs)} pairs: {np.mean(diffs):+.3f} ± {np.std(diffs, ddof=1):.3f}")
    if args.per_family:
        base, other = Path(args.base[0]), Path(args.other[0])
        scores = read_scores(base, args.protocol)
        families = sorted({group for label, _, group in scores.values() if label == 1})
        print(f"per family, {other} - {base} (interval excludes 0: *):")
        for family in families:
            r = compare(base, other, args.protocol, family)
            d = r["difference"]
            mark = "*" if d[1] > 0 or d[2] < 0 else " "
            print(
                f"  {family:14s} {r['base_auc'][0]:.3f} -> {r['other_auc'][0]:.3f}: "
                f"{d[0]:+.3f} ({d[1]:+.3f} to {d[2]:+.3f}) {mark}"
            )


if __name__ == "__main__":
    main()
