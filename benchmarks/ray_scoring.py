"""Ray scoring vs plain `detect` on the same images: throughput, overhead, memory per actor, equal results.

    python benchmarks/ray_scoring.py [--images 500] [--data ../shared/data/real-train] [--actors 2]

Runs, in this order on the same machine: `Detector.predict_paths` (what `nirnet detect` calls, 2 loader
workers), then `nirnet.scale.score_at_scale` on a local Ray with ``--actors`` actors (one thread each), including
Ray's start-up, reported separately. Prints images/s for both, the ratio, the largest per-actor RSS sampled while
the job ran, and the largest probability difference between the two.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from nirnet.data.datasets import images_under
from nirnet.detect import Detector


def actor_rss_mb(stop: threading.Event, peaks: dict[int, float]) -> None:
    """Sample the RSS of Ray's scoring actors (processes named ``ray::...Scorer...``) every 0.2 s, from /proc."""
    while not stop.is_set():
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if "ray::" not in cmd or "Scorer" not in cmd:
                    continue
                status = (proc / "status").read_text()
            except OSError:
                continue
            rss = next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0.0)
            peaks[int(proc.name)] = max(peaks.get(int(proc.name), 0.0), rss)
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/real-train")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=64)
    args = parser.parse_args()
    import ray

    from nirnet.scale import read_rows, score_at_scale

    paths = images_under(Path(args.data))[: args.images]
    detector = Detector.from_pretrained()
    start = time.perf_counter()
    plain = {p.source: p.probability for p in detector.predict_paths(paths, workers=2)}
    plain_s = time.perf_counter() - start
    print(f"detect (predict_paths, 2 workers): {len(paths) / plain_s:.1f} images/s ({plain_s:.1f} s)", flush=True)

    start = time.perf_counter()
    ray.init(num_cpus=args.actors, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - start
    peaks: dict[int, float] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=actor_rss_mb, args=(stop, peaks))
    sampler.start()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        score_at_scale(paths, out, actors=args.actors, chunk_size=args.chunk_size)
        ray_s = time.perf_counter() - start
        rows = {r["path"]: r["probability"] for r in read_rows(out)}
    stop.set()
    sampler.join()
    ray.shutdown()
    diffs = [abs(rows[k] - v) for k, v in plain.items() if v is not None and rows.get(k) is not None]
    print(f"ray start-up: {init_s:.1f} s")
    print(f"ray ({args.actors} actors, chunks of {args.chunk_size}): {len(paths) / ray_s:.1f} images/s ({ray_s:.1f} s)")
    print(f"ray / detect throughput: {plain_s / ray_s * 100:.0f} %")
    print(f"peak RSS per actor: {max(peaks.values(), default=float('nan')):.0f} MB over {len(peaks)} actors")
    print(f"max |probability difference|: {max(diffs, default=float('nan')):.2e} over {len(diffs)} images")
    print(f"scored identically: {np.allclose(list(plain.values()), [rows[k] for k in plain], atol=1e-6)}")


if __name__ == "__main__":
    main()
