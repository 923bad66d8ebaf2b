"""Browser sessions: an opaque, expiring token the server holds and can revoke.

``POST /login`` opens a session for a known API key and gives the browser a random token
(256 bits, in an HttpOnly cookie); the server keeps only the token's SHA-256, the digest of
the key it was opened with and its expiry. A request with the cookie is answered with the
role the key has *now*: a key withdrawn from ``GEOGRID_API_KEYS`` ends its sessions, a
changed role applies at once, ``POST /logout`` deletes the session, and an expired one is
forgotten. Sessions live in the server process: a restart signs every browser out, and with
several worker processes each worker knows only its own sessions (run one worker, or put a
sticky proxy in front).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from api.settings import Role, Settings

__all__ = ["MAX_SESSIONS", "SessionStore"]

MAX_SESSIONS = 10_000
"""Live sessions kept at most; past it the oldest are dropped (their browsers sign in again)."""


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@dataclass(frozen=True)
class _Session:
    key_digest: bytes
    expires_at: float


class SessionStore:
    """The live browser sessions of one app (see the module docstring).

    Parameters
    ----------
    clock
        Returns the current time in seconds (``time.time``; tests pass a fake one).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._live: dict[bytes, _Session] = {}

    def open(self, key: str, lifetime_s: float) -> str:
        """Open a session for ``key`` lasting ``lifetime_s`` seconds; return its token (for the cookie)."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            if len(self._live) >= MAX_SESSIONS:
                self._live = {t: s for t, s in self._live.items() if s.expires_at > now}
                while len(self._live) >= MAX_SESSIONS:  # dicts keep insertion order: oldest first
                    del self._live[next(iter(self._live))]
            self._live[_digest(token)] = _Session(_digest(key), now + lifetime_s)
        return token

    def role(self, token: str, settings: Settings) -> Role | None:
        """Return the role of the session ``token`` now; None if unknown, expired, revoked or its key withdrawn."""
        digest = _digest(token)
        with self._lock:
            session = self._live.get(digest)
            if session is not None and session.expires_at <= self._clock():
                del self._live[digest]
                session = None
        if session is None:
            return None
        found: Role | None = None
        for key, role in settings.api_keys.items():
            if hmac.compare_digest(session.key_digest, _digest(key)):
                found = role
        local = settings.local_admin_key
        if local is not None and hmac.compare_digest(session.key_digest, _digest(local.get_secret_value())):
            found = Role.ADMIN
        return found

    def revoke(self, token: str) -> bool:
        """End the session ``token``; return whether it was live."""
        with self._lock:
            return self._live.pop(_digest(token), None) is not None

    def __len__(self) -> int:
        """Return the number of sessions held (expired ones included until they are seen)."""
        return len(self._live)
