"""A FAKE flyteadmin SignalService, built from flyteidl's generated gRPC stubs.

No flyteadmin can run here, so this stands in for its ``SignalService`` on loopback, as strict
as flyteadmin's own validation (``flyteadmin/pkg/manager/impl/validation/signal_validator.go``):

- ``GetOrCreateSignal`` (what propeller calls when a gate node starts) needs a signal id, a full
  execution id (project, domain, name) and a type; it keeps the first type for an id.
- ``SetSignal`` needs the same id and a value; a signal propeller has not created yet is
  refused with ``INVALID_ARGUMENT`` "failed to validate that signal ... exists"; a value whose
  literal type is not the signal's is refused with ``INVALID_ARGUMENT`` "not castable".
- With ``token`` set, a call without ``authorization: Bearer <token>`` gets ``UNAUTHENTICATED``.

Every call is recorded in ``calls`` for the tests to inspect.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from flyteidl.admin import signal_pb2
from flyteidl.core import literals_pb2, types_pb2
from flyteidl.service import signal_pb2_grpc

from signoff.testing import free_port

SignalKey = tuple[str, str, str, str]  # project, domain, execution name, signal id


def literal_type_of(literal: literals_pb2.Literal) -> types_pb2.LiteralType | None:
    """The literal type of a value, as propeller's ``LiteralTypeForLiteral`` derives it."""
    which = literal.WhichOneof("value")
    if which == "collection":
        items = literal.collection.literals
        if not items:
            return types_pb2.LiteralType(collection_type=types_pb2.LiteralType(
                simple=types_pb2.NONE))
        inner = literal_type_of(items[0])
        return None if inner is None else types_pb2.LiteralType(collection_type=inner)
    if which != "scalar":
        return None
    scalar = literal.scalar
    kind = scalar.WhichOneof("value")
    if kind == "primitive":
        simple = {"integer": types_pb2.INTEGER, "float_value": types_pb2.FLOAT,
                  "string_value": types_pb2.STRING, "boolean": types_pb2.BOOLEAN,
                  "datetime": types_pb2.DATETIME, "duration": types_pb2.DURATION}
        return types_pb2.LiteralType(simple=simple[scalar.primitive.WhichOneof("value")])
    if kind == "generic" or (kind == "binary" and scalar.binary.tag == "msgpack"):
        return types_pb2.LiteralType(simple=types_pb2.STRUCT)
    return None


def castable(want: types_pb2.LiteralType, got: types_pb2.LiteralType | None) -> bool:
    """Whether a value of type ``got`` may fill a signal of type ``want`` (same shape)."""
    if got is None:
        return False
    if want.HasField("collection_type"):
        if not got.HasField("collection_type"):
            return False
        if got.collection_type.simple == types_pb2.NONE and not got.collection_type.HasField(
                "collection_type"):
            return True  # an empty list fits any list
        return castable(want.collection_type, got.collection_type)
    return want.WhichOneof("type") == "simple" and got.WhichOneof("type") == "simple" \
        and want.simple == got.simple


@dataclass
class FakeSignalService(signal_pb2_grpc.SignalServiceServicer):
    """The fake's state: signals by key, and every call made."""

    token: str | None = None
    signals: dict[SignalKey, signal_pb2.Signal] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail_next: list[grpc.StatusCode] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _check(self, request: Any, context: grpc.ServicerContext, method: str) -> SignalKey:
        with self.lock:
            self.calls.append((method, request))
            failing = self.fail_next.pop(0) if self.fail_next else None
        if failing is not None:
            context.abort(failing, "injected failure")
        if self.token is not None:
            sent = dict(context.invocation_metadata()).get("authorization")
            if sent != f"Bearer {self.token}":
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        if not request.HasField("id"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "missing id")
        ident = request.id
        if not ident.HasField("execution_id"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "missing execution_id")
        if not ident.signal_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "missing signal_id")
        ex = ident.execution_id
        for name in ("project", "domain", "name"):
            if not getattr(ex, name):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"missing {name}")
        return ex.project, ex.domain, ex.name, ident.signal_id

    def GetOrCreateSignal(self, request: signal_pb2.SignalGetOrCreateRequest,  # noqa: N802
                          context: grpc.ServicerContext) -> signal_pb2.Signal:
        key = self._check(request, context, "GetOrCreateSignal")
        if not request.HasField("type"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "missing type")
        with self.lock:
            if key not in self.signals:
                self.signals[key] = signal_pb2.Signal(id=request.id, type=request.type)
            return self.signals[key]

    def ListSignals(self, request: signal_pb2.SignalListRequest,  # noqa: N802
                    context: grpc.ServicerContext) -> signal_pb2.SignalList:
        ex = request.workflow_execution_id
        with self.lock:
            self.calls.append(("ListSignals", request))
            found = [s for k, s in self.signals.items() if k[:3] == (ex.project, ex.domain,
                                                                      ex.name)]
        return signal_pb2.SignalList(signals=found)

    def SetSignal(self, request: signal_pb2.SignalSetRequest,  # noqa: N802
                  context: grpc.ServicerContext) -> signal_pb2.SignalSetResponse:
        key = self._check(request, context, "SetSignal")
        if not request.HasField("value"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "missing value")
        with self.lock:
            signal = self.signals.get(key)
        if signal is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"failed to validate that signal [{key}] exists, err: [not found]")
        if not castable(signal.type, literal_type_of(request.value)):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"requested signal value [{request.value}] is not castable to "
                          f"existing signal type [{signal.type}]")
        with self.lock:
            signal.value.CopyFrom(request.value)
        return signal_pb2.SignalSetResponse()

    # what the tests read -------------------------------------------------------------------
    def value(self, key: SignalKey) -> literals_pb2.Literal | None:
        """The value set on a signal, or None."""
        with self.lock:
            signal = self.signals.get(key)
            return signal.value if signal is not None and signal.HasField("value") else None

    def set_calls(self) -> list[signal_pb2.SignalSetRequest]:
        """Every SetSignal request received, accepted or not."""
        with self.lock:
            return [request for method, request in self.calls if method == "SetSignal"]


class FakeFlyteAdmin:
    """The fake SignalService served on 127.0.0.1 by a real gRPC server."""

    def __init__(self, token: str | None = None) -> None:
        self.service = FakeSignalService(token=token)
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        signal_pb2_grpc.add_SignalServiceServicer_to_server(self.service, self.server)
        self.server.add_insecure_port(self.endpoint)

    def __enter__(self) -> FakeFlyteAdmin:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None)

    def start_gate(self, project: str, domain: str, execution: str, signal_id: str,
                   literal_type: types_pb2.LiteralType) -> None:
        """What propeller does when a gate node starts: GetOrCreateSignal over gRPC."""
        from flyteidl.core import identifier_pb2

        with grpc.insecure_channel(self.endpoint) as channel:
            stub = signal_pb2_grpc.SignalServiceStub(channel)
            metadata = ((("authorization", f"Bearer {self.service.token}"),)
                        if self.service.token else None)
            stub.GetOrCreateSignal(signal_pb2.SignalGetOrCreateRequest(
                id=identifier_pb2.SignalIdentifier(
                    signal_id=signal_id,
                    execution_id=identifier_pb2.WorkflowExecutionIdentifier(
                        project=project, domain=domain, name=execution)),
                type=literal_type), metadata=metadata, timeout=5)
