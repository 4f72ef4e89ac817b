"""Tuning glibc's allocator for this process (a no-op on other C libraries).

* :func:`keep_freed_memory`, for training: per-image work in data loaders allocates and frees the same few
  megabytes again and again. By default glibc hands large blocks straight back to the kernel (``mmap``/``munmap``),
  so every call page-faults its buffers in anew; for the imprint simulator that costs about 30 % of its time
  (``benchmarks/simulation_cost.py``). Raising the mmap and trim thresholds keeps those blocks in the heap.
* :func:`return_large_blocks` and :func:`release_free_memory`, for the web service, the opposite trade: memory
  after a burst of big decodes should go back to the system rather than stay with the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit systems
_TRIM_THRESHOLD = 256 * 1024 * 1024


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap/trim thresholds for this process; returns whether it took effect."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )


def return_large_blocks(threshold: int = 1024 * 1024, arenas: int | None = None) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes: every larger block is mapped on its own and unmapped when
    freed. (By default the threshold rises to 32 MiB after the first large free, and blocks under it then come from
    per-thread heaps that fragment and keep their memory.) ``arenas`` also caps the number of those heaps."""
    libc = _libc()
    if libc is None:
        return False
    done = bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    if arenas is not None:
        done = bool(libc.mallopt(_M_ARENA_MAX, arenas)) and done
    return done


def release_free_memory() -> bool:
    """Give the free pages of every heap back to the system (``malloc_trim``); True if any were released."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
