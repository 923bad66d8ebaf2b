"""Browser sign-in: ``/login`` keeps an API key in an HttpOnly cookie, ``/logout`` drops it.

A browser cannot send ``Authorization: Bearer <key>`` when it opens a page, so with API keys
configured the map pages would be out of reach. ``GET /login`` shows a form; ``POST /login``
checks the key and, if it is known, sets :data:`~api.auth.SESSION_COOKIE` (HttpOnly, so page
scripts never see it; SameSite=Strict, so other sites' requests do not carry it; Secure over
https) for ``session_hours`` and sends the browser on to ``next``. A page request refused for
want of a key is answered with a redirect here (see :mod:`api.errors`).
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import SESSION_COOKIE, public, role_of_key, safe_next
from api.deps import SettingsDep
from api.middleware import csp_nonce

__all__ = ["router"]

router = APIRouter(tags=["session"], dependencies=[Depends(public)])

_FORM_TYPE = "application/x-www-form-urlencoded"


def _page(request: Request, next_path: str, message: str | None, status: int) -> HTMLResponse:
    nonce = csp_nonce(request.scope)
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
<label>API 密钥 / API key<input type="password" name="key" autocomplete="current-password" required autofocus></label>
<button type="submit">登录 / Sign in</button>
</form>
<p class="hint">密钥由管理员分配 (GEOGRID_API_KEYS)。The key is kept in an HttpOnly cookie for this browser only.</p>
</main></body></html>"""
    return HTMLResponse(body, status_code=status)


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
        415: {"description": "Not a form post", **_HTML},
    },
    openapi_extra=_FORM_BODY,
)
async def login(request: Request, settings: SettingsDep) -> Response:
    """Check the posted key; if known, set the session cookie and redirect (303) to ``next``.

    The body is a form (``key``, ``next``); an unknown key shows the form again with 401.
    """
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != _FORM_TYPE:
        return _page(request, "/", f"post the form as {_FORM_TYPE}", 415)
    try:
        fields = parse_qs((await request.body()).decode("utf-8"))  # size: capped by the body limit
    except (UnicodeDecodeError, ValueError):
        return _page(request, "/", "the form could not be read", 400)
    next_path = safe_next((fields.get("next") or ["/"])[0])
    key = (fields.get("key") or [""])[0].strip()
    role = role_of_key(key, settings) if key else None
    if role is None:
        return _page(request, next_path, "密钥无效 / unknown API key", 401)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        key,
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
    summary="Sign out: drop the session cookie",
    responses={303: {"description": "Signed out: on to the sign-in form", **_REDIRECT}},
)
def logout() -> Response:
    """Drop the session cookie and show the sign-in form."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
