"""The hub: ``signoff serve``. Needs the ``hub`` extra (FastAPI, uvicorn, Jinja2)."""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the signoff hub needs the hub extra (FastAPI, uvicorn): from a checkout, "
        "pip install '.[hub]'; from a wheel, pip install 'signoff-VERSION-py3-none-any.whl[hub]'"
    ) from exc

from .app import create_app
from .service import Hub
from .settings import Settings, load_settings

__all__ = ["Hub", "Settings", "create_app", "load_settings"]
