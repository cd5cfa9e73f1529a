"""The web inbox (placeholder until the HTML pages land)."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from .._errors import HubError

__all__ = ["error_page", "router"]

router = APIRouter(include_in_schema=False)


def error_page(request: Request, exc: HubError) -> HTMLResponse:
    """A plain error page for browser paths."""
    return HTMLResponse(f"<h1>{exc.status}</h1><p>{html.escape(exc.message)}</p>",
                        status_code=exc.status)
