"""The flytekit tasks ``approve`` and ``ask`` put into a compiled workflow.

They live at module level so a Flyte container loads them with flytekit's default resolver:

- ``signoff_register`` (gate mode, before the gate): creates the event and returns its id.
- ``signoff_settle_<type>`` (gate mode, after a ``wait_for_input`` gate): returns the hub's
  decision as the node's value, fails the node with a clear message when the event was rejected,
  expired or cancelled, and relays an answer given in Flyte's own UI into the hub.
- ``signoff_settle_approval`` (gate mode, after an ``approve`` gate): relays a UI approval.
- ``signoff_wait_<type>`` (task mode): creates the event and waits on the hub's long-poll.

Every task reads the hub's address and token from ``SIGNOFF_URL`` and ``SIGNOFF_TOKEN``.
"""

from __future__ import annotations

import logging
from typing import Any

from flytekit import current_context, task

from signoff import (
    AlreadyAnswered,
    AlreadyDecided,
    Client,
    Decision,
    Event,
    Forbidden,
    InvalidInput,
)
from signoff.adapters import _hub

from ._common import fail_for, request_event

__all__ = ["SETTLE", "WAIT", "create_event", "execution_ids", "signoff_register",
           "signoff_settle_approval", "wait_event"]

SETTING = "SIGNOFF_URL (in the task's environment: ImageSpec env or the pod's env)"
"""Where a flytekit task is told its hub, named when none is set."""

ENGINE = "flyte"
"""The engine channel an answer given at a gate in Flyte's UI is relayed to the hub on."""

# a child of flytekit's "user_space" logger, the one a task's own log shows (at INFO, locally and
# in a cluster pod): the waiting line lands where the engineer looks, with no setup of theirs
log = logging.getLogger("user_space.signoff")


def execution_ids() -> tuple[str, str, str]:
    """Project, domain and name of the running execution (``local`` for each when local)."""
    ex = current_context().execution_id
    return ex.project, ex.domain, ex.name


def create_event(request: str, mode: str, ids: tuple[str, str, str] | None = None) -> Event:
    """Create (or find again, by key) the event of ``request`` in this execution."""
    project, domain, execution = ids or execution_ids()
    with _client() as client:
        event = client.create(request_event(request, project, domain, execution, mode))
    if event.decision is None:  # the task log says where to answer, once per wait
        log.info(_hub.WAITING, _hub.inbox_url(client.url, event.id))
    return event


def _client() -> Client:
    """A client for the hub named by ``SIGNOFF_URL``; none named fails the task at once."""
    return Client(_hub.hub_url(None, SETTING))


def wait_event(event: Event, *, gate: bool = False) -> Any:
    """Wait on the hub's long-poll for the event's decision; the value, or a clear exception.

    An approval asked with ``ask`` answers ``False`` when rejected; with ``gate`` (``approve``)
    a rejection raises, so a rejected value never goes through.
    """
    with _client() as client:  # decided at once, or waited for: verified either way
        decision = client.wait(event.id) if event.decision is None else \
            client.verified(event.id, event.decision)
    return fail_for(event, decision, approval=event.input.kind == "approval" and not gate)


def _coerce(kind: type, value: Any) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _settle(event_id: str, gate_value: Any) -> Any:
    with _client() as client:
        event = client.get(event_id)
        if event.decision is None:
            # the hub decided nothing, so the gate was answered in Flyte's UI: relay it there.
            # Flyte names nobody, so the hub records it as unverified from Flyte.
            try:
                event = client.relay(event_id, gate_value, "answered in Flyte's UI",
                                     engine=ENGINE)
            except (AlreadyDecided, AlreadyAnswered):
                event = client.get(event_id)
            except InvalidInput as exc:
                raise InvalidInput(exc.field, exc.expected, exc.got,
                                   f"signoff step {event.name!r} ({event.id}): the answer given "
                                   f"in Flyte's UI was refused by the hub: {exc}") from None
            except Forbidden as exc:  # the relay policy: a person must answer in the hub
                log.error("signoff step %r (%s): the answer given in Flyte's UI was refused by "
                          "the hub (%s); waiting for an answer in the hub", event.name, event.id,
                          exc)
            if event.decision is None:  # refused, or recorded without deciding (a quorum)
                log.warning("signoff step %r (%s): waiting for the hub's decision", event.name,
                            event.id)
                event = event.model_copy(update={"decision": client.wait(event_id)})
        # the hub's decision, verified (its signature, the event's digest), never the value a
        # signal brought to the gate: anyone who may call SetSignal can set that
        decision: Decision = client.verified(event_id, event.decision)
        return fail_for(event, decision, approval=event.input.kind == "approval")


@task
def signoff_register(request: str) -> str:
    """Create the event a gate node waits on; return its id."""
    return create_event(request, "gate").id


@task
def signoff_settle_approval(event_id: str) -> None:
    """After an approve gate passed: make sure the hub says approved too."""
    _settle(event_id, True)


@task
def signoff_settle_bool(event_id: str, value: bool) -> bool:
    """The decided yes/no after a gate."""
    return bool(_settle(event_id, value))


@task
def signoff_settle_int(event_id: str, value: int) -> int:
    """The decided whole number after a gate."""
    return int(_settle(event_id, value))


@task
def signoff_settle_float(event_id: str, value: float) -> float:
    """The decided number after a gate."""
    return float(_settle(event_id, value))


@task
def signoff_settle_str(event_id: str, value: str) -> str:
    """The decided text or choice after a gate."""
    return str(_settle(event_id, value))


@task
def signoff_settle_list(event_id: str, value: list[str]) -> list[str]:
    """The decided options after a gate."""
    return list(_settle(event_id, value))


@task
def signoff_settle_dict(event_id: str, value: dict) -> dict:  # type: ignore[type-arg]
    """The decided form after a gate."""
    return dict(_settle(event_id, value))


@task
def signoff_wait_bool(request: str) -> bool:
    """Create the event and wait for a yes/no."""
    return bool(wait_event(create_event(request, "task")))


@task
def signoff_wait_int(request: str) -> int:
    """Create the event and wait for a whole number."""
    return int(wait_event(create_event(request, "task")))


@task
def signoff_wait_float(request: str) -> float:
    """Create the event and wait for a number."""
    return float(_coerce(float, wait_event(create_event(request, "task"))))


@task
def signoff_wait_str(request: str) -> str:
    """Create the event and wait for text or a choice."""
    return str(wait_event(create_event(request, "task")))


@task
def signoff_wait_list(request: str) -> list[str]:
    """Create the event and wait for options."""
    return list(wait_event(create_event(request, "task")))


@task
def signoff_wait_dict(request: str) -> dict:  # type: ignore[type-arg]
    """Create the event and wait for a form."""
    return dict(wait_event(create_event(request, "task")))


SETTLE: dict[str, Any] = {"bool": signoff_settle_bool, "int": signoff_settle_int,
                          "float": signoff_settle_float, "str": signoff_settle_str,
                          "list": signoff_settle_list, "dict": signoff_settle_dict}
"""The settle task for each value type, by the name :func:`type_key` gives."""

WAIT: dict[str, Any] = {"bool": signoff_wait_bool, "int": signoff_wait_int,
                        "float": signoff_wait_float, "str": signoff_wait_str,
                        "list": signoff_wait_list, "dict": signoff_wait_dict}
"""The task-mode waiting task for each value type."""
