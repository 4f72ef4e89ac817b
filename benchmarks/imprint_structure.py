"""Do simulated imprints have the spatial and colour structure of real residuals? Independent vs copula sampler.

    python benchmarks/imprint_structure.py [--data ../shared/data/real-train] [--bank FILE] [--crops 64]

For every bank entry: the held-out real residuals ``r = x - D(E(x))`` of that autoencoder (read from the residual
cache that `nirnet imprint fit` fills) against single-source simulated imprints of the same crops (that entry
alone, gamma = 1, beta = 0), drawn by the independent and by the copula sampler. Prints the lag-1 correlation of
neighbouring pixels (horizontal and vertical, mean over channels) and the mean correlation between colour channels.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from nirnet.data.datasets import images_under
from nirnet.imprint.autoencoders import create_autoencoder
from nirnet.imprint.bank import ImprintBank
from nirnet.imprint.copula import neighbour_correlations
from nirnet.imprint.fit import FitConfig, residual_set, split_crops
from nirnet.imprint.fusion import ImprintSimulator, SimulatorConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/real-train")
    parser.add_argument("--bank", default=None, help="imprint bank with colouring kernels (default: the shipped one)")
    parser.add_argument("--cache", default="cache/residuals")
    parser.add_argument("--crops", type=int, default=64, help="held-out crops to simulate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.time()
    bank = ImprintBank.load(args.bank)
    _, held, _, _ = split_crops(images_under(Path(args.data)), FitConfig())
    samplers = ("independent", "copula")
    sims = {s: ImprintSimulator(bank, SimulatorConfig(sampler=s, gamma=(1.0, 1.0), beta=0.0)) for s in samplers}
    print("| source | lag-1, real | lag-1, independent | lag-1, copula | channels, real | channels, independent "
          "| channels, copula |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for k, name in enumerate(bank.names):
        residuals = residual_set(create_autoencoder(name), held, args.cache)
        x = residuals.x[: args.crops]
        weights = torch.zeros(len(x), len(bank))
        weights[:, k] = 1
        stats = {"real": neighbour_correlations(residuals.r)}
        for s, sim in sims.items():
            stats[s] = neighbour_correlations(sim(x, torch.Generator().manual_seed(args.seed), weights=weights).noise)
        lag = {key: (v["lag1_h"] + v["lag1_v"]) / 2 for key, v in stats.items()}
        print(
            f"| {name} | {lag['real']:.3f} | {lag['independent']:.3f} | {lag['copula']:.3f} "
            f"| {stats['real']['cross_channel']:.3f} | {stats['independent']['cross_channel']:.3f} "
            f"| {stats['copula']['cross_channel']:.3f} |"
        )
    print(f"\n{len(held)} held-out crops (real), {args.crops} simulated per source; {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
