"""What the Flyte adapter's parts share, without importing any Flyte SDK.

A step's *request* is a small JSON document fixed when the workflow is compiled (prompt, input
spec, routing, timeout) plus what the hub's resumer needs to answer a gate node (signal id and
literal type). Tasks receive it as a string input, add the execution's identity at run time, and
create the event with the key ``flyte:<project>:<domain>:<execution>:<node>``, so a retried or
recovered node gets the same event back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import timedelta
from typing import Any, Literal

from signoff import (
    Cancelled,
    Decision,
    DecisionError,
    Event,
    EventCreate,
    Expired,
    Rejected,
    Source,
    input_spec,
    result_of,
)
from signoff.adapters import MissingExtra

__all__ = [
    "Kind",
    "MissingExtra",
    "Mode",
    "console_link",
    "default_mode",
    "event_key",
    "event_name",
    "fail_for",
    "make_request",
    "python_type_for",
    "request_event",
    "require",
    "seconds",
    "signal_name",
]

Mode = Literal["gate", "task"]
Kind = Literal["approve", "signal", "task"]
MODES = ("gate", "task")
MODE_ENV = "SIGNOFF_FLYTE_MODE"
CONSOLE_ENV = "SIGNOFF_FLYTE_CONSOLE_URL"
_SIGNAL = re.compile(r"^[a-z0-9]([a-z0-9_-]{0,62})$")
_EVENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/+-]{0,199}$")  # signoff's EventCreate.name


def require(module: str, extra: str) -> None:
    """Import ``module`` or raise :class:`MissingExtra` naming ``pip install 'signoff[extra]'``."""
    try:
        __import__(module)
    except ImportError as exc:
        raise MissingExtra(
            f"signoff's Flyte adapter needs {module!r}: pip install 'signoff[{extra}]' "
            f"({type(exc).__name__}: {exc})") from exc


def default_mode() -> Mode:
    """The mode when a call names none: ``SIGNOFF_FLYTE_MODE`` at compile time, else gate."""
    mode = os.environ.get(MODE_ENV, "gate")
    if mode not in MODES:
        raise ValueError(f"{MODE_ENV}: expected one of {MODES}, got {mode!r}")
    return mode  # type: ignore[return-value]


def seconds(value: timedelta | float | int | None, field: str = "timeout") -> float | None:
    """A timeout given as a timedelta or seconds, as positive seconds (or None)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{field}: expected a positive timedelta or number of seconds, "
                         f"got {value!r}")
    return float(value)


def event_name(name: str) -> str:
    """A Flyte 2 condition's name as a signoff event name: unchanged when it is one already;
    otherwise the characters an event name cannot hold become ``-`` and a short digest of the
    original follows, so two names never meet in one key (``"ok?"`` and ``"ok!"`` differ).
    """
    if _EVENT_NAME.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    cleaned = re.sub(r"[^A-Za-z0-9_.:@/+-]+", "-", name).lstrip("_.:@/+-")[:180]
    return f"{cleaned}-{digest}" if cleaned else f"condition-{digest}"


def signal_name(prompt: str, name: str | None) -> str:
    """The gate's signal id (and the node part of the key): ``name`` checked, or a prompt slug."""
    if name is None:
        name = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:48].strip("-") or "signoff"
    if not _SIGNAL.match(name):
        raise ValueError(f"name: expected 1-63 lower-case letters, digits, '-' or '_' starting "
                         f"with a letter or digit (a Flyte signal id), got {name!r}")
    return name


def python_type_for(spec: Any) -> Any:
    """The Python type a Flyte node carries for an input spec (what ``ask`` returns)."""
    return {"approval": bool, "bool": bool, "int": int, "float": float, "text": str,
            "choice": str, "multichoice": list[str], "form": dict}[spec.kind]


def make_request(*, prompt: str, name: str, input: Any, kind: Kind, context: Any = None,
                 assignees: list[str] | None = None, priority: str = "normal",
                 timeout: float | None = None, on_timeout: str = "reject",
                 labels: dict[str, str] | None = None, recommendation: Any = None,
                 confidence: float | None = None,
                 literal_type: dict[str, Any] | None = None) -> str:
    """The request JSON a compiled node carries; checked now, so a bad call fails at compile."""
    fields: dict[str, Any] = {
        "name": name, "prompt": prompt, "input": input_spec(input).model_dump(by_alias=True),
        "context": context or {}, "assignees": assignees or [], "priority": priority,
        "timeout": timeout, "on_timeout": on_timeout, "labels": labels or {},
        "recommendation": recommendation, "confidence": confidence,
    }
    EventCreate.model_validate(fields)  # a mistake surfaces when the workflow is compiled
    return json.dumps({"event": fields, "flyte": {"kind": kind, "signal_id": name,
                                                  "literal_type": literal_type}},
                      sort_keys=True)


def event_key(project: str, domain: str, execution: str, node: str) -> str:
    """The idempotency key of a Flyte step's event."""
    return f"flyte:{project}:{domain}:{execution}:{node}"


def console_link(project: str, domain: str, execution: str) -> str | None:
    """The execution's page in Flyte's console, when ``SIGNOFF_FLYTE_CONSOLE_URL`` is set."""
    base = os.environ.get(CONSOLE_ENV)
    if not base or project == "local":
        return None
    return f"{base.rstrip('/')}/console/projects/{project}/domains/{domain}/executions/{execution}"


def request_event(request: str, project: str, domain: str, execution: str,
                  mode: str) -> EventCreate:
    """The event for a request, in one execution, ready for ``Client.create``."""
    body = json.loads(request)
    fields, flyte = body["event"], body["flyte"]
    params: dict[str, Any] = {"mode": mode, "kind": flyte["kind"], "project": project,
                              "domain": domain, "execution": execution,
                              "signal_id": flyte["signal_id"]}
    if flyte.get("literal_type") is not None:
        params["literal_type"] = flyte["literal_type"]
    source = Source(orchestrator="flyte", run=f"{project}/{domain}/{execution}",
                    step=flyte["signal_id"], link=console_link(project, domain, execution),
                    params=params)
    return EventCreate.model_validate({
        **{k: v for k, v in fields.items() if v is not None},
        "key": event_key(project, domain, execution, flyte["signal_id"]),
        "source": source.model_dump(),
    })


def fail_for(event: Event | str, decision: Decision, *, approval: bool) -> Any:
    """``result_of`` with the step's name and event id in the message, for a clear failed node."""
    try:
        return result_of(decision, approval=approval)
    except DecisionError as exc:
        name, ident = (event, "") if isinstance(event, str) else (event.name, f" ({event.id})")
        cls = type(exc) if isinstance(exc, (Rejected, Expired, Cancelled)) else DecisionError
        raise cls(f"signoff step {name!r}{ident}: {exc}", decision) from None
