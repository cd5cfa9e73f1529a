"""The shared model: what crosses between workflows, the hub and reviewers.

Every model here is a frozen pydantic v2 model used by both the client and the hub, so the
hub's OpenAPI document and the client's parsing come from the same definitions.

Outcomes of a decision:

| outcome     | reached by                                  | value the workflow receives |
| ----------- | ------------------------------------------- | --------------------------- |
| approved    | an approval answered ``true``               | ``true``                    |
| rejected    | an approval answered ``false``; a timeout with ``on_timeout="reject"`` | ``false`` (approval) or ``null`` |
| answered    | any other kind answered                     | the answer                  |
| timed_out   | a timeout with ``on_timeout="default"``     | the input's default         |
| expired     | a timeout with ``on_timeout="fail"``        | ``null``; adapters fail the step |
| cancelled   | ``POST /cancel``                            | ``null``                    |
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)

from ._inputs import ApprovalInput, InputSpec
from ._limits import (
    MAX_ASSIGNEES,
    MAX_CONTEXT_KEYS,
    MAX_DURATION,
    MAX_JSON_DEPTH,
    MAX_JSON_NODES,
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    Number,
    Text,
    bounded_json,
)
from ._policy import Impact, Policy
from ._shadow import Shadow

__all__ = [
    "Decision",
    "Delivery",
    "Event",
    "EventCreate",
    "EventPage",
    "Outcome",
    "Priority",
    "Response",
    "ResponseCreate",
    "Source",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/+-]{0,199}$")
_ASSIGNEE = re.compile(r"^(group:)?[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")
MAX_SENSITIVE = 100
"""The most context paths one event may mark sensitive."""
_PATH = r"^[^.\s][^.]{0,199}(\.[^.\s][^.]{0,199}){0,15}$"
SensitivePath = Annotated[str, StringConstraints(pattern=_PATH, max_length=1000)]
"""A dotted path into an event's context: keys separated by dots, at most 16 deep."""
_DIGEST = r"^sha256:[0-9a-f]{64}$"
_BOUNDS = f"nested at most {MAX_JSON_DEPTH} deep, at most {MAX_JSON_NODES} values"

BoundedJson = Annotated[JsonValue, AfterValidator(bounded_json)]
"""Any JSON value that can be shown again: valid Unicode, finite numbers, bounded (``_limits``)."""
JsonObject = Annotated[dict[str, JsonValue], Field(max_length=MAX_CONTEXT_KEYS),
                       AfterValidator(bounded_json)]
"""A JSON object with at most ``MAX_CONTEXT_KEYS`` keys, bounded like :data:`BoundedJson`."""
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LABEL_KEY)]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Priority(str, Enum):
    """How urgent an event is; the inbox shows the highest first."""

    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"

    @property
    def rank(self) -> int:
        """Sort key: higher is more urgent."""
        return _PRIORITY_RANK[self.value]


_PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2, "urgent": 3}


class Outcome(str, Enum):
    """How an event ended (see the table in this module's docstring)."""

    approved = "approved"
    rejected = "rejected"
    answered = "answered"
    timed_out = "timed_out"
    expired = "expired"
    cancelled = "cancelled"


class Source(_Frozen):
    """Where an event came from, and where its decision must be delivered.

    ``orchestrator`` picks the hub's resumer (``webhook``, ``prefect``, ...); ``params``
    carries what that resumer needs (a URL, a run id, a node selector).
    """

    orchestrator: str = Field(default="api", pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    run: str | None = Field(default=None, max_length=500)
    step: str | None = Field(default=None, max_length=500)
    link: str | None = Field(default=None, max_length=2000)
    params: JsonObject = Field(default_factory=dict, description=f"JSON, {_BOUNDS}.")

    @field_validator("link")
    @classmethod
    def _http_link(cls, link: str | None) -> str | None:
        if link is not None and not link.startswith(("http://", "https://")):
            raise ValueError("link must be an http(s) URL")
        return link


class EventCreate(_Frozen):
    """What a workflow sends to ask for human input."""

    name: str = Field(description="A short machine-friendly name, e.g. 'approve-deploy'.",
                      json_schema_extra={"pattern": _NAME.pattern, "maxLength": 200})
    prompt: str = Field(min_length=1, max_length=10_000, description="The question, as shown.")
    input: InputSpec = Field(default_factory=ApprovalInput, description="The expected answer.")
    key: Text | None = Field(
        default=None, max_length=500, description="Idempotency key: the same key, the same event."
    )
    context: JsonObject = Field(
        default_factory=dict,
        description=f"JSON shown to the reviewer beside the prompt; {_BOUNDS}.",
    )
    assignees: list[str] = Field(
        default_factory=list, max_length=MAX_ASSIGNEES,
        description="User names and 'group:NAME'; empty means anyone.",
        json_schema_extra={"items": {"type": "string", "pattern": _ASSIGNEE.pattern}},
    )
    priority: Priority = Priority.normal
    timeout: Number | None = Field(
        default=None, gt=0, le=MAX_DURATION, allow_inf_nan=False,
        description="Seconds until the deadline (at most a year).",
    )
    on_timeout: Literal["default", "reject", "fail"] = "reject"
    source: Source = Field(default_factory=Source)
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=MAX_LABELS)
    recommendation: BoundedJson = Field(
        default=None,
        description=f"What the automation before this step recommends; {_BOUNDS}.",
    )
    confidence: Number | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    impact: Impact | None = Field(default=None, description="How much is at stake if wrong.")
    policy: Policy | None = Field(default=None, description="Routing, quorum, escalation.")
    sensitive: list[SensitivePath] = Field(
        default_factory=list, max_length=MAX_SENSITIVE,
        description="Context fields to mask for reviewers without the reveal right, as dotted "
                    "paths ('customer.ssn'; list items are passed through: 'orders.email').")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError("name must be 1-200 letters, digits or _.:@/+- and start alnum")
        return name

    @field_validator("assignees")
    @classmethod
    def _assignees(cls, assignees: list[str]) -> list[str]:
        for who in assignees:
            if not _ASSIGNEE.fullmatch(who):
                raise ValueError(f"assignee {who!r} is not a user name or 'group:NAME'")
        return list(dict.fromkeys(assignees))

    @model_validator(mode="after")
    def _default_needed(self) -> EventCreate:
        on_timeout = (self.policy and self.policy.on_timeout) or self.on_timeout
        if on_timeout == "default" and self.input.default is None:
            raise ValueError("on_timeout 'default' needs input.default")
        if self.policy is not None and self.policy.quorum > 1 and self.input.kind != "approval":
            raise ValueError("policy.quorum above 1 needs an approval input")
        return self


class ResponseCreate(_Frozen):
    """One answer to an event. Who answers comes from the token, never from here."""

    value: BoundedJson = Field(
        description=f"The answer, checked against the event's input spec; {_BOUNDS}.")
    comment: Text | None = Field(default=None, max_length=10_000)
    digest: str | None = Field(
        default=None, pattern=_DIGEST,
        description="The event's digest as the responder was shown it: the answer is refused "
                    "(409 digest_changed) if the event shows something else now.")
    relayed_by: Text | None = Field(
        default=None, max_length=128,
        description="Only when an engine relays an answer given in its own UI or CLI "
                    "(X-Signoff-Channel: the engine): the person the engine names. "
                    "Recorded as '<engine>:<name>', unverified by signoff.")


class Response(_Frozen):
    """One stored answer by one identified responder, through one channel."""

    id: str
    event_id: str
    by: str
    value: JsonValue
    comment: str | None = None
    channel: str
    at: datetime
    relayed_from: str | None = Field(
        default=None, description="The engine that relayed this answer from its own UI or CLI.")
    verified: bool = Field(
        default=True, description="False when signoff did not authenticate the responder "
                                  "(an engine-relayed answer).")


class Decision(_Frozen):
    """The final outcome of an event, written once."""

    value: JsonValue = Field(description="What the workflow receives.")
    outcome: Outcome
    by: str = Field(description="The responder, or 'timeout' / 'policy' / the canceller.")
    comment: str | None = None
    channel: str = "api"
    at: datetime
    rule: str | None = Field(default=None, description="The policy rule or tier that decided.")
    relayed_from: str | None = Field(
        default=None, description="The engine that relayed the deciding answer, if any.")
    verified: bool = Field(
        default=True, description="False when the deciding answer was relayed by an engine "
                                  "and signoff did not authenticate who gave it.")
    proposal: JsonValue = Field(
        default=None, description="The value the workflow proposed (its recommendation for an "
                                  "answer that is not approve/reject), kept beside the answer.")
    amended: bool = Field(
        default=False, description="True when the reviewer changed the proposal before "
                                   "approving it: ``value`` is the amended value.")
    digest: str | None = Field(
        default=None, description="The event's payload digest this decision was made against.")
    kid: str | None = Field(default=None, description="The id of the hub key that signed it.")
    signature: str | None = Field(
        default=None, description="Ed25519 signature (base64url) over the canonical decision "
                                  "claims; see docs/evidence.md.")

    @property
    def ok(self) -> bool:
        """True when the workflow can continue with ``value`` as an answer."""
        return self.outcome in (Outcome.approved, Outcome.answered, Outcome.timed_out)


class Delivery(_Frozen):
    """One delivery of a decision to the event's source, through a resumer."""

    id: str
    resumer: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    updated_at: datetime


class Event(_Frozen):
    """One request for human input, as the hub holds it."""

    id: str
    key: str | None
    name: str
    prompt: str
    input: InputSpec
    context: dict[str, JsonValue]
    assignees: list[str]
    priority: Priority
    timeout: float | None
    on_timeout: Literal["default", "reject", "fail"]
    source: Source
    labels: dict[str, str]
    recommendation: JsonValue = None
    confidence: float | None = None
    impact: Impact | None = None
    policy: Policy | None = None
    sensitive: list[str] = Field(default_factory=list)
    masked: list[str] = Field(
        default_factory=list,
        description="Context paths masked for this reader (shown as '[masked]'); a reader with "
                    "the reveal right gets them with POST /events/{id}/reveal.")
    digest: str | None = Field(
        default=None, description="SHA-256 over what a reviewer is shown (docs/evidence.md); "
                                  "None for events made before digests.")
    digest_parts: dict[str, str] = Field(
        default_factory=dict, description="One digest per shown field, to name what changed.")
    escalation_level: int = 0
    assignee: str | None = Field(
        default=None, description="The one member of a balanced group this event is given to "
                                  "(policy.balance): notified and reminded; see the audit's "
                                  "'assigned' entries.")
    shadow: Shadow | None = Field(
        default=None, description="What the policy's shadow rules would have decided at "
                                  "creation (recorded, never acted on).")
    requested_by: str
    status: Literal["pending", "decided", "cancelled"]
    created_at: datetime
    deadline: datetime | None
    decision: Decision | None = None
    responses: list[Response] = Field(default_factory=list)
    deliveries: list[Delivery] = Field(default_factory=list)


class EventPage(_Frozen):
    """One page of a listing; pass ``next_cursor`` back as ``cursor`` for the next one."""

    events: list[Event]
    next_cursor: str | None = None
