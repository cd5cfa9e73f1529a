"""The hub's Flyte resumer: answers a gate node through flyteadmin's SignalService.

An event made by a gate-mode step carries in ``source.params`` the execution (``project``,
``domain``, ``execution``), the gate's ``signal_id``, its ``kind`` (``approve`` or ``signal``)
and, for ``signal``, the gate's ``literal_type``. On a decision the resumer calls
``flyteidl.service.SignalService/SetSignal``:

| decision                    | approve gate        | wait_for_input gate                      |
| --------------------------- | ------------------- | ---------------------------------------- |
| approved / answered / timed_out | ``true``        | the value, as a literal of the gate's type |
| rejected (approval input)   | ``false``: Flyte fails the node | ``false``                    |
| rejected, expired, cancelled | ``false``          | an empty value of the type; the settle task after the gate then fails the node with the reason |

Events of task-mode and local steps need no push (a task waits on the hub's long-poll); their
delivery returns at once.

A gate trusts whatever value is signalled to it: a Flyte signal carries no event id, so the
workflow cannot tell this event's decision from another's. What keeps a decision in its own
execution is the hub: the resumer's target (see :mod:`signoff.resumers`) is
``project/domain/execution``, and the hub refuses an event naming an execution that another
identity's events already name. Task-mode and local steps read their own event from the hub
and have no target.

Settings (``[resumers.flyte]`` or ``SIGNOFF_RESUMERS__FLYTE__<KEY>``):

- ``endpoint``: flyteadmin's gRPC address, ``host:port`` (required for gate-mode events).
- ``insecure``: ``true`` for a plaintext channel (default ``false``: TLS).
- ``ca_cert``: a PEM file of roots to trust for TLS (default: the system's).
- ``token``: a bearer token sent as ``authorization`` metadata (for flyteadmin behind auth).
- ``client``: ``grpc`` (default; needs ``flyteidl`` and ``grpcio`` only) or ``remote``
  (flytekit's ``FlyteRemote.set_signal``/``approve``/``reject``; needs flytekit).
- ``timeout``: seconds per call (default 10).

flyteadmin answers ``InvalidArgument`` "failed to validate that signal ... exists" until the
gate node has started (propeller creates the signal then); that, ``Unavailable``,
``DeadlineExceeded``, ``ResourceExhausted``, ``Aborted``, ``Internal`` and ``Unknown`` are retried.
Any other refusal (a value of the wrong type, a bad id, no rights) fails the delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from signoff import Event, Outcome
from signoff.resumers import DeliveryFailed, RetryDelivery, target_name

from ._common import require
from ._literals import literal_for, placeholder_for

__all__ = ["FlyteResumer", "signal_value"]

_RETRY_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL",
                "UNKNOWN", "NOT_FOUND")


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes", "on")


def signal_value(event: Event) -> tuple[str, Any]:
    """What to set on the event's gate: ``("approve", bool)`` or ``("signal", value literal)``.

    Raises:
        DeliveryFailed: the event does not say which gate, or the value does not fit its type.
    """
    assert event.decision is not None
    params = event.source.params
    kind, decision = params.get("kind"), event.decision
    if kind == "approve":
        return "approve", decision.outcome == Outcome.approved
    if kind != "signal":
        raise DeliveryFailed(f"source.params.kind: expected 'approve' or 'signal', got {kind!r}")
    literal_type = params.get("literal_type")
    if not isinstance(literal_type, dict):
        raise DeliveryFailed(f"source.params.literal_type: expected the gate's LiteralType as "
                             f"JSON, got {literal_type!r}")
    try:
        if decision.ok or (decision.outcome == Outcome.rejected and event.input.kind == "approval"):
            value = decision.value if decision.ok else False
            return "signal", literal_for(literal_type, value)
        return "signal", placeholder_for(literal_type)
    except ValueError as exc:
        raise DeliveryFailed(f"gate {params.get('signal_id')!r}: {exc}") from exc


class FlyteResumer:
    """Deliver decisions of gate-mode Flyte steps to flyteadmin."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        unknown = set(settings) - {"endpoint", "insecure", "ca_cert", "token", "client",
                                   "timeout"}
        if unknown:
            raise ValueError(f"[resumers.flyte]: unknown settings {sorted(unknown)}; expected "
                             "endpoint, insecure, ca_cert, token, client, timeout")
        self.endpoint: str | None = settings.get("endpoint")
        self.insecure = _truthy(settings.get("insecure", False))
        self.ca_cert: str | None = settings.get("ca_cert")
        self.token: str | None = settings.get("token")
        self.client = str(settings.get("client", "grpc"))
        if self.client not in ("grpc", "remote"):
            raise ValueError(f"[resumers.flyte] client: expected 'grpc' or 'remote', "
                             f"got {self.client!r}")
        self.timeout = float(settings.get("timeout", 10))
        self._channel: Any = None
        self._stub: Any = None
        self._remote: Any = None

    def target(self, event: Event) -> str | None:
        """``project/domain/execution`` of a gate-mode event (the execution whose gate the
        decision would be signalled to); ``None`` for task-mode and local steps, which push
        nowhere, and for params that name no execution (the delivery fails then).
        """
        params = event.source.params
        if params.get("mode") != "gate":
            return None
        parts = [params.get(name) for name in ("project", "domain", "execution")]
        if not all(isinstance(part, str) and part for part in parts):
            return None
        return target_name(*(str(part) for part in parts))

    async def deliver(self, event: Event) -> None:
        """Set the gate's signal; return once flyteadmin accepted it."""
        params = event.source.params
        if params.get("mode") != "gate":
            return  # a waiting task or a local run reads the hub itself
        if not self.endpoint:
            raise DeliveryFailed("[resumers.flyte] endpoint is not set: the hub cannot reach "
                                 "flyteadmin to answer the gate")
        ids = {name: params.get(name) for name in ("project", "domain", "execution",
                                                    "signal_id")}
        missing = [name for name, value in ids.items() if not isinstance(value, str) or not value]
        if missing:
            raise DeliveryFailed(f"source.params: missing {missing} (not a gate-mode event?)")
        kind, value = signal_value(event)
        if self.client == "remote":
            await asyncio.to_thread(self._set_with_remote, ids, kind, value)
        else:
            await self._set_with_grpc(ids, kind, value)

    # the plain gRPC client -----------------------------------------------------------------
    def _grpc_stub(self) -> Any:
        if self._stub is None:
            require("grpc", "flyte")
            require("flyteidl", "flyte")
            import grpc
            from flyteidl.service import signal_pb2_grpc

            assert self.endpoint is not None
            if self.insecure:
                self._channel = grpc.aio.insecure_channel(self.endpoint)
            else:
                roots = Path(self.ca_cert).read_bytes() if self.ca_cert else None
                self._channel = grpc.aio.secure_channel(
                    self.endpoint, grpc.ssl_channel_credentials(root_certificates=roots))
            self._stub = signal_pb2_grpc.SignalServiceStub(self._channel)
        return self._stub

    async def _set_with_grpc(self, ids: dict[str, Any], kind: str, value: Any) -> None:
        import grpc
        from flyteidl.admin import signal_pb2
        from flyteidl.core import identifier_pb2

        if kind == "approve":
            value = literal_for({"simple": "BOOLEAN"}, value)
        request = signal_pb2.SignalSetRequest(
            id=identifier_pb2.SignalIdentifier(
                signal_id=ids["signal_id"],
                execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                    project=ids["project"], domain=ids["domain"], name=ids["execution"])),
            value=value)
        metadata = (("authorization", f"Bearer {self.token}"),) if self.token else None
        try:
            await self._grpc_stub().SetSignal(request, timeout=self.timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            raise self._translate(exc.code().name, exc.details() or "", ids) from exc

    @staticmethod
    def _translate(code: str, details: str, ids: dict[str, Any]) -> Exception:
        where = (f"SetSignal {ids['signal_id']!r} of {ids['project']}/{ids['domain']}/"
                 f"{ids['execution']}")
        if code in _RETRY_CODES:
            return RetryDelivery(f"{where}: {code}: {details}")
        if code == "INVALID_ARGUMENT" and "exists" in details:
            # propeller creates the signal when the gate node starts; it has not yet
            return RetryDelivery(f"{where}: the gate has not started yet: {details}")
        return DeliveryFailed(f"{where}: {code}: {details}")

    # FlyteRemote ---------------------------------------------------------------------------
    def _set_with_remote(self, ids: dict[str, Any], kind: str, value: Any) -> None:
        import grpc

        if self._remote is None:
            require("flytekit", "flyte")
            from flytekit.configuration import Config, PlatformConfig
            from flytekit.remote import FlyteRemote

            assert self.endpoint is not None
            self._remote = FlyteRemote(Config(platform=PlatformConfig(
                endpoint=self.endpoint, insecure=self.insecure, ca_cert_file_path=self.ca_cert)))
        from flytekit.models.literals import Literal

        where = {"project": ids["project"], "domain": ids["domain"]}
        try:
            if kind == "approve":
                method = self._remote.approve if value else self._remote.reject
                method(ids["signal_id"], ids["execution"], **where)
            else:
                self._remote.set_signal(ids["signal_id"], ids["execution"],
                                        Literal.from_flyte_idl(value), **where)
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise self._translate(code, details or "", ids) from exc
        except Exception as exc:  # flytekit wraps some gRPC errors in its own exceptions
            raise self._translate_flytekit(exc, ids) from exc

    def _translate_flytekit(self, exc: Exception, ids: dict[str, Any]) -> Exception:
        cause = exc.__cause__
        if cause is not None and hasattr(cause, "code") and hasattr(cause, "details"):
            return self._translate(cause.code().name, cause.details() or "", ids)
        # no gRPC status to judge by (a connection or auth-flow error): worth another try
        return RetryDelivery(f"SetSignal {ids['signal_id']!r}: {type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        """Close the gRPC channel."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None
