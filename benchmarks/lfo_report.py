"""A fit's leave-family-out report recomputed from its stored out-of-fold scores, with image-level intervals.

    python benchmarks/lfo_report.py --fit runs/stack_new/s0 [--protocol families] [--out DIR]

``--fit`` is a ``nirnet train`` run of a ``frozen_probe`` recipe with ``probe.calibrate`` (it holds
``leave_family_out_scores.csv`` and ``final/config.json``). Prints pooled AUC, AUC per held-out family and per real
source with 95 % bootstrap intervals that resample images (a held-out photo is scored once per fold, so its scores
move together), the image counts behind each, and the accuracies at the fit's stored threshold. Fits written
before the intervals resampled images report narrower ones in their ``leave_family_out.json``; this recomputes them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from nirnet._atomic import atomic_write_text
from nirnet.engine.probe_fit import OutOfFold, _at_threshold, leave_family_out_report, read_out_of_fold_csv
from oof_vs_fixed import short_name, stored_threshold


def out_of_fold_from_csv(path: Path, protocol: str) -> OutOfFold:
    """The stored scores of one protocol as an :class:`OutOfFold` (row = the index of the image's path)."""
    try:
        rows = read_out_of_fold_csv(path, protocol)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    if not rows:
        raise SystemExit(f"error: {path} holds no scores of protocol {protocol!r}")
    paths = {p: i for i, p in enumerate(dict.fromkeys(r["path"] for r in rows))}
    folds = sorted({int(r["fold"]) for r in rows})
    return OutOfFold(
        labels=np.array([int(r["label"]) for r in rows]),
        scores=np.array([float(r["score"]) for r in rows]),
        groups=np.array([r["group"] for r in rows], dtype=object),
        rows=np.array([paths[r["path"]] for r in rows]),
        folds=[[str(k)] for k in folds],
        held_source=np.array([r["held_source"] for r in rows], dtype=object),
        fold=np.array([int(r["fold"]) for r in rows]),
    )


def images_per_group(oof: OutOfFold) -> dict[str, int]:
    return {g: len(set(oof.rows[oof.groups == g])) for g in sorted(set(oof.groups))}


def render(report: dict, counts: dict[str, int], fit: str, protocol: str) -> str:
    def ci(v) -> str:
        return f"{v[0]:.3f} ({v[1]:.2f}-{v[2]:.2f})"

    lines = [
        f"# Leave-family-out report of {fit} ({protocol}), intervals over images",
        "",
        f"pooled AUC {ci(report['pooled_auc'])}; {report['n_real']} real and {report['n_generated']} generated "
        "scorings",
        f"at the stored threshold {report['stored_threshold']:.3f}: real {report['real_accuracy_at_stored']:.3f}, "
        f"generated {report['generated_accuracy_at_stored']:.3f}, balanced {report['balanced_accuracy_at_stored']:.3f}"
        f" (own best threshold {report['threshold']:.3f}: balanced {report['balanced_accuracy']:.3f})",
        "",
        "| held-out real source | photos | AUC against every held-out family (95 % CI) |",
        "|---|---|---|",
    ]
    for g, v in report["per_real_source_auc"].items():
        lines.append(f"| {short_name(g)} | {counts[g]} | {ci(v)} |")
    lines += ["", "| held-out family | images | AUC against the held-out photos (95 % CI) |", "|---|---|---|"]
    for g, v in report["per_family_auc"].items():
        lines.append(f"| {g} | {counts[g]} | {ci(v)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", required=True, help="run folder of a nirnet train fit with probe.calibrate")
    parser.add_argument("--protocol", default="families_and_sources", help="families_and_sources or families")
    parser.add_argument("--out", default=None, help="folder for lfo_report_<protocol>.md and .json")
    args = parser.parse_args()
    fit = Path(args.fit)
    oof = out_of_fold_from_csv(fit / "leave_family_out_scores.csv", args.protocol)
    report = _at_threshold(leave_family_out_report(oof), oof, stored_threshold(fit / "final"))
    text = render(report, images_per_group(oof), str(fit), args.protocol)
    print(text)
    if args.out:
        out = Path(args.out)
        atomic_write_text(out / f"lfo_report_{args.protocol}.md", text + "\n")
        atomic_write_text(out / f"lfo_report_{args.protocol}.json", json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
