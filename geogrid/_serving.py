"""How ``geogrid serve`` runs uvicorn: slow and idle clients are bounded.

Imported only by ``geogrid serve`` (uvicorn's HTTP stack costs ~65 ms to import).
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HeaderTimeoutH11Protocol", "server_options"]


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for a request's headers.

    uvicorn closes an idle connection ``timeout_keep_alive`` seconds after a response, but
    a connection that never completes its first request line and headers (opened and left
    silent, or fed a byte at a time: "slowloris") is held for ever. Here such a connection
    is closed :attr:`header_timeout` seconds after it opened (or after the previous
    response), as nginx's ``client_header_timeout`` does.
    """

    header_timeout: float = 10.0
    """Seconds a client has to send a complete request line and headers."""

    _header_deadline: asyncio.TimerHandle | None = None

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_timed_out(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the connection and its header deadline."""
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        """Feed the data; once the headers are complete, the deadline is off."""
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_header_deadline()

    def on_response_complete(self) -> None:
        """Finish the response; the next request's headers get a fresh deadline."""
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._disarm_header_deadline()
        super().connection_lost(exc)


def server_options(header_timeout: float = 10.0, max_connections: int = 256) -> dict[str, object]:
    """Return the ``uvicorn.run`` options ``geogrid serve`` uses to bound slow and idle clients.

    * a request's headers must arrive within ``header_timeout`` seconds
      (:class:`HeaderTimeoutH11Protocol`), an idle keep-alive connection is closed after 5 s;
    * at most ``max_connections`` connections are served at once (uvicorn answers 503 past it);
    * headers over 16 KiB are refused (h11's limit, made explicit);
    * forwarding headers are left to the app, which believes them only from
      ``GEOGRID_TRUSTED_PROXIES``.
    """
    protocol = type("GeogridH11Protocol", (HeaderTimeoutH11Protocol,), {"header_timeout": header_timeout})
    return {
        "http": protocol,
        "timeout_keep_alive": 5,
        "limit_concurrency": max_connections,
        "h11_max_incomplete_event_size": 16 * 1024,
        "proxy_headers": False,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
