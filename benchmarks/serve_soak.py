"""Soak test of `nirnet serve` on loopback: memory, latency and errors under load and under a hostile mix.

Starts the service as a subprocess (the embedded default model, default limits) and runs ``--rounds`` rounds of

* ``--uploads`` concurrent uploads of one 4000x3000 camera-size JPEG each (clients honour ``Retry-After`` on 503,
  at most ``--retries`` times);
* a hostile mix alongside: declared-oversize bodies, undeclared (chunked) oversize bodies, decompression bombs
  (a PNG whose header claims 30000x30000), garbage files, clients that stall in their headers or body;
* a ``/healthz`` probe every 50 ms.

It samples the server's RSS every 100 ms and prints, per round: peak RSS, p50/p99 latency of scored uploads,
``/healthz`` p50/p99, status counts, and the number of responses that were not JSON. Loopback only; bounded in
count (``--uploads``, ``--rounds``) and time (``--time-limit`` per round).

    python benchmarks/serve_soak.py [--uploads 200] [--rounds 3] [--workers 64]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

BOUNDARY = "soakboundary7d1f"


def camera_jpeg(width: int = 4000, height: int = 3000, seed: int = 0) -> bytes:
    """A camera-size JPEG with photo-like content (smooth structure plus sensor-like noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((height // 50 + 1, width // 50 + 1, 3)) * 255
    img = Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    arr = np.asarray(img).astype(np.int16) + rng.normal(0, 4, (height, width, 3)).astype(np.int16)
    buffer = io.BytesIO()
    Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def png_bomb(side: int = 30000) -> bytes:
    """A tiny PNG whose header claims ``side`` x ``side`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * (side * 3)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * 64)) + chunk(b"IEND", b"")


def multipart(name: str, data: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def post(port: int, body: bytes, timeout: float = 120) -> tuple[int, bool, dict[str, str]]:
    """(status, body is JSON, headers) of one POST /v1/detect."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/v1/detect", body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        response = conn.getresponse()
        payload = response.read()
        try:
            json.loads(payload)
            is_json = True
        except ValueError:
            is_json = False
        return response.status, is_json, dict(response.getheaders())
    except OSError:
        return 0, False, {}  # connection refused or reset: counted as status 0
    finally:
        conn.close()


def upload_with_retries(port: int, body: bytes, retries: int) -> tuple[int, bool, float]:
    start = time.perf_counter()
    for _ in range(retries + 1):
        status, is_json, headers = post(port, body)
        if status != 503:
            break
        time.sleep(float(headers.get("retry-after", headers.get("Retry-After", "1"))))
    return status, is_json, time.perf_counter() - start


def read_reply(sock: socket.socket) -> tuple[int, bool]:
    """(status, body is JSON) of a raw HTTP/1.1 reply; (0, True) when the server closed without one."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return (0, True) if not data else (int(data.split(b" ")[1]), False)
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
            0,
        )
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        try:
            json.loads(body)
            return int(head.split(b" ")[1]), True
        except ValueError:
            return int(head.split(b" ")[1]), False
    except TimeoutError:
        raise  # the caller decides what a connection left open means
    except (OSError, ValueError, IndexError):
        return 0, True  # reset: nothing non-JSON was sent


def chunked_oversize(port: int, megabytes: int = 200) -> tuple[int, bool]:
    """A well-formed multipart upload with no Content-Length, streamed until the server stops it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        sock.sendall(
            b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            + f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n".encode()
        )
        head = multipart("endless.jpg", b"").split(b"\r\n--" + BOUNDARY.encode() + b"--")[0]
        sock.sendall(f"{len(head):x}\r\n".encode() + head + b"\r\n")
        block = b"x" * 2**20
        for _ in range(megabytes):
            sock.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
    except OSError:
        pass  # the server closed on us: what it should do
    try:
        return read_reply(sock)
    except TimeoutError:
        return -1, True  # no answer within 30 s
    finally:
        sock.close()


def stalled_client(port: int, in_headers: bool, hold_s: float) -> tuple[int, bool]:
    """A client that stops sending; returns what the server answered (0 = it closed the connection)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=hold_s)
    try:
        if in_headers:
            sock.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\n")
        else:
            sock.sendall(
                b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                + f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n".encode()
                + b"--"
            )
        return read_reply(sock)
    except TimeoutError:
        return -1, True  # still open after hold_s: a leak
    except OSError:
        return 0, True
    finally:
        sock.close()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def wait_until_up(port: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not come up")


def run_round(port: int, pid: int, args, photo: bytes) -> dict:
    stop = threading.Event()
    rss: list[float] = []
    health: list[float] = []
    health_bad = Counter()

    def sample_rss() -> None:
        while not stop.is_set():
            rss.append(rss_mb(pid))
            time.sleep(0.1)

    def probe_health() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/healthz")
                status = conn.getresponse().status
                conn.close()
            except OSError:
                status = 0
            health.append(time.perf_counter() - start)
            if status != 200:
                health_bad[status] += 1
            time.sleep(0.05)

    monitors = [threading.Thread(target=sample_rss), threading.Thread(target=probe_health)]
    for thread in monitors:
        thread.start()
    upload_body = multipart("camera.jpg", photo)
    hostile = []
    for i in range(args.hostile):
        kind = i % 6
        if kind == 0:  # declared oversize
            hostile.append(lambda: post(port, multipart("big.jpg", b"\xff" * (80 * 2**20)))[:2])
        elif kind == 1:
            hostile.append(lambda: chunked_oversize(port))
        elif kind == 2:
            hostile.append(lambda: post(port, multipart("bomb.png", png_bomb()))[:2])
        elif kind == 3:
            hostile.append(lambda: post(port, multipart("junk.jpg", os.urandom(50_000)))[:2])
        elif kind == 4:
            hostile.append(lambda: stalled_client(port, True, 40))
        else:
            hostile.append(lambda: stalled_client(port, False, 40))
    start = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        uploads = [pool.submit(upload_with_retries, port, upload_body, args.retries) for _ in range(args.uploads)]
        attacks = [pool.submit(h) for h in hostile]
        results = [f.result(timeout=args.time_limit) for f in uploads]
        attack_results = [f.result(timeout=args.time_limit) for f in attacks]
    elapsed = time.perf_counter() - start
    stop.set()
    for thread in monitors:
        thread.join()
    statuses = Counter(s for s, _, _ in results)
    attack_statuses = Counter(s for s, _ in attack_results)
    non_json = sum(1 for s, j, _ in results if s and not j) + sum(1 for s, j in attack_results if s > 0 and not j)
    scored = [t for s, _, t in results if s == 200]
    return {
        "seconds": round(elapsed, 1),
        "peak_rss_mb": round(max(rss), 1),
        "end_rss_mb": round(rss[-1], 1),
        "upload_status": dict(statuses),
        "hostile_status": dict(attack_statuses),
        "non_json_responses": non_json,
        "scored_p50_s": round(percentile(scored, 50), 2),
        "scored_p99_s": round(percentile(scored, 99), 2),
        "healthz_p50_ms": round(percentile(health, 50) * 1000, 1),
        "healthz_p99_ms": round(percentile(health, 99) * 1000, 1),
        "healthz_failures": dict(health_bad),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--hostile", type=int, default=24, help="hostile requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=64, help="client threads")
    parser.add_argument("--retries", type=int, default=120, help="503 retries per upload")
    parser.add_argument("--time-limit", type=float, default=600, help="seconds per round")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--json", default=None, help="also write the rounds here")
    parser.add_argument("--serve-args", default="", help="extra options for `nirnet serve`, e.g. '--max-pending 8'")
    args = parser.parse_args()

    photo = camera_jpeg()
    print(f"camera JPEG: 4000x3000, {len(photo) / 2**20:.1f} MiB", flush=True)
    cmd = [sys.executable, "-m", "nirnet.cli.main", "serve", "--port", str(args.port), "--log-level", "error"]
    cmd += args.serve_args.split()
    server = subprocess.Popen(cmd)
    try:
        wait_until_up(args.port)
        print(f"server up, idle RSS {rss_mb(server.pid):.0f} MB", flush=True)
        rounds = []
        for index in range(args.rounds):
            row = run_round(args.port, server.pid, args, photo)
            rounds.append(row)
            print(f"round {index + 1}: {json.dumps(row)}", flush=True)
    finally:
        server.terminate()
        server.wait(30)
    peak = max(r["peak_rss_mb"] for r in rounds)
    print(
        f"peak RSS {peak:.0f} MB (per round: {[r['peak_rss_mb'] for r in rounds]}), "
        f"non-JSON responses {sum(r['non_json_responses'] for r in rounds)}, "
        f"/healthz p99 {max(r['healthz_p99_ms'] for r in rounds):.0f} ms"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rounds, handle, indent=1)


if __name__ == "__main__":
    main()
