"""The service's settings, with no web framework imported: `nirnet serve` takes its option defaults from here
without the serve extra installed (its help must work without it)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"  # this machine only; 0.0.0.0 accepts others
DEFAULT_PORT = 8000
DEFAULT_HEADER_TIMEOUT_S = 10.0  # seconds a connection has to send its request line and headers


@dataclass(frozen=True)
class ServeConfig:
    max_files: int = 16  # files per request
    max_file_bytes: int = 20 * 1024 * 1024  # bytes per uploaded file
    max_request_bytes: int = 64 * 1024 * 1024  # whole body, enforced while it streams
    max_pending: int = 6  # scoring requests in progress; more get 503 + Retry-After (6: measured, RESULTS 9)
    decode_slots: int = 2  # images decoded at the same time
    max_pixels: int = 40_000_000  # per image; larger JPEGs are decoded at 1/2, 1/4 or 1/8 scale, others refused
    read_timeout_s: float = 20.0  # longest wait for the next chunk of a request body
    max_waiting: int = 64  # requests (bodies complete) waiting for a slot beyond max_pending; more get 503 at once
    wait_timeout_s: float = 10.0  # longest wait in that line before a 503
    body_timeout_s: float = 120.0  # the whole body must arrive within this
    min_body_rate: float = 8192.0  # bytes/s on average since the request began, checked after body_grace_s
    body_grace_s: float = 5.0
    max_memory_bytes: int = 2300 * 2**20  # the process's target; decoding gets what the model leaves
    decoding_bytes: int | None = None  # the decoding budget itself, instead of measuring the model (tests)
