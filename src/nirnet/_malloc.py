"""Keep freed tensor memory inside the process (glibc only).

Per-image work in data loaders allocates and frees the same few megabytes again and again. By default glibc hands
large blocks straight back to the kernel (``mmap``/``munmap``), so every call page-faults its buffers in anew;
for the imprint simulator that costs about 30 % of its time (``benchmarks/simulation_cost.py``). Raising the mmap
and trim thresholds keeps those blocks in the heap for reuse. On other C libraries this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit systems
_TRIM_THRESHOLD = 256 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Raise glibc's mmap/trim thresholds for this process; returns whether it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
