"""Load test of `nirnet serve`: N concurrent uploads against a local server (loopback only).

    python benchmarks/serve_load.py [--requests 200] [--size 512] [--model default]

Starts `nirnet serve` on a free port of 127.0.0.1 in a subprocess, sends ``--requests`` POST /v1/detect uploads
(one JPEG each, distinct synthetic photos) all at once over one connection pool, and prints the number of errors
(any non-200 answer or failed request; must be 0), p50 / p90 / p99 latency and throughput. As a baseline in the same
run it scores the same images in-process with `Detector.predict_images`, so the service's overhead is visible.
The request loop is bounded: every request has a timeout and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
from PIL import Image

from nirnet.detect import Detector
from nirnet.testing import synthetic_photo


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_images(count: int, size: int) -> list[bytes]:
    images = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(synthetic_photo(size * 3 // 4, size, seed=i)).save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with status {server.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /healthz within {timeout:.0f} s")


async def fire(url: str, images: list[bytes], timeout: float) -> tuple[list[float], list[str], float]:
    limits = httpx.Limits(max_connections=len(images), max_keepalive_connections=len(images))
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:

        async def one(i: int, data: bytes):
            start = time.perf_counter()
            try:
                for _ in range(600):  # the service answers 503 + Retry-After beyond its admission limit: honour it
                    response = await client.post("/v1/detect", files=[("files", (f"{i}.jpg", data, "image/jpeg"))])
                    if response.status_code != 503:
                        break
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                ok = response.status_code == 200 and response.json()["results"][0]["error"] is None
                error = None if ok else f"request {i}: HTTP {response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                error = f"request {i}: {type(exc).__name__}: {exc}"
            return time.perf_counter() - start, error

        start = time.perf_counter()
        outcomes = await asyncio.gather(*(one(i, data) for i, data in enumerate(images)))
        wall = time.perf_counter() - start
    latencies = [t for t, e in outcomes if e is None]
    errors = [e for _, e in outcomes if e is not None]
    return latencies, errors, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="concurrent uploads")
    parser.add_argument("--size", type=int, default=512, help="width of each JPEG (height is 3/4 of it)")
    parser.add_argument("--model", default=None, help="model folder or shipped name (default: the embedded one)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    parser.add_argument("--serve-args", default="", help="extra options for `nirnet serve`, e.g. '--max-pending 16'")
    args = parser.parse_args()

    images = make_images(args.requests, args.size)
    detector = Detector.from_pretrained(args.model)
    pil = [Image.open(io.BytesIO(d)).convert("RGB") for d in images]
    start = time.perf_counter()
    for i in range(0, len(pil), 8):
        detector.predict_images(pil[i : i + 8])
    baseline = len(pil) / (time.perf_counter() - start)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "nirnet.cli.main", "serve", "--port", str(port), "--log-level", "warning"]
    command += args.serve_args.split()
    if args.model:
        command += ["--model", args.model]
    server = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_healthy(url, server)
        latencies, errors, wall = asyncio.run(fire(url, images, args.timeout))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    p50, p90, p99 = (np.percentile(latencies, q) if latencies else float("nan") for q in (50, 90, 99))
    print(f"{args.requests} concurrent uploads of {args.size}x{args.size * 3 // 4} JPEGs to {url}/v1/detect")
    print(f"errors: {len(errors)}")
    for error in errors[:10]:
        print("  " + error)
    print(f"latency p50 {p50:.2f} s, p90 {p90:.2f} s, p99 {p99:.2f} s")
    print(f"throughput: {len(latencies) / wall:.1f} images/s over {wall:.1f} s")
    print(f"baseline, same images in-process (Detector.predict_images, batches of 8): {baseline:.1f} images/s")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
