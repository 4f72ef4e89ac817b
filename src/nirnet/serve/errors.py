"""JSON bodies for every error and redirect the application answers.

FastAPI already answers its own errors as ``{"detail": ...}``, but a few answers come from Starlette with a plain
or empty body, notably the trailing-slash redirect (``/v1/detect/`` -> ``307`` to ``/v1/detect``). This middleware
gives any answer of status 300 or more that is not JSON a JSON body (``304 Not Modified`` keeps its empty one),
keeping its status and headers such as ``Location``.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from .guard import ASGIApp, Message, Receive, Scope, Send


class JsonErrorBodies:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replacing = False

        async def json_send(message: Message) -> None:
            nonlocal replacing
            if message["type"] == "http.response.start" and _needs_json(message):
                replacing = True
                await _send_json_instead(send, message)
                return
            if replacing and message["type"] == "http.response.body":
                return  # the original body (empty or plain text) is replaced
            await send(message)

        await self.app(scope, receive, json_send)


def _needs_json(start: Message) -> bool:
    if start["status"] < 300 or start["status"] == 304:
        return False
    headers = dict(start.get("headers", []))
    return not headers.get(b"content-type", b"").startswith(b"application/json")


async def _send_json_instead(send: Send, start: Message) -> None:
    status = start["status"]
    headers = [(k, v) for k, v in start.get("headers", []) if k not in (b"content-type", b"content-length")]
    location = dict(headers).get(b"location")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    detail = f"{phrase}: use {location.decode('latin-1')}" if location else phrase
    body = json.dumps({"detail": detail}).encode()
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
