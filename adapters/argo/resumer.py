"""The hub's Argo resumer: set the waiting suspend node's outputs through the Argo Server API.

On a decision it sends ``PUT /api/v1/workflows/{namespace}/{name}/set`` with every output
the gate's suspend node expects (``outputParameters`` is a JSON-encoded string map, as Argo's
swagger says), the phase (``Succeeded`` to go on, ``Failed`` to stop) and a message naming the
responder (``Resumed by: alice (signoff: approved: ship it; event ev_...)``); then ``PUT .../resume`` if the node still runs. The node is chosen by the field
selector ``inputs.parameters.signoff-event.value=<event id>``, so exactly this gate's node
moves, also inside loops. Its target (see :mod:`signoff.resumers`) is ``namespace/workflow``:
the hub refuses an event naming a workflow that another identity's events already name.

Settings (``[resumers.argo]`` or ``SIGNOFF_RESUMERS__ARGO__<KEY>``):

| key | meaning |
| --- | --- |
| ``url`` | the Argo Server, e.g. ``https://argo-server.argo:2746`` (required) |
| ``token`` | a bearer token (a service account's), with or without ``Bearer `` |
| ``token_file`` | read the token from this file at every delivery (a mounted, rotated token) |
| ``namespaces`` | allowed namespaces (a list or comma-separated); others are refused |
| ``verify`` | TLS: ``true`` (default), ``false``, or a CA bundle path |
| ``timeout`` | seconds per request (default 10) |

Failures: connection errors, 408, 429 and 5xx are retried (:class:`RetryDelivery`); any other
4xx, a workflow that no longer exists, and a node that already ended are final
(:class:`DeliveryFailed`), with Argo's own message, so the event's delivery says why.

Batches (several nodes decided at once, e.g. a batch decision in the inbox): the hub runs
deliveries concurrently, at most ``delivery_concurrency`` per resumer, each with its own
result, retries and audit line. Here, deliveries to *different* workflows go in parallel while
those to the *same* workflow go one at a time: Argo's ``set`` and ``resume`` are each a
read-modify-write of the whole Workflow object with only five quick retries on a conflict
(``updateSuspendedNode`` in ``workflow/util``), so parallel calls on one workflow mostly buy
conflicts (500s, retried with backoff) rather than speed.
This module imports only ``signoff`` and httpx: it runs inside the hub, where hera may be absent.
"""

from __future__ import annotations

import asyncio
import json
import re
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from signoff import Decision, Event, InvalidInput
from signoff.adapters.argo._common import (
    EVENT_PARAM,
    OUTPUTS,
    argo_value,
    default_value,
    escape_selector_value,
    phase_for,
)
from signoff.resumers import DeliveryFailed, RetryDelivery, target_name

__all__ = ["ArgoResumer"]

_SELECTOR = re.compile(r"^inputs\.parameters\.([A-Za-z0-9_-]+)\.value=\{event_id\}$")
_KNOWN_OUTPUTS = ("value", "outcome", "by", "comment")
# Argo answers 500 (gRPC Internal) for these; retrying cannot help
_FINAL_500 = ("is not expecting output parameter", "cannot set output parameter",
              "not expecting any raw parameters")
_NO_NODE = "no suspend nodes matching"
_ENDED = ("Succeeded", "Failed", "Error")
_LONGEST = {"namespace": 63, "workflow": 253}  # a Kubernetes namespace, a Workflow's name


class ArgoResumer:
    """Deliver decisions to suspend nodes through the Argo Server API."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        url = settings.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"[resumers.argo] url: expected the Argo Server's http(s) URL, "
                             f"got {url!r}")
        self.url = url.rstrip("/")
        self.token: str | None = settings.get("token") or None
        self.token_file: str | None = settings.get("token_file") or None
        self.namespaces = _names(settings.get("namespaces"))
        self._client = httpx.AsyncClient(base_url=self.url,
                                         timeout=float(settings.get("timeout", 10)),
                                         verify=_verify(settings.get("verify", True)))
        # one lock per namespace/workflow, alive while a delivery holds or awaits it
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = \
            weakref.WeakValueDictionary()

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    def target(self, event: Event) -> str | None:
        """``namespace/workflow`` the decision would be set on; ``None`` when the params name
        none (the delivery fails then, naming the field).

        Raises:
            InvalidInput: a name longer than Kubernetes allows (no such workflow can exist),
                naming the param: the hub refuses the event.
        """
        params = event.source.params
        for name, longest in _LONGEST.items():
            value = params.get(name)
            if isinstance(value, str) and len(value) > longest:
                raise InvalidInput(f"source.params.{name}", f"at most {longest} characters "
                                   "(a Kubernetes name)", f"{len(value)} characters")
        return _run(params)

    async def deliver(self, event: Event) -> None:
        """Set the node's outputs and phase; resume it if it still runs (one delivery per
        workflow at a time, see the module's docstring).
        """
        target = _run(event.source.params) or ""
        lock = self._locks.get(target)
        if lock is None:
            lock = self._locks[target] = asyncio.Lock()
        async with lock:
            await self._deliver(event)

    async def _deliver(self, event: Event) -> None:
        decision = event.decision
        if decision is None:
            raise DeliveryFailed(f"event {event.id} has no decision to deliver")
        params = event.source.params
        namespace = _text(params, "namespace", "the workflow's namespace")
        workflow = _text(params, "workflow", "the workflow's name")
        if self.namespaces is not None and namespace not in self.namespaces:
            raise DeliveryFailed(f"source.params.namespace: {namespace!r} is not in the argo "
                                 f"resumer's namespaces {sorted(self.namespaces)}")
        parameter, selector = _selector(params, event.id)
        on_reject = params.get("on_reject", "fail")
        body = {
            "name": workflow,
            "namespace": namespace,
            "nodeFieldSelector": selector,
            "outputParameters": json.dumps(_outputs(event, decision, params)),
            "phase": phase_for(decision.outcome, str(on_reject)),
            "message": _message(event.id, decision),
        }
        where = f"/api/v1/workflows/{quote(namespace, safe='')}/{quote(workflow, safe='')}"
        answer = await self._put(f"{where}/set", body)
        if not answer.is_success:
            await self._refused(answer, "set", where, namespace, workflow, parameter, event.id)
            return
        node = _node_for(_json(answer), parameter, event.id)
        if node is not None and node.get("phase") == "Running":
            resume = {"name": workflow, "namespace": namespace, "nodeFieldSelector": selector}
            answer = await self._put(f"{where}/resume", resume)
            if not answer.is_success and _NO_NODE not in _argo_message(answer):
                await self._refused(answer, "resume", where, namespace, workflow, parameter,
                                    event.id)

    # HTTP --------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        token = self.token
        if self.token_file:
            try:
                token = Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise RetryDelivery(f"argo resumer token_file: {exc}") from exc
        if not token:
            return {}
        return {"Authorization": token if token.lower().startswith("bearer ")
                else f"Bearer {token}"}

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, path, headers=self._headers(), **kwargs)
        except httpx.HTTPError as exc:
            raise RetryDelivery(f"Argo Server {self.url}: {type(exc).__name__}: {exc}") from exc

    async def _put(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self._request("PUT", path, json=body)

    async def _refused(self, answer: httpx.Response, action: str, where: str, namespace: str,
                       workflow: str, parameter: str, event_id: str) -> None:
        """Turn a refusal into RetryDelivery or DeliveryFailed; always raises."""
        status, message = answer.status_code, _argo_message(answer)
        reason = (f"Argo Server answered {status} to {action} on workflow "
                  f"{namespace}/{workflow}: {message}")
        if status in (408, 429):
            raise RetryDelivery(reason)
        if status < 500:
            raise DeliveryFailed(reason)
        if _NO_NODE in message:
            await self._why_no_node(where, namespace, workflow, parameter, event_id, reason)
        if any(text in message for text in _FINAL_500):
            raise DeliveryFailed(reason)
        raise RetryDelivery(reason)

    async def _why_no_node(self, where: str, namespace: str, workflow: str, parameter: str,
                           event_id: str, reason: str) -> None:
        """No active node matched: not reached yet (retry), or gone for good (fail)."""
        answer = await self._request("GET", where,
                                     params={"fields": "status.phase,status.nodes"})
        if answer.status_code == 404:
            raise DeliveryFailed(f"workflow {namespace}/{workflow} no longer exists: "
                                 f"{_argo_message(answer)}")
        if not answer.is_success:
            raise RetryDelivery(reason)
        found = _json(answer)
        node = _node_for(found, parameter, event_id)
        if node is not None and node.get("phase") != "Running":
            raise DeliveryFailed(
                f"the suspend node {node.get('name')} of {namespace}/{workflow} already ended "
                f"({node.get('phase')}: {node.get('message') or 'no message'}) before the "
                f"decision arrived: Argo's duration ran out, or it was resumed outside signoff")
        phase = (found.get("status") or {}).get("phase")
        if node is None and phase in _ENDED:
            raise DeliveryFailed(f"workflow {namespace}/{workflow} ended ({phase}) before "
                                 f"the decision arrived")
        raise RetryDelivery(f"no suspend node of {namespace}/{workflow} waits for event "
                            f"{event_id} yet (the workflow has not reached it); {reason}")


def _names(value: Any) -> set[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return {part.strip() for part in value.split(",") if part.strip()}
    return {str(part) for part in value}


def _verify(value: Any) -> bool | str:
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    return value if isinstance(value, (bool, str)) else bool(value)


def _run(params: Mapping[str, Any]) -> str | None:
    """``namespace/workflow`` from the params, ``None`` when they name none."""
    try:
        return target_name(_text(params, "namespace", "the workflow's namespace"),
                           _text(params, "workflow", "the workflow's name"))
    except DeliveryFailed:
        return None


def _text(params: Mapping[str, Any], name: str, what: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise DeliveryFailed(f"source.params.{name}: expected {what}, got {value!r}")
    return value


def _selector(params: Mapping[str, Any], event_id: str) -> tuple[str, str]:
    """The field selector for this event's node.

    Only ``inputs.parameters.NAME.value={event_id}`` is accepted: a free selector in an event
    would let any workflow token move any node.
    """
    template = params.get("node_field_selector", f"inputs.parameters.{EVENT_PARAM}.value="
                                                 "{event_id}")
    found = _SELECTOR.match(template) if isinstance(template, str) else None
    if found is None:
        raise DeliveryFailed("source.params.node_field_selector: expected "
                             "'inputs.parameters.NAME.value={event_id}', got " + repr(template))
    parameter = found.group(1)
    return parameter, f"inputs.parameters.{parameter}.value={escape_selector_value(event_id)}"


def _outputs(event: Event, decision: Decision, params: Mapping[str, Any]) -> dict[str, str]:
    names = params.get("outputs", list(OUTPUTS))
    if not isinstance(names, list) or not names or any(n not in _KNOWN_OUTPUTS for n in names):
        raise DeliveryFailed(f"source.params.outputs: expected a list from {_KNOWN_OUTPUTS}, "
                             f"got {names!r}")
    value = (argo_value(decision.value) if decision.value is not None
             else default_value(event.input))
    known = {"value": value, "outcome": decision.outcome.value, "by": decision.by,
             "comment": decision.comment or ""}
    return {str(name): known[str(name)] for name in names}


def _message(event_id: str, decision: Decision) -> str:
    """The node's message: who resumed it first, in the ``Resumed by: ...`` form Argo 3.7
    writes for a resume, naming the person who decided in the hub rather than the hub's own
    service account; then the outcome, the comment and the event.
    """
    text = f"Resumed by: {decision.by} (signoff: {decision.outcome.value}"
    if decision.comment:
        comment = decision.comment if len(decision.comment) <= 300 else (
            decision.comment[:297] + "...")
        text += f": {comment}"
    return f"{text}; event {event_id})"


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        found = answer.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _argo_message(answer: httpx.Response) -> str:
    """Argo's gRPC-gateway error body is ``{"code", "message", "error", "details"}``."""
    body = _json(answer)
    message = body.get("message") or body.get("error")
    return str(message) if message else (answer.text[:300] or answer.reason_phrase)


def _node_for(workflow: Mapping[str, Any], parameter: str,
              event_id: str) -> dict[str, Any] | None:
    nodes = (workflow.get("status") or {}).get("nodes") or {}
    for node in nodes.values():
        for given in ((node.get("inputs") or {}).get("parameters") or []):
            if given.get("name") == parameter and given.get("value") == event_id:
                return dict(node)
    return None
