"""Does the imprint simulator reproduce real imprints? Leave-one-autoencoder-out detection AUC.

For every autoencoder ``h`` in the bank, a small real-vs-fake CNN is trained on 96 px crops of real photos and
tested on held-out photos against ``h``'s *real* reconstructions. Training fakes come from:

* ``own``: ``h``'s own reconstructions (upper bound);
* ``single``: the reconstructions of one other autoencoder (lower bound: one generator, no simulator);
* ``sim``: the simulator fusing the other K-1 bank entries, with extrapolation (``beta`` = 0.3);
* ``sim_b0``: the same without extrapolation (``beta`` = 0);
* ``sim_copula``: ``sim`` with the copula sampler (spatially and cross-channel correlated imprint noise).

    python benchmarks/imprint_fidelity.py --data ../shared/data/real-train [--steps 200] [--seeds 0 1 2]

One seed moves a cell a lot (the classifier lands on either side of an unseen autoencoder), so run several
seeds; the table gives mean ± sd over seeds per cell, and for the mean row the sd of the per-seed means.

Residuals are read from the cache that `nirnet imprint fit` fills (same crops, seed 0), so no autoencoder
runs again when the bank was fitted with the defaults. Prints a Markdown table of AUCs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from nirnet.data.datasets import images_under
from nirnet.imprint.autoencoders import create_autoencoder
from nirnet.imprint.bank import ImprintBank
from nirnet.imprint.fit import FitConfig, residual_set, split_crops
from nirnet.imprint.fusion import ImprintSimulator, SimulatorConfig


def small_cnn() -> nn.Module:
    """A compact detector: fixed-free high-pass learning convs, then pooling (sees 96 px crops)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=4), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 1),
    )  # fmt: skip


def train_classifier(real: torch.Tensor, make_fake, steps: int, seed: int) -> nn.Module:
    """``make_fake(index, generator)`` returns the fake twins of ``real[index]``."""
    torch.manual_seed(seed)
    model = small_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        index = torch.randint(len(real), (16,), generator=generator)
        fake = make_fake(index, generator)
        x = torch.cat([real[index], fake]) - 0.5
        y = torch.cat([torch.zeros(16), torch.ones(16)])
        loss = nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def auc(model: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> float:
    scores = torch.cat([model(real - 0.5), model(fake - 0.5)]).squeeze(1).numpy()
    labels = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    return float(roc_auc_score(labels, scores))


COLUMNS = {
    "own": "own (upper)",
    "single": "single other (lower)",
    "sim": "simulated, beta=0.3",
    "sim_b0": "simulated, beta=0",
    "sim_copula": "simulated copula, beta=0.3",
}


def run_seed(bank, names, train_sets, held_sets, columns, steps: int, seed: int) -> list[dict]:
    """One AUC per (held-out autoencoder, column) for one seed of classifiers and simulator draws."""
    x_train = next(iter(train_sets.values())).x
    x_held = next(iter(held_sets.values())).x
    rows = []
    for k, held_out in enumerate(names):
        others = [n for n in names if n != held_out]
        test_fake = (held_sets[held_out].x - held_sets[held_out].r).clamp(0, 1)

        def recon_of(name):
            fake = (train_sets[name].x - train_sets[name].r).clamp(0, 1)
            return lambda index, _g: fake[index]

        def simulated(beta, sampler="independent", others=others):
            config = SimulatorConfig(beta=beta, models_per_sample=None, sampler=sampler)
            sim = ImprintSimulator(bank.subset(others), config)
            return lambda index, g: sim(x_train[index], g).images

        single_source = others[k % len(others)]
        makers = {
            "own": lambda h=held_out: recon_of(h),
            "single": lambda s=single_source: recon_of(s),
            "sim": lambda: simulated(0.3),
            "sim_b0": lambda: simulated(0.0),
            "sim_copula": lambda: simulated(0.3, "copula"),
        }
        result = {"held_out": held_out, "single_source": single_source}
        for column in columns:
            model = train_classifier(x_train, makers[column](), steps, seed)
            result[column] = auc(model, x_held, test_fake)
        rows.append(result)
        print(f"  seed {seed} {held_out}: " + ", ".join(f"{c} {result[c]:.3f}" for c in columns), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/real-train")
    parser.add_argument("--bank", default=None, help="imprint bank (default: the shipped one)")
    parser.add_argument("--cache", default="cache/residuals")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="classifier and simulator seeds")
    parser.add_argument("--columns", nargs="+", default=list(COLUMNS), choices=list(COLUMNS))
    parser.add_argument("--json", default=None, help="also write every cell of every seed here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.time()
    paths = images_under(Path(args.data))
    # Crops (and so the cached residuals) stay fixed; the seeds vary classifiers, batches and simulator draws.
    train_crops, held_crops, _, _ = split_crops(paths, FitConfig(seed=0))
    bank = ImprintBank.load(args.bank)
    names = bank.names
    train_sets = {n: residual_set(create_autoencoder(n), train_crops, args.cache) for n in names}
    held_sets = {n: residual_set(create_autoencoder(n), held_crops, args.cache) for n in names}
    per_seed = [run_seed(bank, names, train_sets, held_sets, args.columns, args.steps, s) for s in args.seeds]
    cols = args.columns
    print()
    print("| held-out autoencoder | " + " | ".join(COLUMNS[c] for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    table = {}
    for i, name in enumerate(names):
        cells = []
        for c in cols:
            values = np.array([rows[i][c] for rows in per_seed])
            table.setdefault(c, []).append(values)
            cells.append(f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    means = []
    for c in cols:
        per_seed_mean = np.stack(table[c]).mean(axis=0)  # mean over autoencoders, one value per seed
        sd = per_seed_mean.std(ddof=1) if len(per_seed_mean) > 1 else 0.0
        means.append(f"**{per_seed_mean.mean():.3f}** ± {sd:.3f}")
    print("| **mean** | " + " | ".join(means) + " |")
    x_train = next(iter(train_sets.values())).x
    x_held = next(iter(held_sets.values())).x
    print(
        f"\n{len(x_train)} training crops, {len(x_held)} held-out crops of {x_train.shape[-1]} px, "
        f"{args.steps} steps per classifier, seeds {args.seeds} (mean ± sd over seeds), "
        f"{time.time() - start:.0f} s"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"seeds": args.seeds, "steps": args.steps, "rows": per_seed}, handle, indent=2)


if __name__ == "__main__":
    main()
