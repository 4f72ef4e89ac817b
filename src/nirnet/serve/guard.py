"""An ASGI middleware that protects the scoring endpoint before any of its work starts.

* **Admission.** At most ``max_pending`` scoring requests are in progress (reading, decoding, waiting for or
  using the model); one more is answered ``503`` with ``Retry-After`` at once, before its body is read.
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
    ) -> None:
        self.app = app
        self.paths = paths
        self.max_body_bytes = max_body_bytes
        self.max_pending = max_pending
        self.read_timeout_s = read_timeout_s
        self.pending = 0

    def __getattr__(self, name: str) -> Any:
        # The wrapped application's attributes (``state``, ``openapi``, ...) stay reachable through the guard.
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        if self.pending >= self.max_pending:
            await send_json(
                send, 503, f"busy: {self.pending} requests in progress; retry shortly", {"Retry-After": "1"}
            )
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await send_json(send, 413, f"request body of {declared} bytes is over the limit of {self.max_body_bytes}")
            return
        self.pending += 1
        try:
            await self._guarded(scope, receive, send)
        finally:
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
