"""Shortcut probes per generator family: can a plain statistic tell a training photo from a family's generated
images, as the training pairs present them?

    python benchmarks/family_probes.py -c configs/nirnet_tiny_texture_dn_families.yaml [key=value ...] \\
        [--pairs 40] [--json docs/results/families/probes.json]

Draws generated training pairs exactly as ``nirnet train`` builds them (same dataset code, config, seeds and
balancing) until every family has ``--pairs`` pairs (or the key budget ends), and scores each crop with statistics
that know nothing about imprints: the four of ``pair_probes.py`` (JPEG grid, JPEG lattice, sharpness, noise level)
plus two aimed at what curators and platforms did to some families: ``colours`` (distinct RGB colours per pixel, low
for palette-quantised PNGs) and ``flat_steps`` (share of neighbouring pixels with identical RGB, high for banding).
Per family it reports each statistic's AUC (fake vs the photos they were paired with) and a logistic probe on all
six (5-fold cross-validated AUC). Criterion (issue: within 0.1 of chance): ``|AUC - 0.5| <= 0.1``.
A corner watermark (Infinity) is not probed directly: training crops are random regions, so it lies in a few
crops only; low resolution shows up as upsampling in the sharpness and noise statistics.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import numpy as np
import torch
from PIL import Image

from nirnet.data.families import family_of
from nirnet.engine.config import load_config
from nirnet.engine.train import build_dataset, generated_samples
from nirnet.eval.stats import bootstrap_auc
from pair_probes import PROBES


def colours(img: Image.Image) -> float:
    arr = np.asarray(img).reshape(-1, 3)
    packed = (arr[:, 0].astype(np.int64) << 16) | (arr[:, 1].astype(np.int64) << 8) | arr[:, 2]
    return float(len(np.unique(packed)) / len(packed))


def flat_steps(img: Image.Image) -> float:
    arr = np.asarray(img).astype(np.int16)
    same = (np.abs(np.diff(arr, axis=1)).sum(axis=2) == 0).mean() + (
        np.abs(np.diff(arr, axis=0)).sum(axis=2) == 0
    ).mean()
    return float(same / 2)


STATS = {**PROBES, "colours": colours, "flat_steps": flat_steps}


def collect(dataset, families: dict, pairs: int, max_keys: int) -> dict[str, list[tuple[Image.Image, Image.Image]]]:
    found: dict[str, list] = defaultdict(list)
    for key in range(max_keys):
        real, fake, kind, source = dataset.pair((key // 16, key % 16))
        if kind != "generated" or source is None:
            continue
        family = families[source]
        if len(found[family]) < pairs:
            found[family].append((real, fake))
        if len(found) == len(set(families.values())) and all(len(v) >= pairs for v in found.values()):
            break
    return dict(found)


def logistic_auc(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> float:
    """5-fold cross-validated AUC of a logistic regression on the standardised statistics."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.r_[real, fake]
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    folds = min(5, len(real))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    scores = cross_val_predict(probe, x, y, cv=folds, method="predict_proba")[:, 1]
    return bootstrap_auc(y, scores, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--pairs", type=int, default=40, help="pairs per family")
    parser.add_argument("--max-keys", type=int, default=4000, help="training keys to draw at most")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.time()
    config = load_config(args.config, args.overrides)
    families = {s.path: family_of(s.subset) for s in generated_samples(config)}
    dataset = build_dataset(config)
    found = collect(dataset, families, args.pairs, args.max_keys)
    report = {}
    print("| family | pairs | " + " | ".join(STATS) + " | logistic on all (CV) |")
    print("|---" * (len(STATS) + 3) + "|")
    for family in sorted(found):
        pairs = found[family]
        real = np.array([[f(r) for f in STATS.values()] for r, _ in pairs])
        fake = np.array([[f(x) for f in STATS.values()] for _, x in pairs])
        labels = np.r_[np.zeros(len(pairs)), np.ones(len(pairs))]
        row = {name: bootstrap_auc(labels, np.r_[real[:, i], fake[:, i]]) for i, name in enumerate(STATS)}
        row["logistic"] = logistic_auc(real, fake) if len(pairs) >= 5 else (float("nan"),) * 3
        report[family] = {"pairs": len(pairs), **row}

        def cell(t):
            flag = "" if abs(t[0] - 0.5) <= 0.1 else " **!**"
            return f"{t[0]:.2f}{flag}"

        cells = " | ".join(cell(row[n]) for n in STATS)
        print(
            f"| {family} | {len(pairs)} | {cells} | {cell(row['logistic'])} "
            f"({row['logistic'][1]:.2f}-{row['logistic'][2]:.2f}) |",
            flush=True,
        )
    print(f"\n{sum(len(v) for v in found.values())} pairs, {time.time() - start:.0f} s; **!** = |AUC - 0.5| > 0.1")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
