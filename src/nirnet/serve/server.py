"""Running the service under uvicorn with a deadline for request headers.

uvicorn closes idle keep-alive connections, but a client that opens a connection and sends its headers slowly (or
never) holds it forever. :class:`HeaderDeadlineProtocol` closes a connection whose request line and headers are not
complete ``header_timeout_s`` after it opened (or after its previous response). Body reads are timed by
:class:`nirnet.serve.guard.RequestGuard`.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderDeadlineProtocol(H11Protocol):
    header_timeout_s: float = 10.0

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

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def run(app, host: str, port: int, log_level: str = "info", header_timeout_s: float = 10.0) -> None:
    """Serve ``app`` until interrupted."""
    import uvicorn

    protocol = type("HeaderDeadline", (HeaderDeadlineProtocol,), {"header_timeout_s": header_timeout_s})
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=protocol, timeout_keep_alive=5)
