"""Pure ASGI middleware: who the client is, a request body limit and security headers on every response."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from urllib.parse import urlsplit

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CSP_NONCE_KEY",
    "BodyLimitMiddleware",
    "ClientMiddleware",
    "HeadMiddleware",
    "SecurityHeadersMiddleware",
    "WritesFirst",
    "WritesFirstMiddleware",
    "csp_nonce",
]

CSP_NONCE_KEY = "csp_nonce"
"""Key of the per-request CSP nonce in ``scope["state"]`` (``request.state.csp_nonce``)."""


def _json_error(status: int, code: str, description: str) -> tuple[dict[str, object], bytes]:
    body = json.dumps({"code": code, "description": description}).encode()
    start: dict[str, object] = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, body


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_FORWARDING = (b"forwarded", b"x-forwarded-for", b"x-real-ip", b"x-forwarded-host", b"x-forwarded-proto", b"via")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "127.0.0.1", "[::1]"})


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_loopback_host(host: str) -> bool:
    """Whether the Host header ``host`` (``name[:port]``) names this machine's loopback."""
    name = host[: host.index("]") + 1] if host.startswith("[") and "]" in host else host.split(":")[0]
    if name.lower() in _LOOPBACK_NAMES:
        return True
    address = _address(name)
    return address is not None and address.is_loopback


class ClientMiddleware:
    """Decide who the client is and where links point; keep a keyless server to this machine.

    * Forwarding headers (``X-Forwarded-For``, ``X-Forwarded-Proto``) are believed only from a
      peer in ``trusted_proxies``: the client is then the right-most address of
      ``X-Forwarded-For`` that is not itself a trusted proxy.
    * With ``public_url`` set, the request's host and scheme are replaced by it, so every link
      the app builds (``request.base_url``) points there whatever Host header was sent.
      Without it the Host header must be a plain ``host[:port]`` (400 otherwise).
    * With ``loopback_only`` (no API keys configured), only clients on this machine are
      served, whatever address the server is bound to (``uvicorn api.main:app --host
      0.0.0.0`` included): another client, a request that came through a proxy that is not
      trusted, or a Host header naming something other than loopback (DNS rebinding: another
      site's page reaching the keyless server through the visitor's browser) gets 403.

    Parameters
    ----------
    app
        The ASGI app.
    trusted_proxies
        Networks of the reverse proxies in front of the app.
    public_url
        ``scheme://host[:port]`` clients use, or None.
    loopback_only
        Serve clients on this machine only.
    """

    def __init__(
        self,
        app: ASGIApp,
        trusted_proxies: Sequence[_Network] = (),
        public_url: str | None = None,
        *,
        loopback_only: bool,
    ) -> None:
        self.app = app
        self.trusted = tuple(trusted_proxies)
        self.loopback_only = loopback_only
        self.public: tuple[str, bytes] | None = None
        if public_url is not None:
            parts = urlsplit(public_url)
            self.public = (parts.scheme, parts.netloc.encode("latin-1"))

    def _trusted(self, text: str) -> bool:
        address = _address(text)
        return address is not None and any(address in net for net in self.trusted)

    def _client(self, scope: Scope, headers: Headers) -> tuple[str | None, bool]:
        """Return the client's address and whether it came through a proxy that is not trusted."""
        peer = scope["client"][0] if scope.get("client") else None
        forwarded = any(name in _FORWARDING for name, _ in scope["headers"])
        if peer is None or not forwarded:
            return peer, False
        if not self._trusted(peer):
            return peer, True
        hops = [h.strip() for v in headers.getlist("x-forwarded-for") for h in v.split(",") if h.strip()]
        client = peer
        for hop in reversed(hops):
            client = hop
            if not self._trusted(hop):
                break
        proto = headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
        if proto in ("http", "https"):
            scope["scheme"] = proto
        return client, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Resolve the client and host, then run the app or refuse."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        client, via_untrusted = self._client(scope, headers)
        if client is not None and scope.get("client"):
            scope["client"] = (client, scope["client"][1])
        host = headers.get("host", "")
        if self.public is not None:
            scope["scheme"] = self.public[0]
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [(b"host", self.public[1])]
        elif not _HOST.match(host):
            await _refuse(send, 400, "InvalidRequest", "the Host header must be host[:port]")
            return
        if self.loopback_only:
            address = _address(client) if client else None
            reason = None
            if via_untrusted:
                reason = "the request came through a proxy that is not in GEOGRID_TRUSTED_PROXIES"
            elif address is None or not address.is_loopback:
                reason = f"the client {client} is not on this machine"
            elif self.public is None and not _is_loopback_host(host):
                reason = f"the Host header {host!r} does not name this machine (127.0.0.1 or localhost)"
            if reason is not None:
                await _refuse(
                    send,
                    403,
                    "Forbidden",
                    f"no API keys are configured, so this server answers this machine only: {reason}. "
                    "Set GEOGRID_API_KEYS='key1:viewer,key2:admin' to serve other clients",
                )
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, code: str, description: str) -> None:
    start, body = _json_error(status, code, description)
    await send(start)
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Answer 413 to a request whose body exceeds ``max_bytes``.

    A declared ``Content-Length`` above the limit is refused before the app runs;
    otherwise the bytes are counted as they arrive (chunked bodies too) and the
    request is cut off at the first chunk that crosses the limit: the client gets
    413, the app sees a disconnect and whatever it answers is dropped.

    Parameters
    ----------
    app
        The ASGI app to protect.
    max_bytes
        The largest body accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with the body counted."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                await self._refuse(send, 400, "InvalidRequest", "Content-Length is not a number")
                return
            if too_large:
                await self._refuse_too_large(send)
                return

        received = 0
        refused = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse_too_large(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out already; the app's own answer is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except ClientDisconnect:
            # We cut the body off ourselves and the client has its 413; any other disconnect is real.
            if not refused:
                raise

    async def _refuse_too_large(self, send: Send) -> None:
        await self._refuse(
            send, 413, "ContentTooLarge", f"the request body exceeds the limit of {self.max_bytes} bytes"
        )

    @staticmethod
    async def _refuse(send: Send, status: int, code: str, description: str) -> None:
        start, body = _json_error(status, code, description)
        await send(start)
        await send({"type": "http.response.body", "body": body})


class HeadMiddleware:
    """Answer ``HEAD`` wherever ``GET`` is answered: the GET's status and headers, no body.

    The request runs as a GET (same policy, same errors, same ``Content-Length``); the body
    is dropped on the way out. A path without GET answers HEAD as it answers GET (405).

    Parameters
    ----------
    app
        The ASGI app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run a HEAD request as a GET and send only the response's start."""
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_head)


def csp_nonce(scope: Scope) -> str:
    """Return the CSP nonce of the request in ``scope`` (set by :class:`SecurityHeadersMiddleware`)."""
    state = scope.get("state") or {}
    nonce = state.get(CSP_NONCE_KEY)
    if not isinstance(nonce, str):
        msg = "no CSP nonce in this request: is SecurityHeadersMiddleware installed?"
        raise RuntimeError(msg)
    return nonce


class SecurityHeadersMiddleware:
    """Add a Content-Security-Policy and the other security headers to every response.

    A fresh nonce is drawn per request and put into ``scope["state"]`` (read it
    with :func:`csp_nonce` or ``request.state.csp_nonce``): only inline scripts and
    styles carrying it run. A response that sets its own CSP keeps it.

    Parameters
    ----------
    app
        The ASGI app.
    img_sources
        Extra ``img-src`` sources besides ``'self'`` and ``data:`` (a local tile server).
    """

    def __init__(self, app: ASGIApp, img_sources: Iterable[str] = ()) -> None:
        self.app = app
        self.img_sources = " ".join(["'self'", "data:", *img_sources])

    def policy(self, nonce: str) -> str:
        """Return the CSP for a response whose inline scripts and styles carry ``nonce``."""
        return (
            "default-src 'none'; "
            f"script-src 'self' 'nonce-{nonce}'; "
            f"style-src 'self' 'nonce-{nonce}'; "
            f"img-src {self.img_sources}; "
            "connect-src 'self'; font-src 'self'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a fresh nonce and add the headers to its response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(18)
        scope.setdefault("state", {})[CSP_NONCE_KEY] = nonce

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = self.policy(nonce)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                if not scope.get("path", "").startswith("/static/"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class WritesFirst:
    """Changes before reads: while a change is being applied, reads that arrive wait for it.

    The service is one process, and its Python work runs one thread at a time: a change
    sharing the processor with a crowd of wall refreshes takes many times its own time.
    While a change runs (it holds :meth:`change` from its route, once it is authorised and
    its body read), reads arriving at :class:`WritesFirstMiddleware` wait until no change
    is running, ``max_wait_s`` at most, so a stream of changes never starves the readers;
    reads already running finish as they are. Used from the event loop only (no locks).

    Parameters
    ----------
    max_wait_s
        The longest a read waits for changes, in seconds.
    """

    def __init__(self, max_wait_s: float = 1.0) -> None:
        self.max_wait_s = max_wait_s
        self._running = 0
        self._done: anyio.Event | None = None

    @property
    def running(self) -> int:
        """How many changes are being applied now."""
        return self._running

    @contextlib.asynccontextmanager
    async def change(self) -> AsyncIterator[None]:
        """Hold reads back while the body runs (nested and concurrent changes count up)."""
        if self._running == 0:
            self._done = anyio.Event()
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            if self._running == 0 and self._done is not None:
                self._done.set()
                self._done = None

    async def read_turn(self) -> None:
        """Return when no change is running, or after ``max_wait_s``."""
        done = self._done
        if self._running and done is not None:
            with anyio.move_on_after(self.max_wait_s):
                await done.wait()


class WritesFirstMiddleware:
    """Let reads (GET, HEAD; not static files) in only when :class:`WritesFirst` gives them their turn.

    Parameters
    ----------
    app
        The ASGI app.
    gate
        The app's :class:`WritesFirst` (its change routes hold it).
    """

    def __init__(self, app: ASGIApp, gate: WritesFirst) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wait for running changes before a read, then run the app."""
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and not scope["path"].startswith("/static/"):
            await self.gate.read_turn()
        await self.app(scope, receive, send)
