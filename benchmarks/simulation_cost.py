"""How much of a training step does the imprint simulator cost? (CPU, nirnet_tiny)

    python benchmarks/simulation_cost.py [--config configs/nirnet_tiny_cpu.yaml] [--repeats 5] [--steps 8]

Measures, in one process:
  * one optimisation step of the model (forward + backward + AdamW) on a batch of ``batch_pairs`` aligned pairs,
    including L_DA through its frozen encoder, with ``--threads`` threads (the training process);
  * the simulator as the data pipeline calls it: the pairs of ``--steps`` real training batches (same keys, same
    draws of pair kind, region size and post-processing as ``nirnet train``), one image per call, timed inside the
    dataset, with 1 thread (as in a DataLoader worker) and with ``--threads`` threads;
  * the simulator on every pair of a batch at the largest region (the worst case: every fake simulated, every
    pair resized to the smallest scale);
  * the whole data pipeline for one batch (decode, simulate or load the autoencoder twin, degrade, crop).
Prints seconds and the simulator's share of a training step.
"""

from __future__ import annotations

import argparse
import time

import torch

from nirnet._malloc import keep_freed_memory
from nirnet.engine.config import load_config
from nirnet.engine.train import TrainStep, build_dataset
from nirnet.imprint.autoencoders import create_autoencoder
from nirnet.models.losses import DifferenceAwareLoss, bce_with_smoothing
from nirnet.models.registry import create_model


def best_of(fn, repeats: int) -> float:
    return best_of_with_cpu(fn, repeats)[0]


def best_of_with_cpu(fn, repeats: int) -> tuple[float, float]:
    """Fastest wall-clock time of ``fn`` and the process CPU time of that run (all threads)."""
    fn()
    runs = []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - start, time.process_time() - start_cpu))
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/nirnet_tiny_cpu.yaml")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8, help="training batches whose simulated pairs are timed")
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
    real = torch.rand(pairs, 3, c.preprocess.crop_size, c.preprocess.crop_size).contiguous(
        memory_format=torch.channels_last
    )
    fake = (real + 0.01 * torch.randn_like(real)).clamp(0, 1)
    labels = torch.cat([torch.zeros(pairs), torch.ones(pairs)])

    def train_step():
        logits, l_da = step_module(real, fake, torch.Generator().manual_seed(0), torch.ones(pairs, dtype=torch.bool))
        loss = bce_with_smoothing(logits, labels) + c.lambda_da * l_da
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    dataset = build_dataset(cfg, c.preprocess)
    simulator = dataset.simulator
    timed = {"seconds": 0.0, "cpu": 0.0, "calls": 0, "pixels": 0}

    def timed_simulator(x, generator):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = simulator(x, generator)
        timed["seconds"] += time.perf_counter() - start
        timed["cpu"] += time.process_time() - start_cpu
        timed["calls"] += 1
        timed["pixels"] += x.shape[-1] * x.shape[-2]
        return out

    step_s, step_cpu = best_of_with_cpu(train_step, args.repeats)
    keep_freed_memory()  # as nirnet train's DataLoader workers do
    keys = [(step, slot) for step in range(args.steps) for slot in range(pairs)]
    dataset.simulator = timed_simulator
    pipeline = {}
    for threads in (1, args.threads):
        torch.set_num_threads(threads)
        timed.update(seconds=0.0, cpu=0.0, calls=0, pixels=0)
        for key in keys:
            dataset[key]
        pipeline[threads] = dict(timed)
    torch.set_num_threads(args.threads)
    dataset.simulator = simulator
    region = dataset.region
    x = torch.rand(pairs, 3, region, region)
    generator = torch.Generator().manual_seed(0)
    worst_s = best_of(lambda: [simulator(x[i : i + 1], generator) for i in range(pairs)], max(1, args.repeats // 2))
    data_s = best_of(lambda: [dataset[k] for k in keys[:pairs]], max(1, args.repeats // 2))

    print(
        f"{pairs} pairs of {c.preprocess.crop_size} px, "
        f"models fused per sample: {cfg.data.simulator.models_per_sample}, "
        f"p_simulator = {cfg.data.pairs.p_simulator}"
    )
    print(
        f"training step (forward + backward + AdamW, with L_DA), {args.threads} threads: {step_s:.3f} s "
        f"({step_cpu:.3f} CPU s)"
    )
    one = pipeline[1]
    side = (one["pixels"] / max(1, one["calls"])) ** 0.5
    print(
        f"pipeline draws over {args.steps} batches: {one['calls']} simulated pairs "
        f"({one['calls'] / args.steps:.1f} per batch), mean region {side:.0f} px"
    )
    for threads, t in pipeline.items():
        per_batch, cpu_per_batch = t["seconds"] / args.steps, t["cpu"] / args.steps
        print(
            f"simulator per batch as the pipeline calls it, {threads} thread(s): {per_batch:.3f} s "
            f"= {100 * per_batch / step_s:.1f} % of a step's time; {cpu_per_batch:.3f} CPU s "
            f"= {100 * cpu_per_batch / step_cpu:.1f} % of a step's CPU time"
        )
    print(
        f"worst case (all {pairs} pairs simulated at {region} px, 1 image per call): {worst_s:.3f} s "
        f"= {100 * worst_s / step_s:.1f} % of a training step"
    )
    print(f"whole data pipeline for one batch (1 process):         {data_s:.3f} s")


if __name__ == "__main__":
    main()
