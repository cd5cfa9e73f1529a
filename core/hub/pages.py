"""Pages beside the inbox: the ``Allow`` of a 405, and the API docs.

The security headers and HEAD are :mod:`signoff.hub.edge`'s.

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
from starlette.types import Scope

__all__ = ["allowed_methods", "docs_router"]


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
