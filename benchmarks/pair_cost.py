"""What shortcut removal costs in the data loader: milliseconds per training pair, with and without it.

    python benchmarks/pair_cost.py [-c configs/nirnet_tiny_gen.yaml] [--pairs 96]

Builds the training dataset exactly as `nirnet train` does and times ``dataset[key]`` for the same keys with the
config as it is and with ``match_history``, ``match_sharpness``, the sharpness jitter and ``ae_mix`` off, on one
thread (as in a data-loader worker), alternating the two so that machine load affects both alike.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from nirnet.data.degrade import SharpnessConfig
from nirnet.engine.config import load_config
from nirnet.engine.train import build_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="configs/nirnet_tiny_gen.yaml")
    parser.add_argument("--pairs", type=int, default=96)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config(args.config)
    off = replace(
        config.data.pairs, match_history=False, match_sharpness=False, sharpness=SharpnessConfig(prob=0.0),
        ae_mix=(1.0, 1.0),
    )  # fmt: skip
    datasets = {
        "as configured": build_dataset(config),
        "without shortcut removal": build_dataset(replace(config, data=replace(config.data, pairs=off))),
    }
    times: dict[str, list[float]] = {name: [] for name in datasets}
    for data in datasets.values():  # warm-up: file headers, JPEG histories
        for k in range(4):
            data[(0, k)]
    for k in range(args.pairs):
        for name, data in datasets.items():
            start = time.perf_counter()
            data[(1 + k // 16, k % 16)]
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name}: {np.mean(values) * 1000:.1f} ms per pair (median {np.median(values) * 1000:.1f})")
    extra = (np.mean(times["as configured"]) - np.mean(times["without shortcut removal"])) * 16
    print(f"shortcut removal adds {extra:.2f} CPU s per step of 16 pairs ({args.pairs} pairs, 1 thread)")


if __name__ == "__main__":
    main()
