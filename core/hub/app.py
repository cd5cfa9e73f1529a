"""The hub's ASGI application: ``create_app(settings)``.

One FastAPI app carries the JSON API (``/api/v1``), the web inbox (``/``), ``/healthz``
(liveness), ``/readyz`` (readiness: the store answers) and the OpenAPI document. Errors render
by where they happen: JSON under ``/api``, a page elsewhere.
Every answer carries the security headers and a request id, HEAD works wherever GET does,
and bodies are held to ``max_body_bytes`` (:mod:`signoff.hub.edge`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from .._errors import HubError
from ..store import Store
from .audit_key import open_hub_store
from .edge import Edge
from .inputs import invalid_body, invalid_fields
from .metrics import CONTENT_TYPE, Metrics, authorized, serve_metrics
from .pages import allowed_methods, docs_router
from .service import Clock, Hub, _utcnow
from .settings import Settings
from .signing import hub_signing_keys

__all__ = ["create_app"]

_log = logging.getLogger("signoff.hub")


class _HubApp(FastAPI):
    """FastAPI with :class:`~.edge.Edge` outside everything, the 500 page included
    (``add_middleware`` would put it inside Starlette's error middleware).
    """

    body_limit = 1_048_576  # set by create_app from the settings

    def build_middleware_stack(self) -> ASGIApp:
        return Edge(super().build_middleware_stack(), self.body_limit, self._metrics)

    def _metrics(self) -> Metrics | None:
        hub = getattr(self.state, "hub", None)
        return None if hub is None else hub.metrics


class _Readiness:
    """One store check at a time: a probe that comes while a check still runs (a store that
    hangs) waits on that same check, so probes never pile up threads on a stuck database.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._check: asyncio.Future[None] | None = None

    async def check(self, hub: Hub) -> str | None:
        """None when the store answered in time, else why not (never the error's text: a
        database error may name hosts and users).
        """
        if self._check is None or self._check.done():
            self._check = asyncio.ensure_future(hub.check_store())
            self._check.add_done_callback(_retrieve)
        try:
            await asyncio.wait_for(asyncio.shield(self._check), self.timeout)
        except asyncio.TimeoutError:
            _log.warning("readyz: the store did not answer within %s s", self.timeout)
            return f"the store did not answer within {self.timeout:g} s"
        except Exception as exc:
            _log.warning("readyz: the store failed: %r", exc)
            return f"the store failed ({type(exc).__name__})"
        return None


def _retrieve(check: asyncio.Future[None]) -> None:
    # read once, so a check that failed after its probe gave up is not logged as never retrieved
    if not check.cancelled():
        check.exception()


def _identity_clients(settings: Settings) -> dict[str, Any]:
    """The OIDC client and the workload issuers the settings ask for (each owns an HTTP client
    for the hub's life, closed at stop).
    """
    clients: dict[str, Any] = {}
    if settings.oidc is not None:
        from .oidc import OidcLogin
        clients["oidc"] = OidcLogin(settings, settings.oidc)
    if settings.workload_issuers:
        from .workload import WorkloadIdentity
        clients["workload"] = WorkloadIdentity(settings)
    return clients


def create_app(settings: Settings, store: Store | None = None,
               clock: Clock = _utcnow) -> FastAPI:
    """Build the hub's app. The store is opened from ``settings.database`` unless given."""
    from . import api, deliveries, live, login, sso, tokens, web, web_batch, web_reveal
    from .proxy import TrustedProxy

    owned = store is None
    the_store = store if store is not None else open_hub_store(settings)[0]
    if the_store.signer is None:  # a store handed in (tests, embedding): sign all the same
        the_store.signer = hub_signing_keys(settings, create=True).keyring
    identity = _identity_clients(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = Hub(settings, the_store, clock=clock)
        app.state.hub = hub
        await hub.start()
        own_port = None
        if hub.metrics is not None and settings.metrics_port is not None:
            own_port = await serve_metrics(settings, hub.metrics)
        try:
            yield
        finally:
            if own_port is not None:
                own_port.close()
            await hub.stop()
            for client in identity.values():
                await client.aclose()
            if owned:
                the_store.close()

    app = _HubApp(
        title="signoff hub",
        version="1",
        description="Human approval and input steps for workflows: events, responses, "
                    "decisions. Every call needs `Authorization: Bearer TOKEN`.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc from a CDN: see settings.api_docs
        redoc_url=None,
    )
    app.body_limit = settings.max_body_bytes
    app.state.settings = settings
    app.state.store = the_store
    app.state.oidc = identity.get("oidc")
    app.state.workload = identity.get("workload")

    @app.exception_handler(HubError)
    async def hub_error(request: Request, exc: HubError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers())
        page = web.error_page(request, exc)
        page.headers.update(exc.headers())
        return page

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(invalid_body(exc.errors()), status_code=422)
        error = invalid_fields(exc.errors())
        return web.error_page(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(app.router.routes, request.scope)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": {"code": "http_error", "message": str(exc.detail)}},
                                status_code=exc.status_code, headers=headers)
        page = web.status_page(exc.status_code, str(exc.detail))
        page.headers.update(headers)
        return page

    @app.get("/healthz", tags=["hub"])
    async def healthz() -> dict[str, Any]:
        """Liveness: the hub's process runs and its event loop answers; ``loop_lag`` is how late
        the loop ran lately and at most (seconds); ``replicas`` how many hubs share the
        database, as last counted. The store is not asked (that is ``/readyz``):
        a database that is down must not get every replica restarted.
        """
        hub: Hub = app.state.hub
        health: dict[str, Any] = {"status": "ok", "waiting": hub.waiting,
                                  "loop_lag": hub.loop_lag.as_dict(),
                                  "replicas": hub.limits.replicas}
        if settings.instance is not None:
            health["instance"] = settings.instance
        return health

    readiness = _Readiness(settings.ready_timeout)

    @app.get("/readyz", tags=["hub"], responses={503: {"description": "The store does not "
                                                        "answer; retry after Retry-After"}})
    async def readyz() -> JSONResponse:
        """Readiness: the store answers a trivial query within ``ready_timeout`` seconds. When
        it does not, 503 with ``Retry-After``, so a load balancer sends this replica no traffic.
        """
        hub: Hub = app.state.hub
        reason = await readiness.check(hub)
        if reason is not None:
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503,
                                headers={"Retry-After": str(settings.ready_retry_after)})
        return JSONResponse({"status": "ready"})

    if settings.metrics and settings.metrics_port is None:
        @app.get("/metrics", include_in_schema=False)
        async def metrics(request: Request) -> Response:
            """Prometheus metrics (see :mod:`signoff.hub.metrics`)."""
            if not authorized(settings, request.headers.get("authorization")):
                return Response("unauthorized\n", status_code=401, media_type="text/plain",
                                headers={"WWW-Authenticate": "Bearer"})
            hub: Hub = app.state.hub
            assert hub.metrics is not None
            body = await to_thread.run_sync(hub.metrics.render)
            return Response(body, media_type=CONTENT_TYPE)

    app.include_router(api.router)
    app.include_router(tokens.router)
    app.include_router(deliveries.router)
    app.include_router(web.router)
    app.include_router(live.router)
    app.include_router(web_batch.router)
    app.include_router(web_reveal.router)
    if settings.api_docs:
        app.include_router(docs_router())
    app.include_router(login.router)
    app.include_router(sso.router)
    if settings.trusted_proxy is not None:
        app.add_middleware(TrustedProxy, config=settings.trusted_proxy)
    return app
