"""Generator-family attribution with the detector's features: closed-set accuracy and the open-set "unknown".

    python benchmarks/family_attribution.py [--seeds 0 1 2] [--out docs/results/attribution] \\
        [--corpus runs/corpus --extra ../shared/data/gen-train] [--parts head_input,texture] [--c 0.1] [--sweep]

Every generated image of the datasets is read once through the default detector's inference preprocessing (its
crops, as ``nirnet detect`` reads them) and described by the crop means of ``NIRNet.embed``'s features (cached).
The head is the one ``nirnet family fit`` ships (:mod:`nirnet.family`): class-balanced multinomial logistic
regression on standardised features, for the families with >= 8 images.

* Closed set: 5-fold splits by source file (``StratifiedGroupKFold``; tiles cut from one grid never on both
  sides), each image predicted once per seed by a head that never saw its file. Top-1 / top-3 accuracy per family;
  the 95 % interval is a bootstrap over the family's source files (the unit that is independent), pooled over
  seeds. Headline: the mean over families with >= 15 images of their top-1 accuracy (each family counts once).
* Open set: the five leave-family-out folds of ``nirnet.data.families.LEAVE_OUT_FOLDS``: the head is fitted without
  the fold's families and without a quarter of every other family's source files; AUROC of "unknown" (the fold's
  families, positives) against the held-out files of known families, by the open-set score (max softmax, energy).
* ``--sweep``: the same numbers for other feature parts, regularisation strengths and crop-level training, so the
  choice of the shipped head is on the record (it is chosen on these same folds: mildly optimistic).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from nirnet._atomic import atomic_write_text
from nirnet.detect import Detector
from nirnet.family import (
    DEFAULT_PARTS,
    OPEN_SET_SCORES,
    calibrate_open_set,
    corpus_features,
    family_images,
    fit_rows,
    known_families,
    known_score,
    open_set_folds,
    pooled,
)

HEADLINE_MIN = 15  # families with at least this many images enter the headline accuracy


def closed_set(x, names, groups, seed: int, c: float, parts, folds: int = 5, crops=None) -> dict[str, np.ndarray]:
    """Out-of-fold top-3 predictions of every image of a known family (``crops``: (per-crop x, owner) to train on
    single crops instead of crop means)."""
    known = known_families(names)
    keep = np.flatnonzero(np.isin(names, known))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    top3 = np.empty((len(keep), 3), dtype=object)
    for train, test in splitter.split(x[keep], names[keep], groups[keep]):
        mask = np.zeros(len(names), dtype=bool)
        mask[keep[train]] = True
        head = fit_rows(x, names, mask, crops, parts=parts, c=c)
        probs = head.probabilities(x[keep[test]])
        order = np.argsort(-probs, axis=1)[:, :3]
        top3[test] = np.asarray(head.families)[order]
    return {"index": keep, "true": names[keep], "top3": top3, "group": groups[keep]}


def cluster_bootstrap(correct: np.ndarray, groups: np.ndarray, rounds: int = 1000, seed: int = 0) -> tuple:
    """(mean, lower, upper) of ``correct``, resampling whole groups (source files)."""
    unique = sorted(set(groups.tolist()))
    sums = np.array([correct[groups == g].sum() for g in unique])
    counts = np.array([(groups == g).sum() for g in unique])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(unique), size=(rounds, len(unique)))
    values = sums[picks].sum(1) / counts[picks].sum(1)
    return float(correct.mean()), float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))


def summarise_closed(runs: list[dict], counts: dict[str, int]) -> dict:
    families = sorted(set(runs[0]["true"].tolist()))
    per_family = {}
    for family in families:
        top1_seeds, top3_seeds, top1_all, top3_all, group_all = [], [], [], [], []
        for r in runs:
            rows = r["true"] == family
            top1 = r["top3"][rows, 0] == family
            top3 = (r["top3"][rows] == family).any(1)
            top1_seeds.append(top1.mean()), top3_seeds.append(top3.mean())
            top1_all.append(top1), top3_all.append(top3), group_all.append(r["group"][rows])
        g = np.concatenate(group_all)
        per_family[family] = {
            "images": counts[family],
            "source_files": len(set(runs[0]["group"][runs[0]["true"] == family].tolist())),
            "top1": cluster_bootstrap(np.concatenate(top1_all).astype(float), g),
            "top3": cluster_bootstrap(np.concatenate(top3_all).astype(float), g),
            "top1_seeds": [float(v) for v in top1_seeds],
            "top3_seeds": [float(v) for v in top3_seeds],
        }
    big = [f for f in families if counts[f] >= HEADLINE_MIN]
    headline = [float(np.mean([per_family[f]["top1_seeds"][i] for f in big])) for i in range(len(runs))]
    headline3 = [float(np.mean([per_family[f]["top3_seeds"][i] for f in big])) for i in range(len(runs))]
    micro = [float(np.mean(r["top3"][:, 0] == r["true"])) for r in runs]
    macro_all = [float(np.mean([per_family[f]["top1_seeds"][i] for f in families])) for i in range(len(runs))]
    return {
        "families": per_family,
        "headline_families": big,
        "top1_big_mean": headline,
        "top3_big_mean": headline3,
        "top1_all_macro": macro_all,
        "top1_micro": micro,
    }


def summarise_open(folds_by_seed: dict[int, list[dict]]) -> dict:
    out: dict = {}
    for kind in OPEN_SET_SCORES:
        per_seed, per_fold = [], defaultdict(list)
        for folds in folds_by_seed.values():
            y = np.concatenate([1 - f["is_known"] for f in folds])  # positive = an unseen family
            s = np.concatenate([-known_score(f["logits"], kind) for f in folds])
            per_seed.append(float(roc_auc_score(y, s)))
            for i, f in enumerate(folds):
                per_fold[i].append(float(roc_auc_score(1 - f["is_known"], -known_score(f["logits"], kind))))
        pooled_folds = [f for folds in folds_by_seed.values() for f in folds]
        out[kind] = {
            "auroc_seeds": per_seed,
            "auroc_fold_mean": {i: float(np.mean(v)) for i, v in per_fold.items()},
            "calibration": calibrate_open_set(pooled_folds, kind),
        }
    first = next(iter(folds_by_seed.values()))
    unseen = np.concatenate([f["family"][f["is_known"] == 0] for f in first])
    out["unseen_families"] = sorted(set(unseen.tolist()))
    return out


def spread(values: list[float], pct: bool = False) -> str:
    k = 100 if pct else 1
    fmt = "{:.1f}" if pct else "{:.3f}"
    mean = fmt.format(k * np.mean(values))
    return f"{mean} ± {fmt.format(k * np.std(values, ddof=1))}" if len(values) > 1 else mean


def evaluate(x, names, groups, seeds, c, parts, counts, crops=None) -> tuple[dict, dict, list[dict]]:
    runs = [closed_set(x, names, groups, seed, c, parts, crops=crops) for seed in seeds]
    closed = summarise_closed(runs, counts)
    folds_by_seed = {s: open_set_folds(x, names, groups, parts=parts, c=c, seed=s, crops=crops) for s in seeds}
    return closed, summarise_open(folds_by_seed), runs


def confusion_plot(runs: list[dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted(set(runs[0]["true"].tolist()))
    index = {f: i for i, f in enumerate(families)}
    matrix = np.zeros((len(families), len(families)))
    for r in runs:
        for t, p in zip(r["true"], r["top3"][:, 0]):
            matrix[index[t], index[p]] += 1
    matrix /= matrix.sum(1, keepdims=True)
    fig, ax = plt.subplots(figsize=(9, 8))
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(families)), families, rotation=60, ha="right")
    ax.set_yticks(range(len(families)), families)
    for i in range(len(families)):
        for j in range(len(families)):
            if matrix[i, j] >= 0.005:
                colour = "white" if matrix[i, j] > 0.5 else "black"
                ax.text(j, i, f"{matrix[i, j]:.2f}".lstrip("0"), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xlabel("predicted family (top 1)")
    ax.set_ylabel("true family")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def render(closed: dict, opened: dict, args, n_images: int, seconds: float, sweep: list[dict]) -> str:
    big = closed["headline_families"]
    lines = [
        f"Family attribution of `{args.model or 'the default model'}`'s features, head: parts "
        f"`{','.join(args.parts)}`, C={args.c}, trained on {args.rows}; seeds {args.seeds}; {n_images} generated "
        "images.",
        "",
        "| | value (mean ± sd over seeds) |",
        "|---|---|",
        f"| closed-set top-1, mean over the {len(big)} families with >= {HEADLINE_MIN} images | "
        f"{spread(closed['top1_big_mean'], True)} % |",
        f"| closed-set top-3, same families | {spread(closed['top3_big_mean'], True)} % |",
        f"| closed-set top-1, mean over all {len(closed['families'])} known families | "
        f"{spread(closed['top1_all_macro'], True)} % |",
        f"| closed-set top-1, all images (micro) | {spread(closed['top1_micro'], True)} % |",
    ]
    for kind in OPEN_SET_SCORES:
        cal = opened[kind]["calibration"]
        lines.append(
            f"| open-set AUROC of unknown ({kind}), 5 leave-family-out folds pooled | "
            f"{spread(opened[kind]['auroc_seeds'])} |"
        )
        lines.append(
            f"| at its balanced threshold ({kind} {cal['threshold']:.3f}, all seeds pooled) | known kept "
            f"{100 * cal['known_kept']:.1f} %, unknown caught {100 * cal['unknown_caught']:.1f} % |"
        )
    lines += [
        "",
        "Closed set per family (95 % interval: bootstrap over source files, seeds pooled):",
        "",
        "| family | images | source files | top-1 % | top-3 % |",
        "|---|---|---|---|---|",
    ]
    rows = sorted(closed["families"].items(), key=lambda kv: -kv[1]["images"])
    for family, r in rows:
        t1, t3 = r["top1"], r["top3"]
        lines.append(
            f"| {family} | {r['images']} | {r['source_files']} | {100 * t1[0]:.1f} ({100 * t1[1]:.0f}-"
            f"{100 * t1[2]:.0f}) | {100 * t3[0]:.1f} ({100 * t3[1]:.0f}-{100 * t3[2]:.0f}) |"
        )
    lines += ["", "Open set per leave-family-out fold (AUROC of unknown, mean over seeds):", ""]
    lines += ["| fold | unseen families | max_softmax | energy |", "|---|---|---|---|"]
    from nirnet.data.families import LEAVE_OUT_FOLDS

    for i, fold in enumerate(LEAVE_OUT_FOLDS):
        a = opened["max_softmax"]["auroc_fold_mean"].get(i)
        b = opened["energy"]["auroc_fold_mean"].get(i)
        if a is not None:
            lines.append(f"| {i} | {', '.join(fold)} | {a:.3f} | {b:.3f} |")
    if sweep:
        lines += ["", "Sweep (same folds and seeds):", ""]
        lines += [
            "| parts | C | training rows | top-1 (>= 15 images) % | top-1 all families % | AUROC max_softmax |"
            " AUROC energy |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in sweep:
            lines.append(
                f"| {s['parts']} | {s['c']} | {s['rows']} | {spread(s['top1_big'], True)} | "
                f"{spread(s['top1_all'], True)} | {spread(s['auroc_max_softmax'])} | {spread(s['auroc_energy'])} |"
            )
    lines += ["", f"{time.strftime('%Y-%m-%d')}; {seconds:.0f} s (features from the cache when present)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", nargs="+", default=["runs/corpus"], help="datasets with a manifest.csv")
    parser.add_argument("--extra", nargs="*", default=["../shared/data/gen-train"], help="more datasets")
    parser.add_argument("--model", default=None, help="model folder or shipped name (default: the default)")
    parser.add_argument("--parts", default=",".join(DEFAULT_PARTS), help="feature parts of the head")
    parser.add_argument("--c", type=float, default=0.1, help="inverse L2 strength of the head")
    parser.add_argument("--rows", default="crops", choices=["crops", "images"], help="training rows of the head")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cache", default="runs/family_features", help="feature cache folder")
    parser.add_argument("--out", default="docs/results/attribution", help="folder for md, json and png")
    parser.add_argument("--sweep", action="store_true", help="also try other parts, C and crop-level training")
    args = parser.parse_args()
    args.parts = [p for p in args.parts.split(",") if p]
    start = time.time()
    detector = Detector.from_pretrained(args.model, backend="torch")
    images = family_images([*args.corpus, *args.extra])
    crop_feats, owner, ok = corpus_features(
        detector,
        images,
        args.cache,
        progress=lambda i, n: print(f"features {i}/{n}", flush=True) if i % 50 == 0 else None,
    )
    keep = np.flatnonzero(ok)
    remap = -np.ones(len(images), dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    names = np.array([images[i].family for i in keep])
    groups = np.array([images[i].group for i in keep])
    counts = {f: int((names == f).sum()) for f in set(names.tolist())}

    def features(parts) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        x = pooled(crop_feats, owner, len(images), parts)[keep]
        crop_x = np.concatenate([crop_feats[p] for p in parts], axis=1)
        good = remap[owner] >= 0
        return x, (crop_x[good], remap[owner][good])

    x, crops = features(args.parts)
    closed, opened, runs = evaluate(
        x, names, groups, args.seeds, args.c, args.parts, counts, crops if args.rows == "crops" else None
    )
    sweep = []
    if args.sweep:
        options = [
            (p, c, "images")
            for p in ("head_input", "hidden", "texture", "head_input,texture", "head_input,hidden,texture")
            for c in (0.01, 0.1, 1.0)
        ]
        options += [(p, c, "crops") for p in ("texture", "head_input,texture") for c in (0.1, 1.0)]
        for parts, c, rows in options:
            xs, crops = features(parts.split(","))
            cl, op, _ = evaluate(
                xs, names, groups, args.seeds, c, parts.split(","), counts, crops if rows == "crops" else None
            )
            sweep.append(
                {
                    "parts": parts,
                    "c": c,
                    "rows": rows,
                    "top1_big": cl["top1_big_mean"],
                    "top1_all": cl["top1_all_macro"],
                    "auroc_max_softmax": op["max_softmax"]["auroc_seeds"],
                    "auroc_energy": op["energy"]["auroc_seeds"],
                }
            )
            print(sweep[-1], flush=True)
    text = render(closed, opened, args, len(keep), time.time() - start, sweep)
    print(text)
    out = Path(args.out)
    atomic_write_text(out / "attribution.md", text + "\n")
    payload = {
        "parts": args.parts,
        "c": args.c,
        "rows": args.rows,
        "seeds": args.seeds,
        "closed": closed,
        "open": opened,
        "sweep": sweep,
    }
    atomic_write_text(out / "attribution.json", json.dumps(payload, indent=1, default=float) + "\n")
    confusion_plot(runs, out / "confusion.png", f"closed-set top-1, {len(args.seeds)} seeds pooled (row-normalised)")


if __name__ == "__main__":
    main()
