"""A request body held while it waits for a scoring slot: in memory up to a small size, in a temporary file beyond.

Bodies are read whole before a request may take a slot (:mod:`nirnet.serve.guard`), so the waiting room holds
bodies; keeping each to at most ``in_memory`` bytes of RAM keeps a full room cheap. File writes and reads run in
a worker thread, a megabyte at a time, so a slow disk never stalls the event loop (``/healthz`` runs there).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from typing import IO

#: RAM per body; beyond it the body goes to a temporary file (in ``TMPDIR``), written in blocks of this size.
IN_MEMORY_BYTES = 2**20


class BodySpool:
    def __init__(self, in_memory: int = IN_MEMORY_BYTES) -> None:
        self.in_memory = in_memory
        self.size = 0
        self._buffer = bytearray()
        self._file: IO[bytes] | None = None

    async def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        self.size += len(chunk)
        if len(self._buffer) >= self.in_memory:
            await self._flush()

    async def _flush(self) -> None:
        if self._file is None:
            self._file = await asyncio.to_thread(tempfile.TemporaryFile)
        block, self._buffer = bytes(self._buffer), bytearray()
        await asyncio.to_thread(self._file.write, block)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body from its start, in blocks of at most ``in_memory`` bytes."""
        if self._file is None:
            yield bytes(self._buffer)
            return
        if self._buffer:
            await self._flush()
        await asyncio.to_thread(self._file.seek, 0)
        while block := await asyncio.to_thread(self._file.read, self.in_memory):
            yield block

    def close(self) -> None:
        self._buffer = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None
