"""A FAKE Argo Server on loopback: the three WorkflowService calls the resumer uses.

Built from Argo's ``api/openapi-spec/swagger.json`` (request shapes) and its Go source
(server/workflow/workflow_server.go, workflow/util/util.go) for the rules:

- ``PUT /api/v1/workflows/{namespace}/{name}/set`` (WorkflowSetRequest): ``phase`` must be
  ``Succeeded``, ``Failed``, ``Error`` or empty (else 400); ``outputParameters`` must be a
  JSON string holding a string map (else 400); only *active suspend nodes* (type Suspend,
  phase Running) matching the Kubernetes field selector are touched; an output the node does
  not declare, or one not ``valueFrom.supplied`` (or already set), is refused; no match is
  refused. Those refusals are gRPC Internal errors, so HTTP 500, as in Argo.
- ``PUT .../resume`` (WorkflowResumeRequest): with a selector, the matching active suspend
  nodes succeed; without, every one does, taking its outputs' defaults.
- ``GET /api/v1/workflows/{namespace}/{name}``: the workflow with its node statuses.
- ``Authorization: Bearer <token>`` is required (401, gRPC Unauthenticated, otherwise).

Errors are grpc-gateway v1 bodies: ``{"error", "code", "message", "details"}``. The body is
decoded like Argo's encoding/json gateway marshaler (a non-string field is a 400; unknown
fields are ignored) and unknown fields are recorded so tests can insist there are none.
Every call is recorded in ``calls``. ``inject`` queues canned answers (e.g. a 503).
``delay`` makes each ``set``/``resume`` take that long (a real server's round trip to the
Kubernetes API); ``most_in_flight`` and ``most_per_workflow`` record how many overlapped.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from signoff.testing import free_port

from .fake_expr import parse_selector, selector_matches

__all__ = ["ArgoError", "Call", "FakeArgoServer", "now"]

_HTTP = {2: 500, 3: 400, 5: 404, 7: 403, 13: 500, 16: 401}
_SET_FIELDS = ("name", "namespace", "nodeFieldSelector", "outputParameters", "phase", "message")
_RESUME_FIELDS = ("name", "namespace", "nodeFieldSelector")


def now() -> str:
    """A Kubernetes timestamp."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ArgoError(Exception):
    """A gRPC status, rendered the way Argo's grpc-gateway renders it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def response(self) -> JSONResponse:
        body = {"error": self.message, "code": self.code, "message": self.message,
                "details": []}
        return JSONResponse(body, status_code=_HTTP[self.code])


@dataclass
class Call:
    """One request the fake answered."""

    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: Any
    status: int = 0
    unknown_fields: list[str] = field(default_factory=list)


class FakeArgoServer:
    """The fake server; ``with FakeArgoServer() as argo:`` runs it on a free loopback port."""

    def __init__(self, token: str = "fake-argo-token", port: int | None = None) -> None:
        self.token = token
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workflows: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.calls: list[Call] = []
        self.inject: list[tuple[int, dict[str, Any]]] = []
        self.delay = 0.0
        self.in_flight: dict[tuple[str, str], int] = {}
        self.most_in_flight = 0
        self.most_per_workflow = 0
        self.lock = threading.RLock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[
            Route("/api/v1/workflows/{namespace}/{name}/set", self._set, methods=["PUT"]),
            Route("/api/v1/workflows/{namespace}/{name}/resume", self._resume, methods=["PUT"]),
            Route("/api/v1/workflows/{namespace}/{name}", self._get, methods=["GET"]),
        ])

    # lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeArgoServer:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True,
                                        name="fake-argo-server")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake Argo Server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeArgoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # state -------------------------------------------------------------------------------
    def submit(self, manifest: dict[str, Any], namespace: str = "argo") -> dict[str, Any]:
        """Store a Workflow as submitted: a name from generateName, a uid, phase Running."""
        workflow = copy.deepcopy(manifest)
        meta = workflow.setdefault("metadata", {})
        meta["name"] = meta.get("name") or meta["generateName"] + uuid.uuid4().hex[:5]
        meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=now())
        workflow["status"] = {"phase": "Running", "startedAt": now(), "nodes": {}}
        with self.lock:
            self.workflows[(namespace, meta["name"])] = workflow
        return workflow

    def add_node(self, workflow: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
        """Record a node status (as the controller would) and return it."""
        meta = workflow["metadata"]
        node.setdefault("id", f"{meta['name']}-{zlib.crc32(node['name'].encode())}")
        node.setdefault("startedAt", now())
        with self.lock:
            self.workflows[(meta["namespace"], meta["name"])]["status"]["nodes"][node["id"]] = node
        return node

    def node(self, workflow: dict[str, Any], node_id: str) -> dict[str, Any]:
        """A copy of one node's status now."""
        meta = workflow["metadata"]
        with self.lock:
            found = self.workflows[(meta["namespace"], meta["name"])]["status"]["nodes"]
            return copy.deepcopy(found[node_id])

    def update_node(self, workflow: dict[str, Any], node_id: str,
                    change: Callable[[dict[str, Any]], None]) -> None:
        """Change one node under the lock (the controller's own updates)."""
        meta = workflow["metadata"]
        with self.lock:
            change(self.workflows[(meta["namespace"], meta["name"])]["status"]["nodes"][node_id])

    def calls_to(self, suffix: str) -> list[Call]:
        """The recorded calls whose path ends with ``suffix`` (``/set``, ``/resume``)."""
        return [c for c in self.calls if c.path.endswith(suffix)]

    # HTTP --------------------------------------------------------------------------------
    async def _answer(self, request: Request, fields: tuple[str, ...] | None,
                      handle: Callable[[str, str, dict[str, Any]], dict[str, Any]]
                      ) -> JSONResponse:
        raw = await request.body()
        call = Call(request.method, request.url.path, dict(request.query_params),
                    request.headers.get("authorization"), raw.decode(errors="replace"))
        self.calls.append(call)
        try:
            if self.inject:
                status, body = self.inject.pop(0)
                call.status = status
                return JSONResponse(body, status_code=status)
            if call.authorization != f"Bearer {self.token}":
                raise ArgoError(16, "token not valid. see https://argo-workflows.readthedocs"
                                    ".io/en/latest/faq/")
            body: dict[str, Any] = {}
            if fields is not None:
                body = _decode(raw, fields, call)
                call.body = body
            namespace, name = request.path_params["namespace"], request.path_params["name"]
            body.update(namespace=namespace, name=name)  # path parameters win, as in gateway
            if fields is not None and self.delay:
                await self._busy((namespace, name))
            with self.lock:
                answer = JSONResponse(handle(namespace, name, body))
        except ArgoError as error:
            answer = error.response()
        call.status = answer.status_code
        return answer

    async def _busy(self, workflow: tuple[str, str]) -> None:
        """Take ``delay`` seconds, counting the calls that overlap (all, and per workflow)."""
        self.in_flight[workflow] = self.in_flight.get(workflow, 0) + 1
        self.most_per_workflow = max(self.most_per_workflow, self.in_flight[workflow])
        self.most_in_flight = max(self.most_in_flight, sum(self.in_flight.values()))
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight[workflow] -= 1

    async def _get(self, request: Request) -> JSONResponse:
        return await self._answer(request, None, lambda ns, name, _: self._workflow(ns, name))

    async def _set(self, request: Request) -> JSONResponse:
        return await self._answer(request, _SET_FIELDS, self._do_set)

    async def _resume(self, request: Request) -> JSONResponse:
        return await self._answer(request, _RESUME_FIELDS, self._do_resume)

    # Argo's rules ------------------------------------------------------------------------
    def _workflow(self, namespace: str, name: str) -> dict[str, Any]:
        workflow = self.workflows.get((namespace, name))
        if workflow is None:
            raise ArgoError(5, f'workflows.argoproj.io "{name}" not found')
        return copy.deepcopy(workflow)

    def _do_set(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._workflow(namespace, name)
        phase = body.get("phase", "")
        if phase not in ("Succeeded", "Failed", "Error", ""):
            raise ArgoError(3, f"{phase} is an invalid phase to set to")
        outputs: dict[str, str] = {}
        if body.get("outputParameters"):
            try:
                outputs = json.loads(body["outputParameters"])
            except json.JSONDecodeError as exc:
                raise ArgoError(3, f"unable to parse output parameter set request: {exc}") from exc
            if not isinstance(outputs, dict) or not all(isinstance(v, str)
                                                        for v in outputs.values()):
                raise ArgoError(3, "unable to parse output parameter set request: json: cannot"
                                   " unmarshal into Go value of type map[string]string")
        selector = body.get("nodeFieldSelector", "")
        if not selector:
            raise ArgoError(13, "'set' currently only targets suspend nodes, use a node field "
                                "selector to target them")
        self._update_suspended(namespace, name, selector, phase, body.get("message", ""),
                               outputs)
        return self._workflow(namespace, name)

    def _do_resume(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._workflow(namespace, name)
        selector = body.get("nodeFieldSelector", "")
        if selector:
            self._update_suspended(namespace, name, selector, "Succeeded", "", {})
            return self._workflow(namespace, name)
        workflow = self.workflows[(namespace, name)]
        workflow.get("spec", {}).pop("suspend", None)
        for node in workflow["status"]["nodes"].values():
            if _active_suspend(node):
                apply_defaults(node)
                node.update(phase="Succeeded", finishedAt=now())
        return self._workflow(namespace, name)

    def _update_suspended(self, namespace: str, name: str, selector: str, phase: str,
                          message: str, outputs: dict[str, str]) -> None:
        try:
            terms = parse_selector(selector)
        except ValueError as exc:
            raise ArgoError(13, str(exc)) from exc
        workflow = self.workflows[(namespace, name)]
        nodes = copy.deepcopy(workflow["status"]["nodes"])  # committed only if all is well
        updated = False
        for node in nodes.values():
            if not _active_suspend(node) or not selector_matches(terms, _node_fields(node)):
                continue
            if phase:
                node["phase"] = phase
                node["finishedAt"] = now()
                updated = True
            if message:
                node["message"] = message
                updated = True
            if outputs:
                declared = (node.get("outputs") or {}).get("parameters")
                if declared is None:
                    raise ArgoError(13, "cannot set output parameters because node is not "
                                        "expecting any raw parameters")
                for key, value in outputs.items():
                    param = next((p for p in declared if p["name"] == key), None)
                    if param is None:
                        raise ArgoError(13, f"node is not expecting output parameter '{key}'")
                    if "supplied" not in (param.get("valueFrom") or {}):
                        raise ArgoError(13, f"cannot set output parameter '{key}' because it "
                                            "does not use valueFrom.raw or it was already set")
                    param["value"] = value
                    param.pop("valueFrom")
                    updated = True
        if not updated:
            raise ArgoError(13, "currently, set only targets suspend nodes: no suspend nodes "
                                f"matching nodeFieldSelector: {selector}")
        workflow["status"]["nodes"] = nodes


def _decode(raw: bytes, fields: tuple[str, ...], call: Call) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise ArgoError(3, f"invalid character in request body: {exc}") from exc
    if not isinstance(body, dict):
        raise ArgoError(3, f"json: cannot unmarshal {type(body).__name__} into Go value of "
                           "type workflow.WorkflowSetRequest")
    call.unknown_fields = sorted(set(body) - set(fields))
    decoded = {}
    for key in fields:
        if key in body and body[key] is not None:
            if not isinstance(body[key], str):
                raise ArgoError(3, f"json: cannot unmarshal {type(body[key]).__name__} into Go "
                                   f"struct field .{key} of type string")
            decoded[key] = body[key]
    return decoded


def _active_suspend(node: dict[str, Any]) -> bool:
    return node.get("type") == "Suspend" and node.get("phase") == "Running"


def _node_fields(node: dict[str, Any]) -> dict[str, str]:
    fields = {"displayName": node.get("displayName", ""),
              "templateName": node.get("templateName", ""), "phase": node.get("phase", ""),
              "name": node.get("name", ""), "id": node.get("id", "")}
    for param in (node.get("inputs") or {}).get("parameters") or []:
        fields[f"inputs.parameters.{param['name']}.value"] = str(param.get("value", ""))
    return fields


def apply_defaults(node: dict[str, Any]) -> None:
    """OverrideOutputParametersWithDefault: unset supplied outputs take their default."""
    for param in (node.get("outputs") or {}).get("parameters") or []:
        value_from = param.get("valueFrom") or {}
        if "supplied" in value_from:
            if "default" not in value_from:
                raise ArgoError(13, f"raw output parameter '{param['name']}' has not been set "
                                    "and does not have a default value")
            param["value"] = value_from["default"]
            param.pop("valueFrom")
