"""The frozen-feature probe against the embedded default, and their mean, on the probe's leave-family-out images.

    python benchmarks/probe_vs_default.py [-c configs/nirnet_probe.yaml] [--seeds 0 1 2] [--out docs/results/probe]

The probe's out-of-fold scores come from :func:`nirnet.engine.probe_fit.out_of_fold` (each fold fitted without its
families; ``--subsample`` of the training rows per seed, 1.0 = the shipped fit for seed 0). "default" here is
``nirnet_tiny_texture_dn``, the default these comparisons were made against (now nirnet_stack's member): it never
trained on any corpus family but sd1, so its probability of the same images (aligned protocol, ONNX Runtime,
cached) is out-of-fold for every family but sd1; numbers are given with and without sd1. "mean" is the ensemble
of the two probabilities, with its threshold fitted on these out-of-fold scores like the probe's. Differences are
paired bootstraps on the same images (first seed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from nirnet._atomic import atomic_write_text
from nirnet.data.datasets import Sample
from nirnet.detect import Detector
from nirnet.engine.config import load_config
from nirnet.engine.probe_fit import best_balanced_threshold, out_of_fold, recipe_features
from nirnet.eval.evaluate import score_samples
from nirnet.eval.protocol import PROTOCOLS
from nirnet.eval.stats import bootstrap_auc, bootstrap_auc_difference
from nirnet.models.registry import model_folder

#: The fixed model these benchmarks compare against: the default before nirnet_stack, which trained on sd1 alone, so
#: its score of any other corpus family is out-of-fold.
FIXED_MODEL = "nirnet_tiny_texture_dn"


def default_scores(
    paths: list[Path], labels: np.ndarray, protocol: str, cache: Path, model: str = FIXED_MODEL
) -> np.ndarray:
    """``model``'s probability of each path through ``protocol`` (NaN where unreadable), cached under the model's
    weights and the paths (the cache of a model that changes is not reused)."""
    weights = hashlib.sha256((model_folder(model) / "model.safetensors").read_bytes()).hexdigest()
    key = hashlib.sha256("\n".join([weights, protocol, *map(str, paths)]).encode()).hexdigest()[:16]
    file = cache / f"model-scores-{key}.json"
    if file.is_file():
        return np.array([np.nan if v is None else v for v in json.loads(file.read_text())])
    detector = Detector.from_pretrained(model, backend="onnx")  # only when the scores are not cached
    samples = [Sample(path=p, label=int(y), subset="-") for p, y in zip(paths, labels)]
    scored = score_samples(lambda ims: [p for p, _ in detector.predict_images(ims)], samples, PROTOCOLS[protocol])
    atomic_write_text(file, json.dumps([None if np.isnan(v) else float(v) for v in scored.scores]))
    return scored.scores


def summary(y: np.ndarray, s: np.ndarray) -> dict:
    threshold, balanced = best_balanced_threshold(y, s)
    return {"auc": bootstrap_auc(y, s), "threshold": threshold, "balanced_accuracy": balanced}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="configs/nirnet_probe.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--subsample", type=float, default=1.0)
    parser.add_argument("--cache", default="runs/feature_cache")
    parser.add_argument("--out", default=None, help="folder for probe_vs_default.md / .json")
    args = parser.parse_args()
    config = load_config(args.config)
    p = config.probe
    model, table, x, ok = recipe_features(config)
    tested = (table.labels == 1) | table.held  # every row a fold can test
    default = np.full(len(table.paths), np.nan)
    index = np.flatnonzero(tested)
    default[index] = default_scores([table.paths[i] for i in index], table.labels[index], p.protocol, Path(args.cache))
    keep = ok & (~tested | ~np.isnan(default))
    arrays = [a[keep] for a in (x, table.labels, table.families, table.sources, table.held, table.weights)]
    default = default[keep]
    result: dict = {"seeds": {}}
    seeds = args.seeds if args.subsample < 1 else args.seeds[:1]  # a full fit is the same for every seed
    lines = [
        "## The probe, the default and their mean on the probe's leave-family-out images",
        "",
        f"Pooled out-of-fold AUC (first seed's 95 % CI; mean ± sd over seeds {seeds}, {args.subsample:.0%} of"
        " the training rows); the default's scores are out-of-fold except on sd1. Balanced accuracy at the threshold"
        " fitted on these scores.",
        "",
        "| scorer | images | pooled AUC, seed 0 (CI) | mean ± sd over seeds | balanced ACC at its threshold | minus the"
        " default (paired CI) |",
        "|---|---|---|---|---|---|",
    ]
    table_rows: dict[str, dict] = {}
    for seed in seeds:
        oof = out_of_fold(*arrays, p.c, args.subsample, seed)
        y, g, d = oof.labels, oof.groups, default[oof.rows]
        for without in ([], ["sd1"]):
            m = ~np.isin(g, without)
            scorers = {"default": d[m], "probe": oof.scores[m], "mean of both": 0.5 * (d[m] + oof.scores[m])}
            for name, s in scorers.items():
                label = name + (" (without sd1)" if without else "")
                entry = table_rows.setdefault(label, {"aucs": []})
                entry["aucs"].append(bootstrap_auc(y[m], s)[0])
                if seed == seeds[0]:
                    entry.update(summary(y[m], s), n=int(m.sum()))
                    if name != "default":
                        entry["minus_default"] = bootstrap_auc_difference(y[m], s, d[m])
                    per_source = {
                        r: bootstrap_auc(y[m][(y[m] == 1) | (g[m] == r)], s[(y[m] == 1) | (g[m] == r)])[0]
                        for r in sorted(set(g[m][y[m] == 0]))
                    }
                    entry["per_real_source"] = per_source
    for label, e in table_rows.items():
        diff = e.get("minus_default")
        lines.append(
            f"| {label} | {e['n']} | {e['auc'][0]:.3f} ({e['auc'][1]:.2f}-{e['auc'][2]:.2f}) | "
            f"{np.mean(e['aucs']):.3f} ± {np.std(e['aucs']):.3f} | {e['balanced_accuracy']:.3f} at "
            f"{e['threshold']:.3f} | {'' if diff is None else f'{diff[0]:+.3f} ({diff[1]:+.3f} to {diff[2]:+.3f})'} |"
        )
    lines += ["", "Per real source (its held-out photos against every out-of-fold fake), seed 0:", ""]
    names = list(table_rows)
    sources = sorted(table_rows[names[0]]["per_real_source"])
    lines += ["| scorer | " + " | ".join(sources) + " |", "|---" * (len(sources) + 1) + "|"]
    for label in names:
        lines.append(
            f"| {label} | " + " | ".join(f"{table_rows[label]['per_real_source'][r]:.2f}" for r in sources) + " |"
        )
    result["scorers"] = table_rows
    text = "\n".join(lines)
    print(text)
    if args.out:
        atomic_write_text(Path(args.out) / "probe_vs_default.md", text + "\n")
        atomic_write_text(Path(args.out) / "probe_vs_default.json", json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
