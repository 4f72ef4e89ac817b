"""Soak test of `nirnet serve` on loopback: memory, latency and errors under load, slow clients and big images.

Starts the service as a subprocess (the embedded default model, default limits unless ``--serve-args``), warms it
with one upload, and runs the chosen ``--case`` (``all`` runs each in turn):

* ``mix``: ``--rounds`` rounds of ``--uploads`` concurrent uploads of one 4000x3000 camera-size JPEG each (clients
  honour ``Retry-After`` on 503, at most ``--retries`` times) beside a hostile mix: declared-oversize bodies,
  undeclared (chunked) oversize bodies, decompression bombs (a PNG whose header claims 30000x30000), garbage files,
  clients that stall in their headers or body.
* ``slow``: ``--dribblers`` clients that send a valid multipart head and then the body one byte every 3 s
  (reconnecting whenever the server answers), while ``--slow-uploads`` camera JPEGs are uploaded one after another
  by 4 clients (no retries: a 503 counts).
* ``png16``: ``--clients`` (default 6) concurrent requests of ``--files`` x 16-bit RGBA 6300x6300 PNG each.
* ``jpeg40``: ``--clients`` (default 8) concurrent requests of ``--files`` x 40 MP JPEG each (with retries).

Throughout, the server's RSS is sampled every 100 ms and ``/healthz`` probed every 50 ms. Per case it prints peak
RSS, RSS ``--settle`` seconds after the case against warm idle, status counts per kind of request, ``/healthz``
p50/p99, latency of scored requests, and the number of responses that were not JSON. Loopback only; bounded in
count and in time (``--time-limit`` per case).

    python benchmarks/serve_soak.py [--case all] [--files 16] [--settle 60] [--uploads 200] [--rounds 3]
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


def post(port: int, body: bytes, timeout: float = 600) -> tuple[int, bool, dict[str, str]]:
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


def png16_rgba(side: int = 6300, seed: int = 0) -> bytes:
    """A 16-bit-per-channel RGBA PNG, partly transparent everywhere; a repeating 8x8 tile keeps the file small
    (about 1.4 MB at 6300x6300) while Pillow still decodes every pixel."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rng = np.random.default_rng(seed)
    tile = (rng.random((8, 8, 4)) * 65535).astype(">u2")
    tile[..., 3] = tile[..., 3] // 2 + 16384
    compressor = zlib.compressobj(9)
    parts = []
    for y in range(side):
        row = np.tile(tile[y % 8], (-(-side // 8), 1))[:side]
        parts.append(compressor.compress(b"\x00" + row.tobytes()))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def big_jpeg(width: int = 7700, height: int = 5143, seed: int = 0) -> bytes:
    """A 39.6 MP JPEG of smooth content (about 2.3 MB, so 16 of them fit the default 64 MiB request cap)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((height // 100 + 1, width // 100 + 1, 3)) * 255
    img = Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def multipart_files(files: list[tuple[str, bytes]]) -> bytes:
    parts = []
    for name, data in files:
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def dribbler(port: int, stop: threading.Event, statuses: Counter, interval: float = 3.0) -> None:
    """Send a valid multipart head, then the body one byte every ``interval`` s; reconnect whenever the server
    answers or closes, until ``stop``. Counts what the server answered (0 = closed without an answer)."""
    head = multipart("slow.jpg", b"").split(b"\r\n--" + BOUNDARY.encode() + b"--")[0]
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            statuses[0] += 1
            stop.wait(1)
            continue
        try:
            sock.sendall(
                b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                + f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n".encode()
                + head
            )
            sock.settimeout(interval)
            while not stop.is_set():
                try:
                    reply = sock.recv(65536)
                except TimeoutError:
                    sock.sendall(b"x")  # no answer yet: one more byte
                    continue
                status = int(reply.split(b" ")[1]) if reply.startswith(b"HTTP/") else 0
                statuses[status] += 1
                break
        except OSError:
            statuses[0] += 1  # the server closed the connection
        finally:
            sock.close()


class Monitor:
    """Samples the server's RSS every 100 ms and times ``/healthz`` every 50 ms while in a ``with`` block."""

    def __init__(self, port: int, pid: int) -> None:
        self.port, self.pid = port, pid
        self.rss: list[float] = []
        self.health: list[float] = []
        self.health_bad: Counter = Counter()
        self.stop = threading.Event()

    def _sample_rss(self) -> None:
        while not self.stop.is_set():
            self.rss.append(rss_mb(self.pid))
            time.sleep(0.1)

    def _probe_health(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/healthz")
                status = conn.getresponse().status
                conn.close()
            except OSError:
                status = 0
            self.health.append(time.perf_counter() - start)
            if status != 200:
                self.health_bad[status] += 1
            time.sleep(0.05)

    def __enter__(self) -> Monitor:
        self.threads = [threading.Thread(target=self._sample_rss), threading.Thread(target=self._probe_health)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def row(self) -> dict:
        return {
            "peak_rss_mb": round(max(self.rss), 1),
            "end_rss_mb": round(self.rss[-1], 1),
            "healthz_p50_ms": round(percentile(self.health, 50) * 1000, 1),
            "healthz_p99_ms": round(percentile(self.health, 99) * 1000, 1),
            "healthz_failures": dict(self.health_bad),
        }


def run_mix(port: int, pid: int, args, photo: bytes) -> dict:
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
    with Monitor(port, pid) as monitor, ThreadPoolExecutor(args.workers) as pool:
        uploads = [pool.submit(upload_with_retries, port, upload_body, args.retries) for _ in range(args.uploads)]
        attacks = [pool.submit(h) for h in hostile]
        results = [f.result(timeout=args.time_limit) for f in uploads]
        attack_results = [f.result(timeout=args.time_limit) for f in attacks]
    non_json = sum(1 for s, j, _ in results if s and not j) + sum(1 for s, j in attack_results if s > 0 and not j)
    scored = [t for s, _, t in results if s == 200]
    return {
        "seconds": round(time.perf_counter() - start, 1),
        **monitor.row(),
        "status": {
            "upload": dict(Counter(s for s, _, _ in results)),
            "hostile": dict(Counter(s for s, _ in attack_results)),
        },
        "non_json_responses": non_json,
        "scored_p50_s": round(percentile(scored, 50), 2),
        "scored_p99_s": round(percentile(scored, 99), 2),
    }


def run_slow_bodies(port: int, pid: int, args, photo: bytes) -> dict:
    body = multipart("camera.jpg", photo)
    stop = threading.Event()
    slow_statuses: Counter = Counter()
    start = time.perf_counter()
    with Monitor(port, pid) as monitor:
        dribblers = [threading.Thread(target=dribbler, args=(port, stop, slow_statuses)) for _ in range(args.dribblers)]
        for thread in dribblers:
            thread.start()
        time.sleep(3)  # the slow clients are in before the normal uploads start
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: upload_with_retries(port, body, 0), range(args.slow_uploads)))
        stop.set()
        for thread in dribblers:
            thread.join()
    scored = [t for s, _, t in results if s == 200]
    return {
        "seconds": round(time.perf_counter() - start, 1),
        **monitor.row(),
        "status": {"upload": dict(Counter(s for s, _, _ in results)), "slow_body": dict(slow_statuses)},
        "uploads_ok_pct": round(100 * len(scored) / max(1, len(results)), 1),
        "non_json_responses": sum(1 for s, j, _ in results if s and not j),
        "scored_p50_s": round(percentile(scored, 50), 2),
        "scored_p99_s": round(percentile(scored, 99), 2),
    }


def run_big_images(port: int, pid: int, args, kind: str, image: bytes, clients: int) -> dict:
    suffix = "png" if kind == "png16" else "jpg"
    body = multipart_files([(f"{kind}_{i}.{suffix}", image) for i in range(args.files)])
    start = time.perf_counter()
    with Monitor(port, pid) as monitor, ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(upload_with_retries, port, body, args.retries) for _ in range(clients)]
        results = [f.result(timeout=args.time_limit) for f in futures]
    scored = [t for s, _, t in results if s == 200]
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "request_mb": round(len(body) / 2**20, 1),
        **monitor.row(),
        "status": {kind: dict(Counter(s for s, _, _ in results))},
        "non_json_responses": sum(1 for s, j, _ in results if s and not j),
        "scored_p50_s": round(percentile(scored, 50), 2),
        "scored_p99_s": round(percentile(scored, 99), 2),
    }


def settle(pid: int, seconds: float) -> float:
    """RSS after ``seconds`` of idleness (what the server gave back after the case)."""
    time.sleep(seconds)
    return round(rss_mb(pid), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=["all", "mix", "slow", "png16", "jpeg40"], default="all")
    parser.add_argument("--uploads", type=int, default=200, help="mix: uploads per round")
    parser.add_argument("--hostile", type=int, default=24, help="mix: hostile requests per round")
    parser.add_argument("--rounds", type=int, default=3, help="mix: rounds")
    parser.add_argument("--workers", type=int, default=64, help="mix: client threads")
    parser.add_argument("--dribblers", type=int, default=6, help="slow: clients sending 1 byte every 3 s")
    parser.add_argument("--slow-uploads", type=int, default=40, help="slow: normal uploads made meanwhile")
    parser.add_argument("--files", type=int, default=16, help="png16/jpeg40: files per request")
    parser.add_argument("--clients", type=int, default=None, help="png16/jpeg40: concurrent requests (6 / 8)")
    parser.add_argument("--retries", type=int, default=120, help="503 retries per upload")
    parser.add_argument("--settle", type=float, default=60, help="seconds idle after each case before RSS is read")
    parser.add_argument("--time-limit", type=float, default=600, help="seconds per case")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--serve-args", default="", help="extra options for `nirnet serve`, e.g. '--max-pending 8'")
    args = parser.parse_args()

    photo = camera_jpeg()
    cases = ["slow", "png16", "jpeg40", "mix"] if args.case == "all" else [args.case]
    images = {"png16": png16_rgba() if "png16" in cases else b"", "jpeg40": big_jpeg() if "jpeg40" in cases else b""}
    print(f"camera JPEG 4000x3000 {len(photo) / 2**20:.1f} MiB; cases {cases}", flush=True)
    cmd = [sys.executable, "-m", "nirnet.cli.main", "serve", "--port", str(args.port), "--log-level", "error"]
    cmd += args.serve_args.split()
    server = subprocess.Popen(cmd)
    rows = []
    try:
        wait_until_up(args.port)
        upload_with_retries(args.port, multipart("warm.jpg", photo), 3)
        idle = rss_mb(server.pid)
        print(f"server up, warm idle RSS {idle:.0f} MB", flush=True)
        for case in cases:
            for index in range(args.rounds if case == "mix" else 1):
                if case == "mix":
                    row = run_mix(args.port, server.pid, args, photo)
                elif case == "slow":
                    row = run_slow_bodies(args.port, server.pid, args, photo)
                else:
                    clients = args.clients or (6 if case == "png16" else 8)
                    row = run_big_images(args.port, server.pid, args, case, images[case], clients)
                row = {"case": case, "round": index + 1, **row, "settled_rss_mb": settle(server.pid, args.settle)}
                row["settled_over_idle_mb"] = round(row["settled_rss_mb"] - idle, 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        server.terminate()
        server.wait(30)
    peaks = ", ".join(f"{r['case']} {r['peak_rss_mb']:.0f}" for r in rows)
    print(
        f"warm idle {idle:.0f} MB; peak RSS {max(r['peak_rss_mb'] for r in rows):.0f} MB ({peaks}); "
        f"non-JSON responses {sum(r['non_json_responses'] for r in rows)}; "
        f"/healthz p99 {max(r['healthz_p99_ms'] for r in rows):.0f} ms"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"warm_idle_rss_mb": round(idle, 1), "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
