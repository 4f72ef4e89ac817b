"""The service's decoding memory: images are decoded only while the sum of what they cost fits the budget.

What an image costs is estimated from its header before any pixel is decoded (:mod:`nirnet.serve.decode`), so the
sum over images decoded or being decoded at once is bounded whatever the requests hold. Requests wait first come,
first served: a big image at the head of the line is not overtaken forever by small ones.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class MemoryBudget:
    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self.used = 0
        self._line: deque[tuple[int, asyncio.Future]] = deque()

    @property
    def idle(self) -> bool:
        return self.used == 0 and not self._line

    @asynccontextmanager
    async def hold(self, amount: int) -> AsyncIterator[None]:
        """Hold ``amount`` bytes (at most the total) for the duration of the block, waiting in line for them."""
        amount = min(amount, self.total)
        await self._acquire(amount)
        try:
            yield
        finally:
            self._release(amount)

    async def _acquire(self, amount: int) -> None:
        if not self._line and self.used + amount <= self.total:
            self.used += amount
            return
        turn = asyncio.get_running_loop().create_future()
        self._line.append((amount, turn))
        try:
            await turn
        except BaseException:  # cancelled (the client left): give back what may have been granted meanwhile
            if turn.done() and not turn.cancelled():
                self._release(amount)
            else:
                self._line = deque(entry for entry in self._line if entry[1] is not turn)
                self._grant()  # the head may have changed
            raise

    def _release(self, amount: int) -> None:
        self.used -= amount
        self._grant()

    def _grant(self) -> None:
        while self._line and self.used + self._line[0][0] <= self.total:
            amount, turn = self._line.popleft()
            if not turn.done():
                self.used += amount
                turn.set_result(None)
