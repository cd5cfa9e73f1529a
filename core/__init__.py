"""signoff: human approval and human input steps for workflows, with one shared inbox.

``import signoff`` gives the shared model, the input specs, the errors and the hub's
client; it loads pydantic, httpx and cryptography (to verify signed decisions) and nothing
heavier. The hub (``signoff.hub``), the
stores (``signoff.store``) and the adapters (``signoff.adapters.*``) are imported on demand.
"""

from __future__ import annotations

from ._client import AsyncClient, Client
from ._errors import (
    AlreadyAnswered,
    AlreadyDecided,
    Cancelled,
    Conflict,
    DecisionError,
    DigestChanged,
    Expired,
    Forbidden,
    HubError,
    HubNotConfigured,
    HubUnavailable,
    InvalidInput,
    KeyReused,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Rejected,
    SignoffError,
    StoreError,
    StoreUnavailable,
    TargetTaken,
    Unauthenticated,
    WaitTimeout,
)
from ._evidence import DecisionUnverified, Keyring, verify_decision, verify_delivery
from ._inputs import (
    ApprovalInput,
    BoolInput,
    ChoiceInput,
    FloatInput,
    FormInput,
    InputSpec,
    IntInput,
    MultiChoiceInput,
    TextInput,
    input_spec,
    parse_text,
    validate_value,
)
from ._model import (
    Decision,
    Delivery,
    Event,
    EventCreate,
    EventPage,
    Outcome,
    Priority,
    Response,
    ResponseCreate,
    Source,
)
from ._policy import Policy, PolicyFile, PolicyFileRule, Rule, Tier
from ._rules import Identity, result_of, timeout_decision
from ._shadow import Shadow

__version__ = "0.1.0"

__all__ = [
    "AlreadyAnswered",
    "AlreadyDecided",
    "ApprovalInput",
    "AsyncClient",
    "BoolInput",
    "Cancelled",
    "ChoiceInput",
    "Client",
    "Conflict",
    "Decision",
    "DecisionError",
    "DecisionUnverified",
    "Delivery",
    "DigestChanged",
    "Event",
    "EventCreate",
    "EventPage",
    "Expired",
    "FloatInput",
    "Forbidden",
    "FormInput",
    "HubError",
    "HubNotConfigured",
    "HubUnavailable",
    "Identity",
    "InputSpec",
    "IntInput",
    "InvalidInput",
    "KeyReused",
    "Keyring",
    "MultiChoiceInput",
    "NotFound",
    "Outcome",
    "PayloadTooLarge",
    "Policy",
    "PolicyFile",
    "PolicyFileRule",
    "Priority",
    "RateLimited",
    "Rejected",
    "Response",
    "ResponseCreate",
    "Rule",
    "Shadow",
    "SignoffError",
    "Source",
    "StoreError",
    "StoreUnavailable",
    "TargetTaken",
    "TextInput",
    "Tier",
    "Unauthenticated",
    "WaitTimeout",
    "input_spec",
    "parse_text",
    "result_of",
    "timeout_decision",
    "validate_value",
    "verify_decision",
    "verify_delivery",
]
