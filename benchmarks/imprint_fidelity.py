"""Does the imprint simulator reproduce real imprints? Leave-one-autoencoder-out detection AUC.

For every autoencoder ``h`` in the bank, a small real-vs-fake CNN is trained on 96 px crops of real photos and
tested on held-out photos against ``h``'s *real* reconstructions. Training fakes come from:

* ``own``: ``h``'s own reconstructions (upper bound);
* ``single``: the reconstructions of one other autoencoder (lower bound: one generator, no simulator);
* ``sim``: the simulator fusing the other K-1 bank entries, with extrapolation (``beta`` = 0.3);
* ``sim_b0``: the same without extrapolation (``beta`` = 0).

    python benchmarks/imprint_fidelity.py --data ../shared/data/real-train [--steps 200] [--cache cache/residuals]

Residuals are read from the cache that `nirnet imprint fit` fills (same crops, same seed), so no autoencoder
runs again when the bank was fitted with the defaults. Prints a Markdown table of AUCs.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/real-train")
    parser.add_argument("--bank", default=None, help="imprint bank (default: the shipped one)")
    parser.add_argument("--cache", default="cache/residuals")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.time()
    paths = images_under(Path(args.data))
    train_crops, held_crops, _, _ = split_crops(paths, FitConfig(seed=args.seed))
    bank = ImprintBank.load(args.bank)
    names = bank.names
    train_sets = {n: residual_set(create_autoencoder(n), train_crops, args.cache) for n in names}
    held_sets = {n: residual_set(create_autoencoder(n), held_crops, args.cache) for n in names}
    x_train = next(iter(train_sets.values())).x
    x_held = next(iter(held_sets.values())).x
    rows = []
    for k, held_out in enumerate(names):
        others = [n for n in names if n != held_out]
        test_fake = (held_sets[held_out].x - held_sets[held_out].r).clamp(0, 1)

        def recon_of(name):
            fake = (train_sets[name].x - train_sets[name].r).clamp(0, 1)
            return lambda index, _g: fake[index]

        def simulated(beta, others=others):
            sim = ImprintSimulator(bank.subset(others), SimulatorConfig(beta=beta, models_per_sample=None))
            return lambda index, g: sim(x_train[index], g).images

        result = {"held_out": held_out}
        for label, maker in (
            ("own", recon_of(held_out)),
            ("single", recon_of(others[k % len(others)])),
            ("sim", simulated(0.3)),
            ("sim_b0", simulated(0.0)),
        ):
            model = train_classifier(x_train, maker, args.steps, args.seed)
            result[label] = auc(model, x_held, test_fake)
        result["single_source"] = others[k % len(others)]
        rows.append(result)
        print(
            f"  {held_out}: " + ", ".join(f"{m} {result[m]:.3f}" for m in ("own", "single", "sim", "sim_b0")),
            flush=True,
        )
    print()
    print("| held-out autoencoder | own (upper) | single other (lower) | simulated, beta=0.3 | simulated, beta=0 |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['held_out']} | {r['own']:.3f} | {r['single']:.3f} ({r['single_source']}) | {r['sim']:.3f} "
            f"| {r['sim_b0']:.3f} |"
        )
    means = {m: np.mean([r[m] for r in rows]) for m in ("own", "single", "sim", "sim_b0")}
    print(f"| **mean** | {means['own']:.3f} | {means['single']:.3f} | {means['sim']:.3f} | {means['sim_b0']:.3f} |")
    print(
        f"\n{len(x_train)} training crops, {len(x_held)} held-out crops of {x_train.shape[-1]} px, "
        f"{args.steps} steps per classifier, seed {args.seed}, {time.time() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
