"""A probe recipe's out-of-fold scores against a fixed model's scores of the same images, paired.

    python benchmarks/oof_vs_fixed.py --fit runs/stack_port/s0 [--model nirnet_tiny_texture_dn]
                                      [--protocol families] [--without sd1] [--out DIR]

``--fit`` is a ``nirnet train`` run of a ``frozen_probe`` recipe with ``probe.calibrate``: its
``leave_family_out_scores.csv`` holds every test row of the leave-family-out folds (fold, held-out real source, path,
label, group, score). The fixed model (default: ``nirnet_tiny_texture_dn``, the default before nirnet_stack, which
trained on sd1 alone) scores each image once through the aligned protocol (ONNX Runtime, cached under its weights),
so on the families it never trained on its score is out-of-fold too; ``--without`` drops groups (e.g. ``sd1``, the
fixed model's own training family) from every number. Prints pooled AUC of both with 95 % bootstrap intervals, the
paired difference, each one's balanced accuracy at its own stored threshold, and AUC per real source and per
held-out family.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from nirnet._atomic import atomic_write_text
from nirnet.decision import DecisionRule
from nirnet.engine.probe_fit import read_out_of_fold_csv
from nirnet.eval.stats import bootstrap_auc, bootstrap_auc_difference, class_accuracies
from nirnet.models.registry import config_from_dict, model_folder
from probe_vs_default import FIXED_MODEL, default_scores


def short_name(group: str) -> str:
    """A real source folder's short name: ``runs/corpus/real/real`` -> corpus, ``.../real-train/bsds500`` -> bsds500."""
    parts = Path(group).parts
    return parts[-3] if len(parts) >= 3 and parts[-1] == "real" else parts[-1]


def stored_threshold(folder: Path) -> float:
    """A model folder's stored threshold, read from its config without building the model."""
    return config_from_dict(json.loads((folder / "config.json").read_text())).threshold


def compare(rows: list[dict[str, str]], fixed: np.ndarray, fit_threshold: float, fixed_threshold: float) -> dict:
    y = np.array([int(r["label"]) for r in rows])
    groups = np.array([r["group"] for r in rows])
    images = np.array([r["path"] for r in rows])  # a photo is scored once per fold: resampled as one
    scores = {"fit": np.array([float(r["score"]) for r in rows]), "fixed": fixed}
    thresholds = {"fit": fit_threshold, "fixed": fixed_threshold}
    out: dict = {"images": len(rows), "generated": int(y.sum()), "real": int((y == 0).sum())}
    for name, s in scores.items():
        real_acc, generated_acc, balanced = class_accuracies(y, DecisionRule(thresholds[name]).flags(s))
        out[name] = {
            "auc": bootstrap_auc(y, s, clusters=images),
            "threshold": thresholds[name],
            "real_accuracy": real_acc,
            "generated_accuracy": generated_acc,
            "balanced_accuracy": balanced,
            "per_real_source": {
                g: bootstrap_auc(y[(y == 1) | (groups == g)], s[(y == 1) | (groups == g)])[0]
                for g in sorted(set(groups[y == 0]))
            },
            "per_family": {
                g: bootstrap_auc(y[(y == 0) | (groups == g)], s[(y == 0) | (groups == g)])[0]
                for g in sorted(set(groups[y == 1]))
            },
        }
    out["difference"] = bootstrap_auc_difference(y, scores["fit"], scores["fixed"], clusters=images)
    return out


def render(result: dict, fit: str, model: str) -> str:
    a, b = result["fit"], result["fixed"]
    d = result["difference"]
    lines = [
        f"{result['images']} test rows ({result['generated']} generated, {result['real']} real), protocol "
        f"{result['protocol']}{', without ' + ', '.join(result['without']) if result['without'] else ''}",
        "",
        "| scorer | pooled AUC (95 % CI) | real / generated / balanced accuracy at its threshold |",
        "|---|---|---|",
    ]
    for name, e in ((fit, a), (model, b)):
        lines.append(
            f"| {name} | {e['auc'][0]:.3f} ({e['auc'][1]:.2f}-{e['auc'][2]:.2f}) | {e['real_accuracy']:.3f} / "
            f"{e['generated_accuracy']:.3f} / {e['balanced_accuracy']:.3f} at {e['threshold']:.3f} |"
        )
    lines += ["", f"Paired difference (fit minus {model}): {d[0]:+.3f} ({d[1]:+.3f} to {d[2]:+.3f})", ""]
    for part in ("per_real_source", "per_family"):
        keys = list(a[part])
        lines += [
            f"| {part.replace('_', ' ')} | " + " | ".join(short_name(k) for k in keys) + " |",
            "|---" * (len(keys) + 1) + "|",
        ]
        for name, e in ((fit, a), (model, b)):
            lines.append(f"| {name} | " + " | ".join(f"{e[part][k]:.2f}" for k in keys) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", required=True, help="run folder of the probe recipe (leave_family_out_scores.csv)")
    parser.add_argument("--model", default=FIXED_MODEL, help="fixed model: shipped name or model folder")
    parser.add_argument("--protocol", default="families", help="families or families_and_sources")
    parser.add_argument("--without", nargs="*", default=[], help="groups (families) left out of every number")
    parser.add_argument("--cache", default="runs/feature_cache", help="folder of the fixed model's cached scores")
    parser.add_argument("--out", default=None, help="folder for oof_vs_fixed.md / .json")
    args = parser.parse_args()
    fit = Path(args.fit)
    try:
        rows = read_out_of_fold_csv(fit / "leave_family_out_scores.csv", args.protocol)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    rows = [r for r in rows if r["group"] not in set(args.without)]
    paths = sorted({r["path"] for r in rows})
    labels = {r["path"]: int(r["label"]) for r in rows}
    scored = default_scores(
        [Path(p) for p in paths], np.array([labels[p] for p in paths]), "aligned", Path(args.cache), args.model
    )
    by_path = dict(zip(paths, scored))
    rows = [r for r in rows if not np.isnan(by_path[r["path"]])]  # unreadable for the fixed model: left out
    fixed = np.array([by_path[r["path"]] for r in rows])
    result = compare(rows, fixed, stored_threshold(fit / "final"), stored_threshold(model_folder(args.model)))
    result.update(protocol=args.protocol, without=args.without, fit_run=str(fit), fixed_model=args.model)
    text = render(result, str(fit), args.model)
    print(text)
    if args.out:
        out = Path(args.out)
        suffix = "_without_" + "_".join(args.without) if args.without else ""
        atomic_write_text(out / f"oof_vs_fixed_{args.protocol}{suffix}.md", text + "\n")
        atomic_write_text(
            out / f"oof_vs_fixed_{args.protocol}{suffix}.json", json.dumps(result, indent=1, default=float)
        )


if __name__ == "__main__":
    main()
