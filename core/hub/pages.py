"""What every answer of the hub carries, whatever produced it: security headers, HEAD, ``Allow``.

- :class:`SecurityHeaders` adds the Content-Security-Policy (scripts only from the hub, none inline; styles and
  images from the hub only, no framing), ``X-Frame-Options: DENY``, ``Referrer-Policy:
  no-referrer``, ``X-Content-Type-Options: nosniff`` and ``Cache-Control: no-store`` to every
  answer that does not set its own: pages, API JSON, errors (the 500 too: it wraps the whole
  app), redirects and static files.
- :class:`HeadAsGet` answers ``HEAD`` wherever ``GET`` answers, with GET's status and headers
  and no body (FastAPI routes do not take HEAD by themselves).
- :func:`allowed_methods` lists the methods a path takes, for the ``Allow`` of a 405.
- :func:`docs_router`: the Swagger UI at ``/docs`` when ``api_docs`` is on, from the
  ``swagger-ui-bundle`` package (no CDN), with a script of our own instead of an inline one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "HeadAsGet", "SecurityHeaders", "allowed_methods", "docs_router"]

CSP = ("default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
"""Scripts, styles and images only from the hub's own routes (one small script, no inline
code); the pages work with scripts off."""

_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
)


class SecurityHeaders:
    """Add :data:`CSP` and the other security headers to every answer that lacks them (a plain
    ASGI wrapper: the decorator-style middleware costs a task and a copy per request).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer as the app does, with the headers added."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in _HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class HeadAsGet:
    """Run a ``HEAD`` request as ``GET`` and send its status and headers without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer as the app does; a HEAD as its GET without the body."""
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def allowed_methods(routes: list[Any], scope: Scope) -> str:
    """The ``Allow`` header for ``scope``'s path: every method some route takes there.

    HEAD is listed wherever GET is. Starlette names only the first route that matches the
    path, and FastAPI nests included routers: asking each route whether it takes each method,
    through the public ``matches``, sees through both.
    """
    methods = {method for method in _METHODS
               if any(route.matches({**scope, "method": method})[0] is Match.FULL
                      for route in routes)}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


# --- API docs ---------------------------------------------------------------------------------
_DOCS_CSP = ("default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
             "form-action 'self'; frame-ancestors 'none'; img-src 'self' data:")
_DOCS_ASSETS = {"swagger-ui.css": "text/css; charset=utf-8",
                "swagger-ui-bundle.js": "text/javascript; charset=utf-8"}
_DOCS_INIT = (b'window.onload = function () {\n'
              b'  window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});\n'
              b'};\n')
_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>signoff hub - API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body>
</html>
"""


def docs_router() -> APIRouter:
    """``/docs``: Swagger UI from the ``swagger-ui-bundle`` package, loading nothing from
    elsewhere. Imported at start (never on the event loop).

    Raises:
        ImportError: the ``docs`` extra is not installed.
    """
    try:
        from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ImportError("api_docs = true needs its extra: pip install 'signoff[docs]'") \
            from exc
    where = Path(swagger_ui_path)
    assets = {name: ((where / name).read_bytes(), media) for name, media in _DOCS_ASSETS.items()}
    assets["init.js"] = (_DOCS_INIT, "text/javascript; charset=utf-8")
    headers = {"Content-Security-Policy": _DOCS_CSP}
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def docs() -> Response:
        """The interactive API docs."""
        return HTMLResponse(_DOCS_PAGE, headers=headers)

    @router.get("/docs/assets/{name}")
    async def docs_asset(name: str) -> Response:
        """Swagger UI's own script and stylesheet, and the line that starts it."""
        if name not in assets:
            return Response(status_code=404)
        body, media = assets[name]
        return Response(body, media_type=media, headers=headers)

    return router
