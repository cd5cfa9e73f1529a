"""The Flyte 2 event: created in the hub, waited for on its long-poll."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import flyte
from flyte.syncify import syncify

from signoff import AsyncClient, Decision, EventCreate, Expired, Source, input_spec
from signoff import Event as HubEvent
from signoff.adapters import _hub

from .._common import CONSOLE_ENV, fail_for

__all__ = ["Event", "EventScope", "EventTimeout", "env", "event_key", "new_event"]

T = TypeVar("T")
EventScope = Literal["run"]
# a child of Flyte 2's user-facing logger (``flyte.logger``), the one a task's log shows at INFO:
# the waiting line lands where the engineer looks, with no logging setup of theirs
log = logging.getLogger("flyte.user.signoff")

SETTING = "SIGNOFF_URL (in the task's environment: TaskEnvironment(env_vars=...))"
"""Where a Flyte 2 task is told its hub, named when none is set."""

env = flyte.TaskEnvironment(
    name="signoff-hitl",
    image=flyte.Image.from_debian_base(name="signoff-hitl").with_pip_packages("signoff[flyte2]"),
    resources=flyte.Resources(cpu=1, memory="256Mi"),
)
"""A task environment to list in ``depends_on`` (as with the plugin's ``hitl.env``); signoff
serves no app of its own: the hub is the form server."""


class EventTimeout(Expired, TimeoutError):
    """No answer before the deadline (``on_timeout="fail"``, the default, as the plugin's
    ``TimeoutError``).
    """


def run_link(project: str, domain: str, run: str) -> str | None:
    """The run's page in the Flyte 2 console (``SIGNOFF_FLYTE_CONSOLE_URL``), as the SDK's own
    ``Console.run_url`` builds it; none for a local run or without the setting.
    """
    base = os.environ.get(CONSOLE_ENV)
    if not base or project == "local":
        return None
    return (f"{base.rstrip('/')}/v2/domain/{quote(domain, safe='')}/project/"
            f"{quote(project, safe='')}/runs/{quote(run, safe='')}")


def event_key(name: str) -> tuple[str, Source]:
    """The event's key and source from the current run and action (random outside a task)."""
    ctx = flyte.ctx()
    action = getattr(ctx, "action", None) if ctx is not None else None
    if action is None or not action.run_name:
        run, step, project, domain = f"adhoc-{uuid.uuid4().hex[:12]}", "adhoc", "local", "local"
    else:
        run, step = action.run_name, action.name
        project, domain = action.project or "local", action.domain or "local"
    key = f"flyte2:{project}:{domain}:{run}:{step}:{name}"
    source = Source(orchestrator="flyte2", run=f"{project}/{domain}/{run}", step=f"{step}/{name}",
                    link=run_link(project, domain, run),
                    params={"project": project, "domain": domain, "run": run, "action": step})
    return key, source


class Event(Generic[T]):
    """A request for human input waiting in the hub (what :func:`new_event` returns)."""

    def __init__(self, hub_event: HubEvent, data_type: Any, client_url: str,
                 timeout_seconds: int, poll_interval_seconds: int) -> None:
        self.hub_event = hub_event
        self.name = hub_event.name
        self.scope: EventScope = "run"
        self.data_type = data_type
        self.prompt = hub_event.prompt
        self.request_id = hub_event.id
        self.key = hub_event.key
        self.timeout_seconds = timeout_seconds
        self.poll_interval_seconds = poll_interval_seconds  # kept for the plugin's shape only
        self._url = client_url

    @property
    def endpoint(self) -> str:
        """The hub's base URL."""
        return self._url

    @property
    def form_url(self) -> str:
        """The hub's page for this event, where a reviewer answers it."""
        return f"{self._url}/events/{self.request_id}"

    @property
    def api_url(self) -> str:
        """Where a program answers it: POST ``{"value": ...}`` with a reviewer's token."""
        return f"{self._url}/api/v1/events/{self.request_id}/responses"

    @syncify
    async def wait(self) -> T:
        """Wait for the decision on the hub's long-poll; return the answer.

        Raises:
            EventTimeout: no answer before the deadline (``on_timeout="fail"``).
            signoff.Rejected: rejected (for approvals: returns ``False`` instead).
            signoff.Cancelled: the event was cancelled.
        """
        decided: Decision | None = self.hub_event.decision
        if decided is None:
            log.info(_hub.WAITING, self.form_url)
        async with AsyncClient(self._url) as client:  # verified, also when decided at creation
            decision = await client.wait(self.request_id) if decided is None else \
                await client.verified(self.request_id, decided)
        try:
            value = fail_for(self.hub_event, decision,
                             approval=self.hub_event.input.kind == "approval")
        except Expired as exc:
            raise EventTimeout(str(exc), exc.decision) from None
        if self.data_type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        return value  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return (f"Event(name={self.name!r}, scope={self.scope!r}, key={self.key!r}, "
                f"request_id={self.request_id!r})")


@syncify
async def new_event(name: str, data_type: Any = None, scope: EventScope = "run",
                    prompt: str = "Please provide a value", timeout_seconds: int | None = 3600,
                    poll_interval_seconds: int = 5, *, input: Any = None,
                    assignees: list[str] | None = None,
                    context: Mapping[str, Any] | None = None, priority: str = "normal",
                    on_timeout: Literal["default", "reject", "fail"] = "fail",
                    labels: dict[str, str] | None = None, recommendation: Any = None,
                    confidence: float | None = None) -> Event[Any]:
    """Create a human-input event in the hub (or find it again after a restart).

    Args:
        name: the event's name; with the run and action it makes the key, so use distinct
            names for distinct questions within one task.
        data_type: ``int``, ``float``, ``str`` or ``bool`` as in the plugin, or any type
            signoff's ``input_spec`` takes (an Enum or Literal, a pydantic model ...).
        scope: only ``"run"``, as in the plugin.
        prompt: the question the reviewer sees.
        timeout_seconds: the deadline (``None``: none); what it does is ``on_timeout``.
        poll_interval_seconds: accepted for the plugin's shape; the wait is a long-poll.
        input: an input spec instead of ``data_type`` (choices, bounds, forms, approval).
        assignees: user names and ``group:NAME``; empty means anyone.
        context: JSON shown beside the prompt.
        priority: low, normal, high or urgent.
        on_timeout: ``fail`` (default: :class:`EventTimeout`), ``reject`` or ``default``.
        labels: free labels on the event.
        recommendation: what the automation before this step recommends.
        confidence: the automation's confidence, 0..1 (for routing policies).

    Returns:
        The :class:`Event`; ``await event.wait.aio()`` (or ``event.wait()``) gives the answer.
    """
    if scope != "run":
        raise ValueError(f"scope: expected 'run', got {scope!r}")
    if (data_type is None) == (input is None):
        raise TypeError("new_event: give data_type or input (one of them)")
    spec = input_spec(input if input is not None else data_type)
    key, source = event_key(name)
    body = EventCreate(name=name, prompt=prompt, input=spec, key=key,
                       context=dict(context or {}), assignees=assignees or [],
                       priority=priority,  # type: ignore[arg-type]
                       timeout=float(timeout_seconds) if timeout_seconds else None,
                       on_timeout=on_timeout, source=source, labels=labels or {},
                       recommendation=recommendation, confidence=confidence)
    async with AsyncClient(_hub.hub_url(None, SETTING)) as client:
        created = await client.create(body)
        url = client.url
    return Event(created, data_type, url, timeout_seconds or 0, poll_interval_seconds)
