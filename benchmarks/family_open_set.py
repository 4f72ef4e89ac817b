"""Open-set scores for family attribution: which "this family is unknown" score ranks held-out families best.

    python benchmarks/family_open_set.py [--seeds 0 1 2] [--out docs/results/attribution/open_set]

The shipped head (:mod:`nirnet.family`) calls an image's family unknown when its largest softmax probability is
low. This script fits the same head on the same leave-family-out folds as ``family_attribution.py`` (the default
model's cached features; :func:`nirnet.family.open_set_folds`) and compares other scores of the same fitted heads:
softmax at other temperatures, max logit, margin, negative entropy, agreement of the image's crops, the mean of the
crops' probabilities, the max softmax over the family's typical training confidence, and distance scores on the
features themselves (cosine k-nearest training image, Mahalanobis to the nearest family mean with a shared
shrunk covariance on 32 principal components). AUROC of known (held-out files of known families) against
unknown (the fold's families), pooled over folds, mean ± sd over seeds (each seed draws other held-out files).
Every score is chosen on these folds, so the best of many is mildly optimistic.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from nirnet._atomic import atomic_write_text
from nirnet.detect import Detector
from nirnet.family import DEFAULT_PARTS, corpus_features, family_images, open_set_folds, pooled


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fold_scores(
    fold: dict, x: np.ndarray, names: np.ndarray, crop_x: np.ndarray, crop_row: np.ndarray
) -> dict[str, np.ndarray]:
    """Every candidate "known" score (higher = a known family) of one fold's held-out images."""
    head, logits, index, train = fold["head"], fold["logits"], fold["index"], fold["train"]
    probs, top = softmax(logits), logits.argmax(axis=1)
    out = {f"max_softmax T={t:g}": softmax(logits, t).max(axis=1) for t in (0.5, 1, 2, 4)}
    ranked = np.sort(logits, axis=1)
    out["max_logit"], out["margin"] = ranked[:, -1], ranked[:, -1] - ranked[:, -2]
    out["negative_entropy"] = (probs * np.log(probs + 1e-12)).sum(axis=1)
    # crop level: the head reads crop means; here each crop is read alone
    position = {row: i for i, row in enumerate(index)}
    mine = np.isin(crop_row, index)
    owner = np.array([position[r] for r in crop_row[mine]])
    crop_probs = softmax(head.logits(crop_x[mine]))
    counts = np.bincount(owner, minlength=len(index))
    agree = np.bincount(owner, weights=(crop_probs.argmax(1) == top[owner]), minlength=len(index))
    out["crop_agreement"] = agree / counts
    mean_probs = np.zeros_like(probs)
    np.add.at(mean_probs, owner, crop_probs)
    out["mean_crop_softmax_max"] = (mean_probs / counts[:, None]).max(axis=1)
    trained = softmax(head.logits(x[train]))
    typical = np.array([np.median(trained.max(1)[trained.argmax(1) == c]) if (trained.argmax(1) == c).any() else 1.0
                        for c in range(logits.shape[1])])  # fmt: skip
    out["max_softmax / family median"] = probs.max(axis=1) / typical[top]
    # feature distances, standardised on the training rows
    z = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    similarity = np.sort(unit[index] @ unit[train].T, axis=1)
    out["knn cosine k=1"], out["knn cosine k=5"] = similarity[:, -1], similarity[:, -5]
    pca = PCA(32, random_state=0).fit(z[train])
    p, fitted = pca.transform(z), names[train]
    families = sorted(set(fitted.tolist()))
    means = np.stack([p[train][fitted == f].mean(0) for f in families])
    precision = LedoitWolf().fit(p[train] - means[np.searchsorted(families, fitted)]).precision_
    d = np.stack([np.einsum("ij,jk,ik->i", p[index] - m, precision, p[index] - m) for m in means], axis=1)
    out["mahalanobis (32 PCs)"] = -d.min(axis=1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", nargs="+", default=["runs/corpus", "../shared/data/gen-train"])
    parser.add_argument("--model", default=None, help="model folder or shipped name (default: the default)")
    parser.add_argument("--c", type=float, default=0.1, help="inverse L2 strength of the head (as shipped)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cache", default="runs/family_features", help="feature cache folder")
    parser.add_argument("--out", default="docs/results/attribution/open_set", help="folder for md and json")
    args = parser.parse_args()
    start = time.time()
    parts = list(DEFAULT_PARTS)
    detector = Detector.from_pretrained(args.model, backend="torch")
    images = family_images(args.corpus)
    crop_feats, owner, ok = corpus_features(detector, images, args.cache)
    keep = np.flatnonzero(ok)
    row_of = -np.ones(len(images), dtype=np.int64)
    row_of[keep] = np.arange(len(keep))
    names = np.array([images[i].family for i in keep])
    groups = np.array([images[i].group for i in keep])
    x = pooled(crop_feats, owner, len(images), parts)[keep]
    good = row_of[owner] >= 0
    crop_x, crop_row = np.concatenate([crop_feats[p] for p in parts], axis=1)[good], row_of[owner][good]
    aurocs: dict[str, list[float]] = {}
    for seed in args.seeds:
        folds = open_set_folds(x, names, groups, parts=parts, c=args.c, seed=seed, crops=(crop_x, crop_row))
        y = np.concatenate([f["is_known"] for f in folds])
        per_fold = [fold_scores(f, x, names, crop_x, crop_row) for f in folds]
        for name in per_fold[0]:
            aurocs.setdefault(name, []).append(float(roc_auc_score(y, np.concatenate([f[name] for f in per_fold]))))
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in aurocs.items()), flush=True)
    lines = [
        f"Open-set AUROC of known vs unknown families, {len(keep)} generated images, the shipped head's features "
        f"({','.join(parts)}) and fit (C={args.c}, crops as rows); 5 leave-family-out folds pooled; seeds "
        f"{args.seeds} (mean ± sd).",
        "",
        "| known score | AUROC |",
        "|---|---|",
    ]
    for name, values in sorted(aurocs.items(), key=lambda kv: -np.mean(kv[1])):
        lines.append(f"| {name} | {np.mean(values):.3f} ± {np.std(values):.3f} |")
    lines += ["", f"{time.strftime('%Y-%m-%d')}; {time.time() - start:.0f} s."]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    atomic_write_text(out / "open_set.md", text + "\n")
    atomic_write_text(out / "open_set.json", json.dumps({"seeds": args.seeds, "auroc": aurocs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
