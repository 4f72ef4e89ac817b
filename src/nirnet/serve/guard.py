"""An ASGI middleware that protects the scoring endpoint before any of its work starts.

* **Body first, then a slot.** The whole request body is read (:class:`~nirnet.serve.spool.BodySpool`: memory up
  to a megabyte, a temporary file beyond) before the request may take a scoring slot or a place in line. Reading
  is bounded three ways, each answered ``408``: every chunk within ``read_timeout_s``, the whole body within
  ``body_timeout_s``, and, after a grace of ``body_grace_s``, an average of at least ``min_body_rate`` bytes/s
  since the request began. A client that dribbles its body therefore holds a socket for a few seconds and never a
  slot: it frees nothing it never held.
* **Admission.** At most ``max_pending`` scoring requests are in progress (parsing, decoding, waiting for or
  using the model). Beyond that, up to ``max_waiting`` requests with complete bodies wait (first come, first
  served) for at most ``wait_timeout_s``; any more, or one whose wait runs out, is answered ``503`` with
  ``Retry-After``. A request that arrives while the line is already full is refused before its body is read. A
  client that disconnects while waiting leaves the line.
* **Body cap.** A declared ``Content-Length`` over ``max_body_bytes`` is answered ``413`` before reading; an
  undeclared (chunked) body is counted as it arrives and cut off at the cap.

Every answer is JSON ``{"detail": ...}`` like the rest of the API. Other paths (``/healthz``, the page) pass
through untouched, so health checks never queue behind uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .spool import BodySpool

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


#: Sent with every answer given before the body was read whole: the server closes the connection instead of
#: reading the rest (a slow or oversize body is not drained).
_CLOSE = {"Connection": "close"}


class _Refused(Exception):
    """The body cannot be accepted: answer ``status`` with ``detail``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _ClientGone(Exception):
    pass


async def send_json(send: Send, status: int, detail: object, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        paths: tuple[str, ...],
        max_body_bytes: int,
        max_pending: int,
        read_timeout_s: float,
        max_waiting: int = 0,
        wait_timeout_s: float = 10.0,
        body_timeout_s: float = 120.0,
        min_body_rate: float = 8192.0,
        body_grace_s: float = 5.0,
    ) -> None:
        self.app = app
        self.paths = paths
        self.max_body_bytes = max_body_bytes
        self.max_pending = max_pending
        self.read_timeout_s = read_timeout_s
        self.max_waiting = max_waiting
        self.wait_timeout_s = wait_timeout_s
        self.body_timeout_s = body_timeout_s
        self.min_body_rate = min_body_rate
        self.body_grace_s = body_grace_s
        self.pending = 0
        self.waiting: deque[asyncio.Future] = deque()  # one future per waiting request, resolved to hand it a slot

    def __getattr__(self, name: str) -> Any:
        # The wrapped application's attributes (``state``, ``openapi``, ...) stay reachable through the guard.
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            detail = f"request body of {declared} bytes is over the limit of {self.max_body_bytes}"
            await send_json(send, 413, detail, _CLOSE)
            return
        if self._line_full():  # busy now: say so before the client sends its body
            await self._busy(send, _CLOSE)
            return
        spool = BodySpool()
        try:
            try:
                await self._read_body(receive, spool)
            except _Refused as refused:
                await send_json(send, refused.status, refused.detail, _CLOSE)  # the rest of the body is not read
                return
            except _ClientGone:
                return
            gone = asyncio.ensure_future(receive())  # after a complete body, receive() answers only a disconnect
            try:
                admitted = await self._admit(gone)
                if admitted is None:
                    return  # the client left while waiting
                if not admitted:
                    await self._busy(send)
                    return
                try:
                    await self.app(scope, _replay(spool, gone, receive), send)
                finally:
                    self._release()
            finally:
                if not gone.done():
                    gone.cancel()
        finally:
            spool.close()

    def _line_full(self) -> bool:
        return self.pending >= self.max_pending and len(self.waiting) >= self.max_waiting

    async def _busy(self, send: Send, headers: dict[str, str] | None = None) -> None:
        await send_json(
            send,
            503,
            f"busy: {self.pending} requests in progress and {len(self.waiting)} waiting; retry shortly",
            {"Retry-After": "1", **(headers or {})},
        )

    async def _read_body(self, receive: Receive, spool: BodySpool) -> None:
        """Read the whole body into ``spool`` under the per-chunk, total and rate limits (:class:`_Refused`)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            elapsed = loop.time() - start
            # The next chunk is due by the earliest limit: per chunk, the whole body, or the moment the average
            # rate since the start would fall under the minimum if no more bytes came.
            due = min(
                self.read_timeout_s,
                self.body_timeout_s - elapsed,
                self._rate_due(spool.size) - elapsed,
            )
            try:
                if due <= 0:
                    raise asyncio.TimeoutError
                message = await asyncio.wait_for(receive(), due)
            except asyncio.TimeoutError:
                raise _Refused(408, self._too_slow(spool.size, loop.time() - start, due)) from None
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            if spool.size + len(chunk) > self.max_body_bytes:
                raise _Refused(413, f"request body is over the limit of {self.max_body_bytes} bytes")
            try:
                await spool.write(chunk)
            except OSError as exc:  # e.g. the temporary folder is full
                raise _Refused(503, f"the server cannot hold the request body now ({exc.strerror or exc})") from None
            if not message.get("more_body", False):
                return

    def _rate_due(self, size: int) -> float:
        """Seconds from the start by which more than ``size`` bytes must have arrived (0 = no minimum rate)."""
        return self.body_grace_s + size / self.min_body_rate if self.min_body_rate > 0 else math.inf

    def _too_slow(self, size: int, elapsed: float, waited: float) -> str:
        if waited >= self.read_timeout_s:
            return f"no data from the client for {self.read_timeout_s:g} s"
        if elapsed >= self.body_timeout_s:
            return f"request body not complete within {self.body_timeout_s:g} s"
        return (
            f"request body arriving too slowly: {size} bytes in {elapsed:.1f} s, under the minimum of "
            f"{self.min_body_rate:g} bytes/s"
        )

    async def _admit(self, gone: asyncio.Future) -> bool | None:
        """Take a slot, waiting in line for one if the room allows: True = admitted, False = answer 503, None = the
        client disconnected while waiting (``gone``, its next message, is a disconnect)."""
        if self.pending < self.max_pending and not self.waiting:
            self.pending += 1
            return True
        if len(self.waiting) >= self.max_waiting:
            return False
        loop = asyncio.get_running_loop()
        turn = loop.create_future()
        self.waiting.append(turn)
        deadline = loop.time() + self.wait_timeout_s
        watched: set[asyncio.Future] = {turn, gone}
        try:
            while not turn.done() and loop.time() < deadline:
                # asyncio.wait never cancels what it waits on: a slot handed over at the timeout is not lost.
                done, _ = await asyncio.wait(watched, timeout=deadline - loop.time(), return_when="FIRST_COMPLETED")
                if gone in done:
                    if _is_disconnect(gone):
                        break
                    watched.discard(gone)  # not a disconnect: keep waiting for the slot alone
            left = _is_disconnect(gone)
            if self._leave_line(turn):  # admitted (possibly at the very moment we stopped waiting)
                if not left:
                    return True
                self._release()
            return None if left else False
        except BaseException:  # the task was cancelled while waiting
            if self._leave_line(turn):
                self._release()
            raise

    def _leave_line(self, turn: asyncio.Future) -> bool:
        """Step out of the line; True when a slot had already been handed over (it is then this request's)."""
        if turn.done() and not turn.cancelled():
            return True
        with contextlib.suppress(ValueError):
            self.waiting.remove(turn)
        turn.cancel()
        return False

    def _release(self) -> None:
        """Hand the slot to the first request still waiting, or free it."""
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes on: ``pending`` is unchanged
                return
        self.pending -= 1


def _is_disconnect(future: asyncio.Future) -> bool:
    return (
        future.done()
        and not future.cancelled()
        and future.exception() is None
        and future.result()["type"] == "http.disconnect"
    )


def _replay(spool: BodySpool, gone: asyncio.Future, receive: Receive) -> Receive:
    """A ``receive`` that gives the application the spooled body, then what the client says next (its disconnect,
    already awaited in ``gone`` while the request waited in line)."""
    blocks = spool.chunks()
    sent = 0
    finished = False
    gone_used = False

    async def replay() -> Message:
        nonlocal sent, finished, gone_used
        if not finished:
            block = await anext(blocks, b"")
            sent += len(block)
            finished = sent >= spool.size
            return {"type": "http.request", "body": block, "more_body": not finished}
        if not gone_used:
            gone_used = True
            return await gone
        return await receive()

    return replay


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
