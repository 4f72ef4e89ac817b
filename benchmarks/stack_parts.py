"""What each feature group of the stacked detector (``nirnet_stack``) earns, under leave-family-out, paired.

    python benchmarks/stack_parts.py [-c configs/nirnet_stack.yaml] [KEY=VALUE ...] [--seeds 0 1 2]
        [--hold-out-sources] [--out docs/results/stack] [--name stack_parts]

``nirnet_stack`` reads three groups of frozen features on the same images: *content* (EfficientNet-Lite1 pooled,
whole image at 224 px), *texture* (Lite0 statistics of the crops) and *member* (the default detector's branch
features and logit on the same crops). The features are the fit's own cache (``probe.feature_cache``), so every
variant below is a refit of the linear head on a subset of columns, scored with
:func:`nirnet.engine.probe_fit.out_of_fold` (the recipe's folds and held-out real photos, balanced weights) for
each seed (an 80 % subsample of the training rows), and against the full stack with the paired bootstrap of the AUC
difference (same out-of-fold images, first seed). Per real source: the AUC of all out-of-fold generated images
against that source's held-out photos; the member was trained on ``real-train``'s photos, so its rows for those
sources are in-sample for it (the other sources are not): read the per-source columns with that in mind.
``--hold-out-sources``: every fold is also fitted once per real source without that source's photos
(``out_of_fold(..., hold_out_sources=True)``), so each photo is scored by models that never saw its source, as a
user's photo is; the pooled AUC then mixes 25 models' scores (what a single threshold faces). ``KEY=VALUE``
overrides the config as ``nirnet train`` does (``model_overrides.texture_backbone=efficientnet_lite0`` adds the
texture statistics that the shipped recipe leaves out).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from nirnet._atomic import atomic_write_text
from nirnet.engine.config import load_config
from nirnet.engine.probe_fit import out_of_fold, recipe_features
from nirnet.eval.stats import bootstrap_auc, bootstrap_auc_difference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="configs/nirnet_stack.yaml")
    parser.add_argument("overrides", nargs="*", help="config overrides, a.b=value")
    parser.add_argument("--name", default="stack_parts", help="stem of the output files")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--subsample", type=float, default=0.8, help="share of training rows per seed")
    parser.add_argument("--hold-out-sources", action="store_true", help="hold each real source out as well")
    parser.add_argument("--out", default=None, help="folder for stack_parts[_sources].md / .json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.time()
    config = load_config(args.config, args.overrides)
    p = config.probe
    model, table, x, ok = recipe_features(config)
    cols = model.feature_groups()
    arrays = [a[ok] for a in (table.labels, table.families, table.sources, table.held, table.weights)]
    x = x[ok]
    names = list(cols)
    variants = {"all": names}
    for name in names:
        variants[f"without {name}"] = [n for n in names if n != name]
    for name in names:
        variants[f"{name} only"] = [name]
    result: dict = {}
    scores: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for label, used in variants.items():
        xs = np.concatenate([x[:, cols[n]] for n in used], axis=1)
        aucs = []
        for seed in args.seeds:
            oof = out_of_fold(xs, *arrays, p.c, args.subsample, seed, hold_out_sources=args.hold_out_sources)
            aucs.append(bootstrap_auc(oof.labels, oof.scores)[0])
            if seed == args.seeds[0]:
                scores[label] = (oof.labels, oof.scores, oof.groups)
        y, s, g = scores[label]
        per_source = {r: bootstrap_auc(y[(y == 1) | (g == r)], s[(y == 1) | (g == r)])[0] for r in set(g[y == 0])}
        result[label] = {"groups": used, "pooled": aucs, "first": bootstrap_auc(y, s), "per_source": per_source}
        print(f"{label}: {np.mean(aucs):.3f} ± {np.std(aucs):.3f}", flush=True)
    y0, s0, _ = scores["all"]
    for label in variants:
        if label != "all":
            y, s, _ = scores[label]
            assert np.array_equal(y, y0)
            result[label]["minus_all"] = bootstrap_auc_difference(y, s, s0)
    sources = sorted(result["all"]["per_source"])
    protocol = "leave-family-and-source-out" if args.hold_out_sources else "leave-family-out"
    lines = [
        f"## Feature groups of {config.model} ({protocol}, paired)",
        "",
        f"Pooled out-of-fold AUC, mean ± sd over seeds {args.seeds} ({args.subsample:.0%} subsamples); the interval "
        "and per-source AUCs are the first seed's; the difference is a paired bootstrap against all groups.",
        "",
        "| features | pooled AUC | first seed (95 % CI) | minus all (paired, 95 % CI) | "
        + " | ".join(r.replace("../shared/data/", "").replace("runs/", "") for r in sources)
        + " |",
        "|---|---|---|---|" + "---|" * len(sources),
    ]
    for label, v in result.items():
        d = v.get("minus_all")
        diff = f"{d[0]:+.3f} ({d[1]:+.3f} to {d[2]:+.3f})" if d else ""
        f = v["first"]
        lines.append(
            f"| {label} | {np.mean(v['pooled']):.3f} ± {np.std(v['pooled']):.3f} | {f[0]:.3f} ({f[1]:.2f}-{f[2]:.2f}) "
            f"| {diff} | " + " | ".join(f"{v['per_source'][r]:.2f}" for r in sources) + " |"
        )
    lines += ["", f"{int(ok.sum())} images, {time.time() - start:.0f} s."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        out = Path(args.out)
        stem = f"{args.name}_sources" if args.hold_out_sources else args.name
        atomic_write_text(out / f"{stem}.md", text + "\n")
        atomic_write_text(out / f"{stem}.json", json.dumps(result, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
