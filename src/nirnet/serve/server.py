"""Running the service under uvicorn with a deadline for request headers and JSON for malformed requests.

uvicorn closes idle keep-alive connections, but a client that opens a connection and sends its headers slowly (or
never) holds it forever. :class:`HeaderDeadlineProtocol` closes a connection whose request line and headers are not
complete ``header_timeout_s`` after it opened (or after its previous response). Body reads are timed by
:class:`nirnet.serve.guard.RequestGuard`. A request that is not valid HTTP/1.1 never reaches the application:
uvicorn answers it 400 and closes the connection; here that answer is JSON like every other.
"""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .._malloc import return_large_blocks
from .config import DEFAULT_HEADER_TIMEOUT_S

#: The answer to a request h11 cannot parse (bad request line, header, Content-Length or chunk framing).
INVALID_REQUEST = json.dumps({"detail": "invalid HTTP request (refused by the HTTP server)"}).encode()


class HeaderDeadlineProtocol(H11Protocol):
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._waiting_for = self.cycle
        self._deadline = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        deadline, self._deadline = getattr(self, "_deadline", None), None
        if deadline is not None:
            deadline.cancel()

    def _expire(self) -> None:
        if self.cycle is self._waiting_for and not self.transport.is_closing():
            self.transport.close()  # no complete request in time

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not getattr(self, "_waiting_for", None):
            self._disarm()  # the headers of a new request are complete

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def send_400_response(self, msg: str) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(INVALID_REQUEST)).encode()),
            (b"connection", b"close"),
        ]
        try:
            for event in (h11.Response(status_code=400, headers=headers), h11.Data(data=INVALID_REQUEST)):
                self.transport.write(self.conn.send(event))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            pass  # a response had already begun on this connection: closing is all that is left
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def run(app, host: str, port: int, log_level: str = "info", header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S) -> None:
    """Serve ``app`` until interrupted."""
    import uvicorn

    # Blocks over 1 MiB mapped on their own, so a burst of big decodes does not leave the heaps fragmented and
    # large (benchmarks/serve_soak.py --case png16: peak 2.0 GB against 3.1 GB with glibc's default and 2.9 GB
    # with a 16 MiB threshold; IdleTrim returns what the heaps still hold once the service is idle).
    return_large_blocks()

    protocol = type("HeaderDeadline", (HeaderDeadlineProtocol,), {"header_timeout_s": header_timeout_s})
    # ws="none": the service has no WebSocket endpoint, and uvicorn's WebSocket layer would refuse an upgrade
    # request with a bare 403; without it such a request is served as plain HTTP (JSON like any other).
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=protocol, ws="none", timeout_keep_alive=5)
