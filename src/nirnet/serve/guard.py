"""An ASGI middleware that protects the scoring endpoint before any of its work starts.

* **Admission.** At most ``max_pending`` scoring requests are in progress (reading, decoding, waiting for or
  using the model). Beyond that, up to ``max_waiting`` requests wait (first come, first served, body unread, so
  waiting costs a socket and no memory) for at most ``wait_timeout_s``; any more, or one whose wait runs out, is
  answered ``503`` with ``Retry-After``. The waiting room keeps a burst from bouncing off the service: a client told
  to retry sleeps a second while the server drains and idles.
* **Body cap while streaming.** A declared ``Content-Length`` over ``max_body_bytes`` is answered ``413`` before
  reading; an undeclared (chunked) body is counted as it arrives and cut off at the cap, so an oversize upload
  never reaches the disk in full.
* **Read timeout.** Each chunk of the body must arrive within ``read_timeout_s`` (a slow client holding a
  connection open gets ``408``).

Every answer is JSON ``{"detail": ...}`` like the rest of the API. Other paths (``/healthz``, the page) pass
through untouched, so health checks never queue behind uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyTooLarge(Exception):
    pass


class _ReadTimeout(Exception):
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
    ) -> None:
        self.app = app
        self.paths = paths
        self.max_body_bytes = max_body_bytes
        self.max_pending = max_pending
        self.read_timeout_s = read_timeout_s
        self.max_waiting = max_waiting
        self.wait_timeout_s = wait_timeout_s
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
            await send_json(send, 413, f"request body of {declared} bytes is over the limit of {self.max_body_bytes}")
            return
        if not await self._admit():
            await send_json(
                send,
                503,
                f"busy: {self.pending} requests in progress and {len(self.waiting)} waiting; retry shortly",
                {"Retry-After": "1"},
            )
            return
        try:
            await self._guarded(scope, receive, send)
        finally:
            self._release()

    async def _admit(self) -> bool:
        """Take a slot, waiting in line for one if the room allows; False = answer 503."""
        if self.pending < self.max_pending and not self.waiting:
            self.pending += 1
            return True
        if len(self.waiting) >= self.max_waiting:
            return False
        turn = asyncio.get_running_loop().create_future()
        self.waiting.append(turn)
        try:
            # shield: a timeout cancels the wait, not the future a releasing request may resolve at that moment.
            await asyncio.wait_for(asyncio.shield(turn), self.wait_timeout_s)
            return True
        except asyncio.TimeoutError:
            return self._leave_line(turn)
        except BaseException:  # the client went away (task cancelled) while waiting
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

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        failure: Exception | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal received, failure
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout_s)
            except asyncio.TimeoutError:
                failure = _ReadTimeout()
                raise failure from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    failure = _BodyTooLarge()
                    raise failure
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if failure is not None:
                return  # the application's own answer to the broken body is replaced by ours
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_BodyTooLarge, _ReadTimeout):
            await self.app(scope, limited_receive, guarded_send)
        if failure is not None and not started:
            if isinstance(failure, _BodyTooLarge):
                await send_json(send, 413, f"request body is over the limit of {self.max_body_bytes} bytes")
            else:
                await send_json(send, 408, f"no data from the client for {self.read_timeout_s:g} s")


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
