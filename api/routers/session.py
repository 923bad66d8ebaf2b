"""Browser sign-in: ``/login`` opens a server-side session for an API key, ``/logout`` ends it.

A browser cannot send ``Authorization: Bearer <key>`` when it opens a page, so with API keys
configured the map pages would be out of reach. ``GET /login`` shows a form; ``POST /login``
checks the key and, if it is known, opens a session (:mod:`api.sessions`) and sets its token
in :data:`~api.auth.SESSION_COOKIE` (HttpOnly, so page scripts never see it; SameSite=Strict,
so other sites' requests do not carry it; Secure over https) for ``session_hours``, then sends
the browser on to ``next``. A page request refused for want of a key is answered with a
redirect here (see :mod:`api.errors`).

Login is guarded against cross-site request forgery (a forged sign-in would put the victim
in the attacker's session): the form carries a one-off token that must match the
:data:`LOGIN_COOKIE` set with it (SameSite=Strict), and a browser's ``Origin`` /
``Sec-Fetch-Site`` must name this site.
"""

from __future__ import annotations

import hmac
import html
import secrets
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import SESSION_COOKIE, get_sessions, public, role_of_key, safe_next
from api.deps import SettingsDep
from api.middleware import csp_nonce

__all__ = ["LOGIN_COOKIE", "router"]

LOGIN_COOKIE = "geogrid_login"
"""The cookie holding the sign-in form's anti-forgery token (HttpOnly, SameSite=Strict, path ``/login``)."""

_LOGIN_TOKEN_S = 3600

router = APIRouter(tags=["session"], dependencies=[Depends(public)])

_FORM_TYPE = "application/x-www-form-urlencoded"


def _page(request: Request, next_path: str, message: str | None, status: int) -> HTMLResponse:
    """Return the sign-in form with a fresh anti-forgery token, set in its cookie too."""
    nonce = csp_nonce(request.scope)
    csrf = secrets.token_urlsafe(24)
    note = f'<p class="err" role="alert">{html.escape(message)}</p>' if message else ""
    body = f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>登录 · geogrid</title>
<style nonce="{nonce}">
body {{ font: 15px/1.5 system-ui, "Noto Sans CJK SC", sans-serif; background: #f4f6f8; margin: 0; }}
main {{ max-width: 22rem; margin: 12vh auto; background: #fff; padding: 1.5rem 1.75rem; border-radius: 8px;
       box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
h1 {{ font-size: 1.2rem; margin: 0 0 1rem; }}
label {{ display: block; margin-bottom: .75rem; }}
input[type=password] {{ width: 100%; box-sizing: border-box; padding: .45rem; font: inherit; }}
button {{ padding: .45rem 1.2rem; font: inherit; }}
.err {{ color: #b00020; }}
.hint {{ color: #555; font-size: .85rem; }}
</style></head>
<body><main>
<h1>geogrid 登录 / Sign in</h1>
{note}
<form method="post" action="/login">
<input type="hidden" name="next" value="{html.escape(next_path, quote=True)}">
<input type="hidden" name="csrf" value="{csrf}">
<label>API 密钥 / API key<input type="password" name="key" autocomplete="current-password" required autofocus></label>
<button type="submit">登录 / Sign in</button>
</form>
<p class="hint">密钥由管理员分配 (GEOGRID_API_KEYS)。This browser keeps a session, not the key; sign out ends it.</p>
</main></body></html>"""
    response = HTMLResponse(body, status_code=status)
    response.set_cookie(
        LOGIN_COOKIE,
        csrf,
        max_age=_LOGIN_TOKEN_S,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _cross_site(request: Request) -> str | None:
    """Return why a form post looks cross-site (None if it does not)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site!r}"
    origin = request.headers.get("origin")
    # Under ``Referrer-Policy: no-referrer`` (set on every page here) Chromium sends "Origin: null"
    # with same-site form posts: it tells nothing, Sec-Fetch-Site and the token decide.
    if origin is not None and origin != "null":
        base = urlsplit(str(request.base_url))
        if origin.rstrip("/") != f"{base.scheme}://{base.netloc}":
            return f"Origin {origin!r} is not this site"
    return None


_HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}
_REDIRECT = {"headers": {"Location": {"schema": {"type": "string"}}}}
_FORM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            _FORM_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["key"],
                    "properties": {
                        "key": {"type": "string", "description": "the API key"},
                        "next": {"type": "string", "description": "a path here to go on to (default /)"},
                        "csrf": {"type": "string", "description": "the form's anti-forgery token"},
                    },
                }
            }
        },
    }
}


@router.get("/login", response_class=HTMLResponse, summary="Sign-in form for browsers", responses={200: _HTML})
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    """Return the sign-in form; after signing in the browser goes on to ``next`` (a path here)."""
    return _page(request, safe_next(next), None, 200)


@router.post(
    "/login",
    response_class=RedirectResponse,
    status_code=303,
    summary="Sign in with an API key (form post)",
    responses={
        303: {"description": "Signed in: the session cookie is set; on to `next`", **_REDIRECT},
        400: {"description": "The form could not be read", **_HTML},
        401: {"description": "Unknown key: the form again", **_HTML},
        403: {"description": "Cross-site or without the form's token: the form again", **_HTML},
        415: {"description": "Not a form post", **_HTML},
    },
    openapi_extra=_FORM_BODY,
)
async def login(request: Request, settings: SettingsDep) -> Response:
    """Check the posted key; if known, open a session, set its cookie and redirect (303) to ``next``.

    The body is a form (``key``, ``next``, ``csrf``); an unknown key shows the form again
    with 401, a cross-site post or one without the form's token with 403.
    """
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != _FORM_TYPE:
        return _page(request, "/", f"post the form as {_FORM_TYPE}", 415)
    try:
        fields = parse_qs((await request.body()).decode("utf-8"))  # size: capped by the body limit
    except (UnicodeDecodeError, ValueError):
        return _page(request, "/", "the form could not be read", 400)
    next_path = safe_next((fields.get("next") or ["/"])[0])
    sent = (fields.get("csrf") or [""])[0]
    expected = request.cookies.get(LOGIN_COOKIE, "")
    forged = _cross_site(request)
    if forged is None and not (sent and expected and hmac.compare_digest(sent.encode(), expected.encode())):
        forged = "the form's token is missing or stale"
    if forged is not None:
        return _page(request, next_path, f"请从本站登录页登录 / sign in from this site's form ({forged})", 403)
    key = (fields.get("key") or [""])[0].strip()
    role = role_of_key(key, settings) if key else None
    if role is None:
        return _page(request, next_path, "密钥无效 / unknown API key", 401)
    token = get_sessions(request).open(key, settings.session_hours * 3600)
    response = RedirectResponse(next_path, status_code=303)
    response.delete_cookie(LOGIN_COOKIE, path="/login", httponly=True, samesite="strict")
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post(
    "/logout",
    response_class=RedirectResponse,
    status_code=303,
    summary="Sign out: end the session",
    responses={303: {"description": "Signed out: on to the sign-in form", **_REDIRECT}},
)
def logout(request: Request) -> Response:
    """End the session on the server, drop its cookie and show the sign-in form."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        get_sessions(request).revoke(token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
