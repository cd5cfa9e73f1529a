"""Nothing a request runs before its endpoint waits for a worker thread.

FastAPI runs a dependency or endpoint written as a plain function in a worker thread: a
handoff between the event loop and the thread that costs more than a check of a path id (it
cost the PostgreSQL hub a fifth of its decisions a second). Every one of the hub's is a
coroutine.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from signoff.hub import create_app, load_settings


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield from _calls(sub)
    if dependant.call is not None:
        yield dependant.call


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # an included router's own
        yield from _routes(getattr(included or route, "routes", []))


def test_every_dependency_and_endpoint_runs_on_the_loop(tmp_path: Path) -> None:
    app = create_app(load_settings(database=str(tmp_path / "hub.db")))
    routes = list(_routes(app.routes))
    assert len(routes) > 30  # the API, the pages, the tokens, the delegations ...
    threaded = sorted({f"{route.path}: {getattr(call, '__name__', call)}"
                       for route in routes for call in _calls(route.dependant)
                       if not inspect.iscoroutinefunction(call)  # nor an instance's method:
                       and not inspect.iscoroutinefunction(type(call).__call__)})
    assert threaded == []
