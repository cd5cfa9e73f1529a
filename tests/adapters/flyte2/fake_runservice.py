"""A FAKE Flyte 2 control plane's ``RunService``, served from flyteidl2's generated Connect stubs.

No Flyte 2 backend can run here (its devbox is a k3s cluster in a Docker image), so this stands
in for the part of ``flyteidl2.workflow.RunService`` that conditions use, on loopback, behind
flyteidl2's own ``RunServiceASGIApplication`` (the Connect protocol, binary protobuf, exactly
what ``flyte signal`` and ``flyte.remote.Condition`` send). It is strict about shapes:

- condition actions are made with the SDK's own ``Action.from_condition`` (what a task's
  ``flyte.new_condition`` registers remotely), under a running parent action;
- ``SignalEvent`` needs the condition's full action id, its parent's name (as
  ``flyte.remote.Condition.signal`` sends it) and a payload of the condition's declared type;
  anything else is ``INVALID_ARGUMENT``; a condition already resolved is
  ``FAILED_PRECONDITION``; an unknown action is ``NOT_FOUND``;
- ``ListActions`` accepts the two filters the SDK sends (``action_type`` and ``parent_name``,
  ``EQUAL``) and refuses others; ``ListRuns`` honours ``paused_actions_only`` and ``project_id``;
- every call needs ``authorization: Bearer <token>`` of a known user (``UNAUTHENTICATED``
  otherwise), unless the fake is ``open`` (a backend with auth off, as the devbox runs): then a
  call without one is anonymous; who signalled or aborted is recorded in
  ``signal_info``/``abort_info`` (nobody, for an anonymous call).

Every call is recorded in ``calls``. :meth:`FakeRunService.outcome` converts a resolved
condition the way the waiting task's controller does (``Action.literal_to_python``), so a test
sees what the task would receive.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from flyte._internal.controllers.remote._action import Action as SdkAction
from flyteidl2.common import identifier_pb2, identity_pb2, list_pb2, phase_pb2
from flyteidl2.core import literals_pb2, types_pb2
from flyteidl2.workflow import run_definition_pb2 as rd
from flyteidl2.workflow import run_service_pb2 as rs
from flyteidl2.workflow.run_service_connect import RunService, RunServiceASGIApplication

from signoff.testing import free_port, until

TERMINAL = {phase_pb2.ACTION_PHASE_SUCCEEDED, phase_pb2.ACTION_PHASE_FAILED,
            phase_pb2.ACTION_PHASE_ABORTED, phase_pb2.ACTION_PHASE_TIMED_OUT}
_PAYLOAD_FOR = {types_pb2.BOOLEAN: "bool_value", types_pb2.INTEGER: "int_value",
                types_pb2.FLOAT: "float_value", types_pb2.STRING: "string_value"}
_PY = {types_pb2.BOOLEAN: bool, types_pb2.INTEGER: int, types_pb2.FLOAT: float,
       types_pb2.STRING: str}
ActionKey = tuple[str, str, str, str, str]  # org, project, domain, run, action


def _key(action_id: identifier_pb2.ActionIdentifier) -> ActionKey:
    run = action_id.run
    return run.org, run.project, run.domain, run.name, action_id.name


def _literal(payload: rs.EventPayload) -> literals_pb2.Literal:
    which = payload.WhichOneof("value")
    primitive = {"bool_value": lambda v: literals_pb2.Primitive(boolean=v),
                 "int_value": lambda v: literals_pb2.Primitive(integer=v),
                 "float_value": lambda v: literals_pb2.Primitive(float_value=v),
                 "string_value": lambda v: literals_pb2.Primitive(string_value=v)}[str(which)]
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(
        primitive=primitive(getattr(payload, str(which)))))


@dataclass
class FakeRunService(RunService):
    """The fake's state and its RunService methods (the rest answer ``UNIMPLEMENTED``)."""

    users: dict[str, str]  # bearer token -> the user's email
    open: bool = False  # calls without a token are accepted, as anonymous
    org: str = "testorg"
    actions: dict[ActionKey, rd.ActionDetails] = field(default_factory=dict)
    calls: list[tuple[str, Any, str]] = field(default_factory=list)  # method, request, user
    lock: threading.Lock = field(default_factory=threading.Lock)

    # what the backend does on its own ---------------------------------------------------
    def add_condition(self, project: str, domain: str, run: str, parent: str, name: str, *,
                      data_type: type = bool, prompt: str = "Approve?", description: str = "",
                      timeout: float | None = None, prompt_type: str = "text",
                      seq: int = 1) -> identifier_pb2.ActionIdentifier:
        """A task in ``run``/``parent`` called ``flyte.new_condition(name, ...)``: the condition
        action the SDK's controller enqueues (built by the SDK's own code), now waiting.
        """
        action_id = identifier_pb2.ActionIdentifier(
            name=f"{parent}-{name}-{seq}",
            run=identifier_pb2.RunIdentifier(org=self.org, project=project, domain=domain,
                                             name=run))
        sdk = SdkAction.from_condition(
            parent_action_name=parent, action_id=action_id, condition_name=name, prompt=prompt,
            data_type=data_type, run_output_base="s3://fake/runs", inputs_uri="s3://fake/in",
            description=description, timeout_seconds=timeout, prompt_type=prompt_type)
        assert sdk.condition is not None
        metadata = rd.ActionMetadata(
            parent=parent, action_type=rd.ACTION_TYPE_CONDITION,
            condition=rd.ConditionActionMetadata(name=name, type=sdk.condition.type))
        details = rd.ActionDetails(id=action_id, metadata=metadata,
                                   status=rd.ActionStatus(phase=phase_pb2.ACTION_PHASE_RUNNING),
                                   condition=sdk.condition)
        with self.lock:
            self.actions[_key(action_id)] = details
        return action_id

    def time_out(self, action_id: identifier_pb2.ActionIdentifier) -> None:
        """The condition's timeout passed: the backend ends it ``TIMED_OUT``."""
        with self.lock:
            self.actions[_key(action_id)].status.phase = phase_pb2.ACTION_PHASE_TIMED_OUT

    def outcome(self, action_id: identifier_pb2.ActionIdentifier) -> Any:
        """What ``condition.wait()`` in the task returns (or the phase's name, if it raises)."""
        details = self.actions[_key(action_id)]
        if details.status.phase != phase_pb2.ACTION_PHASE_SUCCEEDED:
            return phase_pb2.ActionPhase.Name(details.status.phase)
        return SdkAction.literal_to_python(details.signal_info.output,
                                           _PY[details.condition.type.simple])

    def wait_resolved(self, action_id: identifier_pb2.ActionIdentifier,
                      timeout: float = 30) -> Any:
        """Wait until the condition leaves ``RUNNING``; its :meth:`outcome`."""
        until(lambda: self.actions[_key(action_id)].status.phase in TERMINAL or None, timeout,
              f"condition {action_id.name} resolved")
        return self.outcome(action_id)

    # the RunService methods --------------------------------------------------------------
    def _who(self, method: str, request: Any, ctx: RequestContext) -> str:
        header = ctx.request_headers().get("authorization") or ""
        user = self.users.get(header.removeprefix("Bearer ")) if header.startswith(
            "Bearer ") else None
        self.calls.append((method, request, user or ""))
        if user is None and (header or not self.open):
            raise ConnectError(Code.UNAUTHENTICATED, "missing or unknown bearer token")
        return user or ""

    def _identity(self, email: str) -> identity_pb2.EnrichedIdentity:
        if not email:
            return identity_pb2.EnrichedIdentity()
        return identity_pb2.EnrichedIdentity(user=identity_pb2.User(
            spec=identity_pb2.UserSpec(email=email)))

    def _details(self, action_id: identifier_pb2.ActionIdentifier) -> rd.ActionDetails:
        if not action_id.name or not action_id.run.name or not action_id.run.project \
                or not action_id.run.domain:
            raise ConnectError(Code.INVALID_ARGUMENT, "action_id: run (project, domain, name) "
                                                      "and name are required")
        found = self.actions.get(_key(action_id))
        if found is None:
            raise ConnectError(Code.NOT_FOUND, f"action {action_id.name} not found")
        return found

    async def list_runs(self, request: rs.ListRunsRequest,
                        ctx: RequestContext) -> rs.ListRunsResponse:
        self._who("ListRuns", request, ctx)
        with self.lock:
            runs: dict[tuple[str, str, str, str], rd.Run] = {}
            for (org, project, domain, run, _), details in self.actions.items():
                if request.HasField("project_id") and (
                        request.project_id.name, request.project_id.domain) != (project, domain):
                    continue
                if request.paused_actions_only and details.status.phase in TERMINAL:
                    continue
                runs.setdefault((org, project, domain, run), rd.Run(action=rd.Action(
                    id=identifier_pb2.ActionIdentifier(
                        name="a0", run=details.id.run),
                    status=rd.ActionStatus(phase=phase_pb2.ACTION_PHASE_RUNNING))))
        return rs.ListRunsResponse(runs=list(runs.values()))

    async def list_actions(self, request: rs.ListActionsRequest,
                           ctx: RequestContext) -> rs.ListActionsResponse:
        self._who("ListActions", request, ctx)
        if not request.run_id.name:
            raise ConnectError(Code.INVALID_ARGUMENT, "run_id.name is required")
        wanted: dict[str, str] = {}
        for f in request.request.filters:
            if f.function != list_pb2.Filter.Function.EQUAL or \
                    f.field not in ("action_type", "parent_name") or len(f.values) != 1:
                raise ConnectError(Code.INVALID_ARGUMENT, f"unsupported filter {f.field!r}")
            wanted[f.field] = f.values[0]
        run = request.run_id
        with self.lock:
            found = [rd.Action(id=d.id, metadata=d.metadata, status=d.status)
                     for (org, project, domain, name, _), d in self.actions.items()
                     if (project, domain, name) == (run.project, run.domain, run.name)
                     and wanted.get("action_type", str(int(d.metadata.action_type)))
                     == str(int(d.metadata.action_type))
                     and wanted.get("parent_name", d.metadata.parent) == d.metadata.parent]
        start = int(request.request.token or 0)
        limit = request.request.limit or 100
        page = found[start:start + limit]
        more = start + limit < len(found)
        return rs.ListActionsResponse(actions=page, token=str(start + limit) if more else "")

    async def get_action_details(self, request: rs.GetActionDetailsRequest,
                                 ctx: RequestContext) -> rs.GetActionDetailsResponse:
        self._who("GetActionDetails", request, ctx)
        with self.lock:
            return rs.GetActionDetailsResponse(details=self._details(request.action_id))

    async def signal_event(self, request: rs.SignalEventRequest,
                           ctx: RequestContext) -> rs.SignalEventResponse:
        user = self._who("SignalEvent", request, ctx)
        with self.lock:
            details = self._details(request.action_id)
            if details.metadata.action_type != rd.ACTION_TYPE_CONDITION:
                raise ConnectError(Code.INVALID_ARGUMENT, "action is not a condition")
            if request.parent_action_name != details.metadata.parent:
                raise ConnectError(Code.INVALID_ARGUMENT,
                                   f"parent_action_name: expected {details.metadata.parent!r}, "
                                   f"got {request.parent_action_name!r}")
            want = _PAYLOAD_FOR[details.condition.type.simple]
            got = request.payload.WhichOneof("value")
            if got != want:
                raise ConnectError(Code.INVALID_ARGUMENT, f"payload: expected {want}, got {got}")
            if details.status.phase in TERMINAL:
                raise ConnectError(Code.FAILED_PRECONDITION, "condition already resolved")
            details.signal_info.CopyFrom(rd.SignalInfo(signalled_by=self._identity(user),
                                                       output=_literal(request.payload)))
            details.status.phase = phase_pb2.ACTION_PHASE_SUCCEEDED
        return rs.SignalEventResponse()

    async def abort_action(self, request: rs.AbortActionRequest,
                           ctx: RequestContext) -> rs.AbortActionResponse:
        user = self._who("AbortAction", request, ctx)
        with self.lock:
            details = self._details(request.action_id)
            if details.status.phase in TERMINAL:
                raise ConnectError(Code.FAILED_PRECONDITION, "action already terminal")
            details.abort_info.CopyFrom(rd.AbortInfo(reason=request.reason,
                                                     aborted_by=self._identity(user)))
            details.status.phase = phase_pb2.ACTION_PHASE_ABORTED
        return rs.AbortActionResponse()


class FakeControlPlane:
    """The fake served by uvicorn on loopback, in a thread; ``endpoint`` is its URL."""

    def __init__(self, users: dict[str, str], open: bool = False) -> None:
        self.service = FakeRunService(users, open=open)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        app = RunServiceASGIApplication(self.service)
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                     log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve()),
                                        daemon=True)

    def __enter__(self) -> FakeControlPlane:
        self._thread.start()
        until(lambda: self._server.started or None, 20, "the fake RunService started")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.should_exit = True
        self._thread.join(10)


__all__ = ["FakeControlPlane", "FakeRunService", "TERMINAL"]
