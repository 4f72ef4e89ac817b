"""How much memory the service may spend on decoding, and giving memory back after a burst.

The operator sets one number, the most memory the process should use (``--max-memory-mb``). At start the service
measures what the model takes: the process's peak resident memory through one full batch of crops (weights,
runtime, the largest forward pass; on Linux from ``VmHWM``). What is left, less a reserve for request bodies,
crops waiting for the model and allocator slack, is the decoding budget (:class:`~nirnet.serve.budget.MemoryBudget`).
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

import torch

from .._malloc import release_free_memory
from ..detect import Detector, PreparedImage

MiB = 2**20
#: Request bodies in memory, crops waiting for the model, Python objects and allocator slack (a margin, checked
#: with ``benchmarks/serve_soak.py``: every case's peak stayed under the limit).
RESERVE_BYTES = 256 * MiB
#: Never less than this for decoding (one 12-megapixel photo at full size), whatever the limit says.
MIN_DECODING_BYTES = 128 * MiB


@dataclass(frozen=True)
class MemoryPlan:
    limit: int  # the most the process should use, bytes
    model: int  # measured peak through a full batch at start, bytes (0: not measured)
    decoding: int  # the decoding budget, bytes

    @property
    def short(self) -> bool:
        """The limit leaves less than the minimum for decoding (the minimum is used anyway)."""
        return self.limit - self.model - RESERVE_BYTES < MIN_DECODING_BYTES

    def describe(self) -> str:
        return (
            f"memory: limit {self.limit / MiB:,.0f} MiB = model {self.model / MiB:,.0f} MiB (measured) + decoding "
            f"{self.decoding / MiB:,.0f} MiB + reserve {RESERVE_BYTES / MiB:,.0f} MiB"
        )


def plan_memory(detector: Detector, limit_bytes: int) -> MemoryPlan:
    model = model_footprint(detector)
    return MemoryPlan(limit_bytes, model, max(MIN_DECODING_BYTES, limit_bytes - model - RESERVE_BYTES))


def model_footprint(detector: Detector) -> int:
    """Peak resident bytes of this process through one full batch of crops (0 where it cannot be read)."""
    reset = _reset_peak()
    config = detector.model.config
    size, view_size = config.preprocess.crop_size, config.view_size
    crops = torch.zeros(detector.batch_size, 3, size, size, dtype=torch.uint8)
    view = torch.zeros(1, 3, view_size, view_size, dtype=torch.uint8) if view_size else None
    detector.score_prepared([PreparedImage(crops, view, 1, 1)])
    return _peak_bytes(reset)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM, the peak resident size (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_bytes(since_reset: bool) -> int:
    if since_reset:
        try:
            with open("/proc/self/status") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the whole life's peak: an upper bound
    return peak if sys.platform == "darwin" else peak * 1024


class IdleTrim:
    """Gives freed memory back to the system once no request has been in progress for ``delay_s``: a burst of big
    decodes leaves the C heaps holding free pages that ``malloc_trim`` returns."""

    def __init__(self, delay_s: float = 1.0) -> None:
        self.delay_s = delay_s
        self.busy = 0
        self._timer: asyncio.TimerHandle | None = None

    def enter(self) -> None:
        self.busy += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def leave(self) -> None:
        self.busy -= 1
        if self.busy == 0:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.delay_s, self._trim, loop)

    def _trim(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self.busy == 0:
            loop.run_in_executor(None, release_free_memory)
