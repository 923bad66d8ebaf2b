"""Pure ASGI middleware: a request body limit and security headers on every response."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP_NONCE_KEY", "BodyLimitMiddleware", "HeadMiddleware", "SecurityHeadersMiddleware", "csp_nonce"]

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
