"""The hub's ``temporal`` resumer: signal each decision to the workflow run that waits for it.

The event's ``source.params`` name the run (``namespace``, ``workflow_id``, ``run_id``) and
the signal (``signoff:<step>``); the signal's argument is
``{"event_id", "key", "decision"}``. Temporal accepting the signal is the delivery: the
signal is then in the run's history, and the run continues whether or not a worker is up
right now. A server that cannot be reached, or any transient RPC error, is retried by the hub
with backoff until accepted; a run that is closed or unknown, or a namespace the hub is not
allowed to signal, fails the delivery with the reason. Redeliveries are harmless: the
workflow takes the first decision and ignores the rest, and ignores a signal whose event id is
not its own. Its target (see :mod:`signoff.resumers`) is ``namespace/workflow_id``: the hub
refuses an event naming a workflow that another identity's events already name.

Settings (``[resumers.temporal]`` in the hub's TOML, or ``SIGNOFF_RESUMERS__TEMPORAL__<KEY>``):

| key | default | meaning |
| --- | --- | --- |
| ``address`` | ``localhost:7233`` | the Temporal frontend, ``host:port`` |
| ``namespace`` | ``default`` | the namespace the hub signals in |
| ``namespaces`` | ``[namespace]`` | every namespace it may signal (a list or ``a,b``) |
| ``api_key`` | none | an API key (Temporal Cloud); turns TLS on |
| ``tls`` | off (on with ``api_key``) | use TLS with the system's roots |
| ``data_converter`` | Temporal's default | ``module:attribute`` of the DataConverter your workers use (e.g. with an encryption codec) |
| ``rpc_timeout`` | ``10`` | seconds one signal call may take |
| ``identity`` | ``signoff-hub`` | the client identity shown in the run's history |
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from importlib import import_module
from typing import TYPE_CHECKING, Any

from signoff import Event
from signoff.adapters import MissingExtra
from signoff.resumers import DeliveryFailed, RetryDelivery, target_name

from ._common import CHANNEL, SIGNAL_PREFIX

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.converter import DataConverter

if importlib.util.find_spec("temporalio") is None:  # pragma: no cover - the environment
    raise MissingExtra(
        "the temporal resumer needs the temporal extra in the hub's environment: "
        "pip install 'signoff[temporal]'", name="temporalio")

__all__ = ["TemporalResumer"]


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false",
                                                     "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    raise ValueError(f"[resumers.temporal] {name}: expected true or false, got {value!r}")


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"[resumers.temporal] namespaces: expected a list of names, got {value!r}")


@dataclass(frozen=True)
class _Sdk:
    """The parts of temporalio the resumer uses, imported once, off the hub's event loop."""

    client: type[Client]
    converter: DataConverter
    retry_config: Any
    rpc_error: type[Exception]
    final: frozenset[Any]


def _load_sdk(converter_path: str | None) -> _Sdk:
    # temporalio takes seconds to import (protobufs); the hub loads a resumer when it decides
    # an event, so this runs in a thread on the first delivery and the hub keeps answering
    from temporalio.client import Client
    from temporalio.converter import DataConverter
    from temporalio.service import RetryConfig, RPCError, RPCStatusCode

    converter: Any = DataConverter.default
    if converter_path is not None:
        module, _, attribute = converter_path.partition(":")
        found = getattr(import_module(module), attribute)
        converter = found
        if callable(found) and not isinstance(found, DataConverter):
            try:
                converter = found()  # a factory taking no arguments
            except TypeError:
                converter = None
        if not isinstance(converter, DataConverter):
            raise ValueError(f"[resumers.temporal] data_converter: {converter_path} is not a "
                             f"DataConverter")
    final = frozenset({RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT,
                       RPCStatusCode.FAILED_PRECONDITION})
    return _Sdk(Client, converter, RetryConfig, RPCError, final)


class TemporalResumer:
    """Deliver decisions to Temporal workflows as signals.

    Args:
        settings: the ``[resumers.temporal]`` table (see the module's docstring).

    Raises:
        ValueError: a setting is malformed (named in the message).
    """

    def __init__(self, settings: Mapping[str, Any]) -> None:
        known = {"address", "namespace", "namespaces", "api_key", "tls", "data_converter",
                 "rpc_timeout", "identity"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"[resumers.temporal]: unknown settings {unknown}; "
                             f"expected some of {sorted(known)}")
        self.address = str(settings.get("address", "localhost:7233"))
        self.namespace = str(settings.get("namespace", "default"))
        self.namespaces = _names(settings.get("namespaces", [self.namespace]))
        self.api_key: str | None = settings.get("api_key")
        tls = settings.get("tls")
        self.tls: bool | None = None if tls is None else _flag("tls", tls)
        path = settings.get("data_converter")
        if path is not None and (not isinstance(path, str) or ":" not in path
                                 or not all(path.partition(":")[::2])):
            raise ValueError(f"[resumers.temporal] data_converter: expected "
                             f"'module:attribute', got {path!r}")
        self.data_converter_path: str | None = path
        try:
            self.rpc_timeout = timedelta(seconds=float(settings.get("rpc_timeout", 10)))
        except (TypeError, ValueError):
            raise ValueError(f"[resumers.temporal] rpc_timeout: expected seconds, got "
                             f"{settings.get('rpc_timeout')!r}") from None
        self.identity = str(settings.get("identity", "signoff-hub"))
        self._clients: dict[str, Client] = {}
        self._sdk: _Sdk | None = None
        self._lock = asyncio.Lock()

    async def _client(self, namespace: str) -> tuple[_Sdk, Client]:
        async with self._lock:
            if self._sdk is None:
                try:
                    self._sdk = await asyncio.to_thread(_load_sdk, self.data_converter_path)
                except (ImportError, AttributeError, ValueError) as exc:
                    # a setting to fix in the hub's configuration: keep the delivery until then
                    raise RetryDelivery(f"[resumers.temporal]: {exc}") from exc
            sdk = self._sdk
            client = self._clients.get(namespace)
            if client is None:
                base = next(iter(self._clients.values()), None)
                if base is not None:  # one connection, one client per namespace
                    client = sdk.client(base.service_client, namespace=namespace,
                                        data_converter=sdk.converter)
                else:
                    # the hub retries deliveries with its own backoff: one attempt here
                    # must end within rpc_timeout, not in the SDK's default 10 s of retries
                    limit = int(self.rpc_timeout.total_seconds() * 1000)
                    client = await sdk.client.connect(
                        self.address, namespace=namespace, api_key=self.api_key, tls=self.tls,
                        data_converter=sdk.converter, identity=self.identity,
                        retry_config=sdk.retry_config(max_interval_millis=min(1000, limit),
                                                      max_elapsed_time_millis=limit,
                                                      max_retries=3))
                self._clients[namespace] = client
            return sdk, client

    @staticmethod
    def _param(event: Event, name: str) -> str:
        value = event.source.params.get(name)
        if not isinstance(value, str) or not value:
            raise DeliveryFailed(f"source.params.{name}: expected a non-empty string, "
                                 f"got {value!r}")
        return value

    def target(self, event: Event) -> str | None:
        """``namespace/workflow_id`` of the run the decision would be signalled to; ``None``
        when the params name none (the delivery fails then, naming the field).
        """
        try:
            return target_name(self._param(event, "namespace"),
                               self._param(event, "workflow_id"))
        except DeliveryFailed:
            return None

    async def deliver(self, event: Event) -> None:
        """Signal ``event.decision`` to its run; return once Temporal accepted it."""
        decision = event.decision
        if decision is None:
            raise DeliveryFailed(f"event {event.id} has no decision to deliver")
        if decision.channel == CHANNEL:
            return  # the workflow made this decision itself (its timer, its cancel)
        namespace = self._param(event, "namespace")
        workflow_id = self._param(event, "workflow_id")
        run_id = self._param(event, "run_id")
        signal = self._param(event, "signal")
        if not signal.startswith(SIGNAL_PREFIX):
            raise DeliveryFailed(f"source.params.signal: expected a name starting with "
                                 f"{SIGNAL_PREFIX!r}, got {signal!r}")
        if namespace not in self.namespaces:
            raise DeliveryFailed(f"source.params.namespace: expected one of {self.namespaces} "
                                 f"(the hub's [resumers.temporal] namespaces), got {namespace!r}")
        payload = {"event_id": event.id, "key": event.key,
                   "decision": decision.model_dump(mode="json")}
        where = f"{self.address} {namespace}/{workflow_id}/{run_id}"
        sdk: _Sdk | None = None
        try:
            sdk, client = await self._client(namespace)
            handle = client.get_workflow_handle(workflow_id, run_id=run_id)
            await asyncio.wait_for(handle.signal(signal, payload, rpc_timeout=self.rpc_timeout),
                                   timeout=2 * self.rpc_timeout.total_seconds())
        except RetryDelivery:
            raise
        except Exception as exc:
            if sdk is not None and isinstance(exc, sdk.rpc_error):
                status = exc.status  # type: ignore[attr-defined]
                reason = f"{where}: {status.name}: {exc.message}"  # type: ignore[attr-defined]
                if status in sdk.final:
                    raise DeliveryFailed(reason) from exc
                raise RetryDelivery(reason) from exc
            # connecting failed, a timeout: the server may come back
            raise RetryDelivery(f"{where}: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        """Forget the clients (temporalio closes connections when they are dropped)."""
        self._clients.clear()
