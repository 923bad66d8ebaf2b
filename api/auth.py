"""Who may call what: API keys, roles, and one policy dependency per route.

Every route of the app declares exactly one policy from :data:`POLICIES`
(``dependencies=[Depends(require_viewer)]`` or a router-wide one);
:func:`check_route_policies` refuses to build an app where a route lacks one.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount

from api.sessions import SessionStore
from api.settings import Role, Settings, get_settings

__all__ = [
    "CSRF_HEADER",
    "POLICIES",
    "SESSION_COOKIE",
    "Principal",
    "RouteInfo",
    "check_route_policies",
    "current_principal",
    "get_sessions",
    "iter_routes",
    "login_url",
    "principal_of",
    "public",
    "require_admin",
    "require_planner",
    "require_viewer",
    "role_of_key",
    "route_policy",
    "safe_next",
]


SESSION_COOKIE = "geogrid_session"
"""The cookie a browser sign-in (``/login``) keeps its session token in (never the key itself):
HttpOnly, SameSite=Strict, path ``/``; see :mod:`api.sessions`."""

CSRF_HEADER = "X-Requested-With"
"""A change authenticated by the cookie must carry this header (any value): a page of another site
cannot add it without a CORS preflight, which the app refuses (SameSite=Strict is the first line)."""

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """The caller: their role, or None for an anonymous caller without read rights."""

    role: Role | None
    authenticated: bool
    via_cookie: bool = False


def safe_next(value: str | None) -> str:
    """Return ``value`` if it is a path on this server, else ``/`` (no open redirect after sign-in)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def login_url(next_path: str) -> str:
    """Return the sign-in URL that comes back to ``next_path`` afterwards."""
    return "/login?next=" + quote(safe_next(next_path), safe="/")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        msg = "the Authorization header must be 'Bearer <key>'"
        raise _unauthorised(msg)
    return token.strip()


def _unauthorised(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


def _role_of(token: str, settings: Settings) -> Role | None:
    """Return the role of ``token``; every key is compared in constant time."""
    found: Role | None = None
    given = token.encode()
    for key, role in settings.api_keys.items():
        if hmac.compare_digest(given, key.encode()):
            found = role
    if settings.local_admin_key is not None and hmac.compare_digest(
        given, settings.local_admin_key.get_secret_value().encode()
    ):
        found = Role.ADMIN
    return found


def role_of_key(token: str, settings: Settings) -> Role | None:
    """Return the role of an API key, None for an unknown one (compared in constant time)."""
    return _role_of(token, settings)


def get_sessions(request: Request) -> SessionStore:
    """Return the app's browser sessions (one :class:`~api.sessions.SessionStore` per app)."""
    sessions = getattr(request.app.state, "sessions", None)
    if sessions is None:
        sessions = request.app.state.sessions = SessionStore()
    return sessions


async def current_principal(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> Principal:
    """Identify the caller (the dependency; see :func:`principal_of`).

    Asynchronous, as every policy: a few comparisons in memory need no worker thread,
    and a request that hops between threads for each waits its turn for each.
    """
    return principal_of(request, settings)


def principal_of(request: Request, settings: Settings) -> Principal:
    """Identify the caller from ``Authorization: Bearer <key>``, else from the sign-in cookie.

    An unknown key in the header is refused (401) even where anonymous reading is allowed,
    so that a mistyped key fails loudly instead of silently losing its rights. A cookie whose
    session is unknown, expired or signed out, or whose key is no longer configured, counts as
    no key (the browser is sent to sign in again). A change (POST, DELETE, ...) authenticated
    by the cookie must carry :data:`CSRF_HEADER`.
    """
    anonymous = Principal(role=Role.VIEWER if settings.anonymous_read else None, authenticated=False)
    token = _bearer(request)
    if token is None:
        cookie = request.cookies.get(SESSION_COOKIE)
        role = get_sessions(request).role(cookie, settings) if cookie else None
        if role is None:
            return anonymous
        if request.method not in _SAFE_METHODS and CSRF_HEADER.lower() not in request.headers:
            msg = (
                f"a change signed in by cookie must carry the {CSRF_HEADER} header "
                "(the app's pages send it; other sites cannot)"
            )
            raise HTTPException(status_code=403, detail=msg)
        return Principal(role=role, authenticated=True, via_cookie=True)
    role = _role_of(token, settings)
    if role is None:
        msg = "unknown API key"
        raise _unauthorised(msg)
    return Principal(role=role, authenticated=True)


def _require(minimum: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def policy(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role is None:
            msg = (
                f"this needs the {minimum.label} role: send 'Authorization: Bearer <key>' (browsers: sign in at /login)"
            )
            raise _unauthorised(msg)
        if principal.role < minimum:
            msg = f"this needs the {minimum.label} role; the key has {principal.role.label}"
            raise HTTPException(status_code=403, detail=msg)
        return principal

    policy.__name__ = f"require_{minimum.label}"
    policy.__qualname__ = policy.__name__
    policy.__doc__ = f"Policy: the caller has at least the {minimum.label} role."
    return policy


async def public() -> None:
    """Policy: anyone, with or without a key (health checks)."""


require_viewer = _require(Role.VIEWER)
require_planner = _require(Role.PLANNER)
require_admin = _require(Role.ADMIN)

POLICIES: dict[Callable[..., object], str] = {
    public: "public",
    require_viewer: "viewer",
    require_planner: "planner",
    require_admin: "admin",
}
"""Each policy dependency and its name."""


@dataclass(frozen=True)
class RouteInfo:
    """One route as the app serves it: full path, methods, dependencies, and the route object."""

    path: str
    methods: frozenset[str]
    dependant: Dependant | None
    route: BaseRoute


def iter_routes(app: FastAPI) -> Iterator[RouteInfo]:
    """Yield every route of ``app`` with its full path, through included routers.

    FastAPI >= 0.16x keeps included routers as lazy entries in ``app.routes``;
    older versions copy their routes into the app. Both are walked here.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover  (older FastAPI: routes are already flat)
        for route in app.routes:
            dependant = route.dependant if isinstance(route, APIRoute) else None
            methods = frozenset(getattr(route, "methods", None) or ())
            yield RouteInfo(getattr(route, "path", ""), methods, dependant, route)
        return
    for ctx in iter_route_contexts(app.routes):
        original = ctx.original_route
        dependant = getattr(ctx, "dependant", None) if isinstance(original, APIRoute) else None
        yield RouteInfo(str(ctx.path), frozenset(ctx.methods or ()), dependant, original)


def _calls(dependant: Dependant) -> Iterator[Callable[..., object]]:
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is not None:
            yield dep.call
        stack.extend(dep.dependencies)


def route_policy(route: RouteInfo) -> str:
    """Return the name of the one policy ``route`` declares.

    Raises
    ------
    LookupError
        The route declares no policy, or more than one.
    """
    calls = _calls(route.dependant) if route.dependant is not None else iter(())
    found = sorted({POLICIES[c] for c in calls if c in POLICIES})
    if len(found) != 1:
        what = "no policy" if not found else f"several policies ({', '.join(found)})"
        msg = (
            f"route {sorted(route.methods)} {route.path} declares {what}: add exactly one of "
            "dependencies=[Depends(public | require_viewer | require_planner | require_admin)]"
        )
        raise LookupError(msg)
    return found[0]


def check_route_policies(app: FastAPI) -> dict[tuple[str, str], str]:
    """Check that every route of ``app`` declares one policy; return ``{(method, path): policy}``.

    Mounted apps (``/static``) are public by construction and listed as ``("GET", "/static")``.

    Raises
    ------
    LookupError
        A route declares no policy or several, or is a plain Starlette route that cannot declare one.
    """
    table: dict[tuple[str, str], str] = {}
    for info in iter_routes(app):
        if isinstance(info.route, APIRoute):
            policy = route_policy(info)
            for method in sorted(info.methods):
                table[(method, info.path)] = policy
        elif isinstance(info.route, Mount):
            table[("GET", info.path)] = "public"
        else:
            msg = f"route {info.path!r} ({type(info.route).__name__}) cannot declare a policy: add it through a router"
            raise LookupError(msg)
    return table
