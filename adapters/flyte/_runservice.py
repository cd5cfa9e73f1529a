"""Flyte 2's ``RunService``, as ``flyte signal`` and ``flyte.remote.Condition`` call it.

Hub-side code needs only ``flyteidl2`` and ``connectrpc`` (both come with the ``flyte2`` extra):
the same generated Connect client (binary protobuf over HTTP) the SDK uses, with a static bearer
token instead of the SDK's interactive sign-in. What a condition looks like on the wire:

- a *condition action* (``ActionMetadata.action_type == ACTION_TYPE_CONDITION``) under the task
  action that called ``flyte.new_condition``; ``GetActionDetails`` gives its ``ConditionAction``
  (name, prompt, description, declared ``LiteralType``, timeout);
- ``SignalEvent(action_id, parent_action_name, payload)`` resolves it with a typed
  ``EventPayload``; ``AbortAction`` ends it aborted (the task's ``wait()`` raises).

Settings (``[resumers.flyte2]``, and the bridge's ``--endpoint`` ...): ``endpoint`` (the control
plane, ``https://host`` or ``host:port``), ``insecure`` (plain HTTP), ``ca_cert`` (a PEM file),
``token`` or ``token_file`` (sent as ``authorization: Bearer``), ``org``, ``timeout`` (seconds).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from signoff.resumers import DeliveryFailed, RetryDelivery

from ._common import require

__all__ = ["SETTINGS", "TERMINAL", "RunServiceCalls", "action_id_of", "condition_value",
           "payload_type", "phase_name"]

SETTINGS = ("endpoint", "insecure", "ca_cert", "token", "token_file", "org", "timeout")
_RETRY = ("unavailable", "deadline_exceeded", "resource_exhausted", "aborted", "internal",
          "unknown")
_TYPES = {1: "int", 2: "float", 3: "str", 4: "bool"}  # flyteidl2.core.types_pb2.SimpleType
MAX_RUNS = 1000
"""Paused runs looked at per project and round (the rest wait for a later round)."""
TERMINAL = ("ACTION_PHASE_SUCCEEDED", "ACTION_PHASE_FAILED", "ACTION_PHASE_ABORTED",
            "ACTION_PHASE_TIMED_OUT")


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes", "on")


def payload_type(details: Any) -> str | None:
    """``bool``, ``int``, ``float`` or ``str``: the condition's declared type (from its
    ``ConditionAction``, else its metadata, as the SDK's ``resolve_condition_expected_type``).
    """
    for holder in (details.condition, details.metadata.condition):
        if holder.HasField("type") and holder.type.HasField("simple"):
            return _TYPES.get(int(holder.type.simple))
    return None


def phase_name(details: Any) -> str:
    """The action's phase, e.g. ``ACTION_PHASE_RUNNING``."""
    from flyteidl2.common import phase_pb2

    return str(phase_pb2.ActionPhase.Name(details.status.phase))


def condition_value(details: Any) -> Any:
    """The value a resolved condition holds (its ``signal_info.output``), or ``None``."""
    if not details.HasField("signal_info") or not details.signal_info.HasField("output"):
        return None
    primitive = details.signal_info.output.scalar.primitive
    which = primitive.WhichOneof("value")
    return None if which is None else getattr(primitive, which)


def action_id_of(params: Mapping[str, Any]) -> Any:
    """The condition action's ``ActionIdentifier`` from an event's ``source.params``.

    Raises:
        DeliveryFailed: a part is missing.
    """
    names = ("project", "domain", "run", "action")
    missing = [n for n in names if not isinstance(params.get(n), str) or not params.get(n)]
    if missing:
        raise DeliveryFailed(f"source.params: missing {missing} (not a condition's event?)")
    from flyteidl2.common import identifier_pb2

    return identifier_pb2.ActionIdentifier(
        name=params["action"], run=identifier_pb2.RunIdentifier(
            org=str(params.get("org", "")), project=params["project"],
            domain=params["domain"], name=params["run"]))


class RunServiceCalls:
    """One Connect client to the control plane's RunService, for the hub's life."""

    def __init__(self, settings: Mapping[str, Any], where: str) -> None:
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise ValueError(f"{where}: unknown settings {sorted(unknown)}; expected "
                             f"{', '.join(SETTINGS)}")
        endpoint = settings.get("endpoint")
        if endpoint is not None and not isinstance(endpoint, str):
            raise ValueError(f"{where} endpoint: expected a URL or host:port, got {endpoint!r}")
        self.insecure = _truthy(settings.get("insecure", False))
        if endpoint and "://" not in endpoint:
            endpoint = f"{'http' if self.insecure else 'https'}://{endpoint}"
        self.endpoint: str | None = endpoint or None
        self.ca_cert: str | None = settings.get("ca_cert")
        token = settings.get("token")
        file = settings.get("token_file")
        if token is None and file:
            token = Path(file).read_text().strip()
        self.token: str | None = token or os.environ.get("SIGNOFF_FLYTE2_TOKEN") or None
        self.org = str(settings.get("org", ""))
        self.timeout_ms = int(float(settings.get("timeout", 10)) * 1000)
        self._client: Any = None
        self.where = where

    def _run_service(self) -> Any:
        if self._client is None:
            require("flyteidl2", "flyte2")
            require("connectrpc", "flyte2")
            from flyteidl2.workflow.run_service_connect import RunServiceClient

            if not self.endpoint:
                raise DeliveryFailed(f"{self.where} endpoint is not set: the hub cannot reach "
                                     "Flyte's control plane to answer the condition")
            client: Any = None
            if self.ca_cert:
                import pyqwest  # connectrpc's HTTP client

                client = pyqwest.Client(pyqwest.HTTPTransport(
                    tls_ca_cert=Path(self.ca_cert).read_bytes()))
            self._client = RunServiceClient(self.endpoint, http_client=client,
                                            timeout_ms=self.timeout_ms)
        return self._client

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    async def call(self, method: str, request: Any, what: str) -> Any:
        """One unary call; Connect errors become :class:`RetryDelivery` (worth another try)
        or :class:`DeliveryFailed` (will not get better), naming ``what``.
        """
        from connectrpc.errors import ConnectError

        try:
            return await getattr(self._run_service(), method)(request, headers=self._headers())
        except ConnectError as exc:
            code = getattr(exc.code, "value", str(exc.code)).lower()
            reason = f"{what}: {code}: {exc}"
            if code in _RETRY:
                raise RetryDelivery(reason) from exc
            raise DeliveryFailed(reason) from exc

    async def details(self, action_id: Any) -> Any:
        """``GetActionDetails`` of one action."""
        from flyteidl2.workflow import run_service_pb2 as rs

        answer = await self.call("get_action_details",
                                 rs.GetActionDetailsRequest(action_id=action_id),
                                 f"GetActionDetails {action_id.name!r}")
        return answer.details

    async def pending_conditions(self, project: str, domain: str) -> list[Any]:
        """The waiting condition actions of one project and domain: runs with paused actions
        (``ListRuns``), then each run's condition actions (``ListActions``, filtered by type on
        the server as ``flyte get condition`` does), those not yet in a terminal phase.
        """
        from flyteidl2.common import identifier_pb2, list_pb2, phase_pb2
        from flyteidl2.workflow import run_definition_pb2 as rd
        from flyteidl2.workflow import run_service_pb2 as rs

        project_id = identifier_pb2.ProjectIdentifier(name=project, domain=domain,
                                                      organization=self.org)
        runs: list[Any] = []
        token = ""
        while True:
            page = await self.call("list_runs", rs.ListRunsRequest(
                project_id=project_id, paused_actions_only=True,
                request=list_pb2.ListRequest(limit=100, token=token)),
                f"ListRuns {project}/{domain}")
            runs += page.runs
            token = page.token
            if not token or len(runs) >= MAX_RUNS:
                break
        only = list_pb2.Filter(function=list_pb2.Filter.Function.EQUAL, field="action_type",
                               values=[str(int(rd.ACTION_TYPE_CONDITION))])
        found: list[Any] = []
        for run in runs[:MAX_RUNS]:
            token = ""
            while True:
                page = await self.call("list_actions", rs.ListActionsRequest(
                    run_id=run.action.id.run,
                    request=list_pb2.ListRequest(limit=100, token=token, filters=[only])),
                    f"ListActions {run.action.id.run.name!r}")
                found += [a for a in page.actions
                          if phase_pb2.ActionPhase.Name(a.status.phase) not in TERMINAL]
                token = page.token
                if not token:
                    break
        return found

    async def signal(self, details: Any, value: bool | int | float | str) -> None:
        """``SignalEvent`` with a payload of the condition's type (as ``Condition.signal``)."""
        from flyteidl2.workflow import run_service_pb2 as rs

        field = {bool: "bool_value", int: "int_value", float: "float_value",
                 str: "string_value"}[type(value)]
        await self.call("signal_event", rs.SignalEventRequest(
            action_id=details.id, parent_action_name=details.metadata.parent,
            payload=rs.EventPayload(**{field: value})), f"SignalEvent {details.id.name!r}")

    async def abort(self, details: Any, reason: str) -> None:
        """``AbortAction``: the waiting task's ``wait()`` raises ``ActionAbortedError``."""
        from flyteidl2.workflow import run_service_pb2 as rs

        await self.call("abort_action", rs.AbortActionRequest(action_id=details.id,
                                                              reason=reason[:1000]),
                        f"AbortAction {details.id.name!r}")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            close = getattr(self._client, "close", None)
            if close is not None:
                await close()
            self._client = None
