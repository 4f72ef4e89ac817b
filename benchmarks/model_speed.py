"""Parameters, GFLOPs and CPU inference throughput of every registered model.

    python benchmarks/model_speed.py [--models nirnet_tiny ...] [--threads 2] [--repeats 3]

Throughput: images/s in inference mode for one crop of the model's crop size per image (plus the semantic view
where the model has that branch), at batch 1 and batch 32. GFLOPs (multiply-adds x 2) per image are counted with
torch.utils.flop_counter.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from nirnet.models import create_model, list_models


def throughput(model: torch.nn.Module, crops: torch.Tensor, view: torch.Tensor | None, repeats: int) -> float:
    with torch.inference_mode():
        model(crops, view)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            model(crops, view)
            best = min(best, time.perf_counter() - start)
    return len(crops) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=[m for m in list_models() if not m.startswith("test_")])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, best of {args.repeats}")
    header = f"{'model':24} {'crop':>5} {'trainable':>10} {'frozen':>10} {'GFLOPs/img':>10} {'img/s b1':>9} "
    print(header + f"{'img/s b' + str(args.batch):>10}")
    for name in args.models:
        try:
            model = create_model(name).eval()
        except (ImportError, FileNotFoundError) as exc:  # e.g. open_clip not installed for nirnet_base
            print(f"{name:24} skipped: {exc}")
            continue
        c = model.config
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        crops = torch.rand(args.batch, 3, c.crop_size, c.crop_size)
        view = torch.rand(args.batch, 3, c.semantic_size, c.semantic_size) if model.semantic is not None else None
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model(crops[:1], None if view is None else view[:1])
        gflops = counter.get_total_flops() / 1e9
        b1 = throughput(model, crops[:1], None if view is None else view[:1], args.repeats * 5)
        bn = throughput(model, crops, view, args.repeats)
        size = c.preprocess.crop_size
        print(f"{name:24} {size:>5} {trainable:>10,} {frozen:>10,} {gflops:>10.3f} {b1:>9.1f} {bn:>10.1f}")


if __name__ == "__main__":
    main()
