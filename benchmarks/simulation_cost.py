"""How much of a training step does the imprint simulator cost? (CPU, nirnet_tiny)

    python benchmarks/simulation_cost.py [--config configs/nirnet_tiny_cpu.yaml] [--repeats 5]

Measures, in one process with the same thread count:
  * one optimisation step of the model (forward + backward + AdamW) on a batch of ``batch_pairs`` aligned pairs,
    including L_DA through its frozen encoder;
  * the simulator on the same number of regions (the size the data pipeline simulates before its crop), with the
    config's simulator settings (models fused per sample, extrapolation);
  * the whole data pipeline for one batch (decode, simulate or load the autoencoder twin, degrade, crop).
Prints seconds and the simulator's share of a step; the share per batch scales with ``data.pairs.p_simulator``.
"""

from __future__ import annotations

import argparse
import time

import torch

from nirnet.engine.config import load_config
from nirnet.engine.train import TrainStep, build_dataset
from nirnet.imprint.autoencoders import create_autoencoder
from nirnet.models.losses import DifferenceAwareLoss, bce_with_smoothing
from nirnet.models.registry import create_model


def best_of(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/nirnet_tiny_cpu.yaml")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(args.config)
    pairs = cfg.optim.batch_pairs
    model = create_model(cfg.model, **cfg.model_overrides)
    c = model.config
    da = DifferenceAwareLoss(create_autoencoder(c.da_encoder), c.da_grid, c.da_crop, c.da_pairs)
    step_module = TrainStep(model, da).train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW([p for p in step_module.parameters() if p.requires_grad], lr=1e-3)
    real = torch.rand(pairs, 3, c.crop_size, c.crop_size).contiguous(memory_format=torch.channels_last)
    fake = (real + 0.01 * torch.randn_like(real)).clamp(0, 1)
    labels = torch.cat([torch.zeros(pairs), torch.ones(pairs)])

    def train_step():
        logits, l_da = step_module(real, fake, torch.Generator().manual_seed(0))
        loss = bce_with_smoothing(logits, labels) + c.lambda_da * l_da
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    dataset = build_dataset(cfg, c.crop_size)
    region = dataset.config.region
    x = torch.rand(pairs, 3, region, region)
    generator = torch.Generator().manual_seed(0)

    def simulate():
        dataset.simulator(x, generator)

    step_s = best_of(train_step, args.repeats)
    sim_s = best_of(simulate, args.repeats)
    keys = [(0, i) for i in range(pairs)]
    data_s = best_of(lambda: [dataset[k] for k in keys], max(1, args.repeats // 2))
    print(
        f"{args.threads} threads, {pairs} pairs of {c.crop_size} px, simulated region {region} px, "
        f"models fused per sample: {cfg.data.simulator.models_per_sample}"
    )
    print(f"training step (forward + backward + AdamW, with L_DA): {step_s:.3f} s")
    print(
        f"simulator on {pairs} regions:                             {sim_s:.3f} s "
        f"({100 * sim_s / step_s:.1f} % of a step if every pair were simulated)"
    )
    p = cfg.data.pairs.p_simulator
    print(f"with p_simulator = {p}: {100 * p * sim_s / step_s:.1f} % of a step")
    print(f"whole data pipeline for one batch (1 process):         {data_s:.3f} s")


if __name__ == "__main__":
    main()
