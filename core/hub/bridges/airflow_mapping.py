"""Airflow HITL actions as signoff events, and answers both ways (pure functions, no I/O).

Airflow 3.3's REST API lists a task's request for input as a ``HITLDetail``
(``airflow/api_fastapi/core_api/datamodels/hitl.py``): ``options``, ``multiple``, ``defaults``,
``params`` (each ``{"value", "description", "schema"}``), ``assigned_users``, the response once
given (``response_received``, ``chosen_options``, ``params_input``, ``responded_by_user``) and
the task instance. The models below read the fields the bridge uses and refuse a shape without
them, naming the field.

| action in Airflow | input of the event | answer sent back |
| --- | --- | --- |
| ``ApprovalOperator`` (options ``Approve``/``Reject``, no params) | approval | ``["Approve"]`` or ``["Reject"]`` |
| one of several options, no params (``HITLOperator``, ``HITLBranchOperator``) | choice | ``[option]`` |
| ``multiple=True``, no params | multichoice (at least one) | the options chosen |
| with params (``HITLEntryOperator``, ``HITLOperator(params=...)``) | form: ``chosen_options`` (when there is more than one option) and one field per param, its Airflow schema, default and description | the option(s), and every param (a field left out: its default) |
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from ..._inputs import ApprovalInput, ChoiceInput, FormInput, MultiChoiceInput
from ..._model import Event, EventCreate, Outcome, Source
from ...resumers import target_name
from .airflow_config import AirflowDeployment

__all__ = ["ORCHESTRATOR", "HitlDetail", "HitlPage", "answer_for", "event_for", "event_key",
           "value_of_response"]

ORCHESTRATOR = "airflow-hitl"
"""The ``source.orchestrator`` of the bridge's events, and the channel of answers from Airflow."""

OPTION_FIELD = "chosen_options"
"""The form field of the option(s) when an action has params and more than one option."""

_APPROVAL = ("Approve", "Reject")  # ApprovalOperator.APPROVE, .REJECT
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.:@/+-]")
_ASSIGNEE = re.compile(r"^(group:)?[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")
_MAX_PROMPT = 10_000


class _Read(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class AirflowUser(_Read):
    """``HITLUser``: who an action is assigned to, or who answered it."""

    id: str
    name: str


class AirflowTaskInstance(_Read):
    """The fields of Airflow's ``TaskInstanceResponse`` the bridge uses."""

    dag_id: str = Field(min_length=1, max_length=250)
    dag_run_id: str = Field(min_length=1, max_length=250)
    task_id: str = Field(min_length=1, max_length=250)
    map_index: int
    try_number: int
    state: str | None
    dag_display_name: str | None = None
    task_display_name: str | None = None


class HitlDetail(_Read):
    """One ``HITLDetail`` as ``GET .../hitlDetails`` returns it."""

    options: list[str] = Field(min_length=1)
    subject: str
    body: str | None = None
    defaults: list[str] | None = None
    multiple: bool = False
    params: dict[str, Any] = Field(default_factory=dict)
    assigned_users: list[AirflowUser] = Field(default_factory=list)
    created_at: datetime
    responded_by_user: AirflowUser | None = None
    responded_at: datetime | None = None
    chosen_options: list[str] | None = None
    params_input: dict[str, Any] = Field(default_factory=dict)
    response_received: bool = False
    task_instance: AirflowTaskInstance


class HitlPage(_Read):
    """``HITLDetailCollection``: one page of actions."""

    hitl_details: list[HitlDetail]
    total_entries: int


def event_key(deployment: str, ti: AirflowTaskInstance) -> str:
    """The idempotency key: deployment, DAG, run, task, map index and try, so a retried or
    cleared task (a new try asks anew in Airflow) gets a new event.
    """
    key = "airflow-hitl:" + target_name(deployment, ti.dag_id, ti.dag_run_id, ti.task_id,
                                        str(ti.map_index), str(ti.try_number))
    if len(key) <= 500:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"airflow-hitl:{quote(deployment, safe='')}:sha256:{digest}"


def task_link(config: AirflowDeployment, ti: AirflowTaskInstance) -> str:
    """The task's "required actions" page in Airflow's UI (what Airflow's own
    ``HITLOperator.generate_link_to_ui`` builds), with the parts percent-encoded.
    """
    return (f"{config.ui}/dags/{quote(ti.dag_id, safe='')}/runs/{quote(ti.dag_run_id, safe='')}"
            f"/tasks/{quote(ti.task_id, safe='')}/required_actions?map_index={ti.map_index}")


def _is_approval(detail: HitlDetail) -> bool:
    return (not detail.params and not detail.multiple
            and sorted(detail.options) == sorted(_APPROVAL))


def _param_schema(name: str, param: Any) -> dict[str, Any]:
    """A form field from one serialized Airflow ``Param``."""
    if not isinstance(param, dict):
        return {"title": name}
    schema = dict(param.get("schema") or {}) if isinstance(param.get("schema"), dict) else {}
    schema.setdefault("title", name)
    if isinstance(param.get("description"), str) and "description" not in schema:
        schema["description"] = param["description"]
    if param.get("value") is not None:
        schema["default"] = param["value"]
    return schema


def _input_of(detail: HitlDetail) -> Any:
    options, defaults = detail.options, detail.defaults or []
    if _is_approval(detail):
        default = {"Approve": True, "Reject": False}.get(defaults[0]) if len(defaults) == 1 \
            else None
        return ApprovalInput(default=default)
    if not detail.params:
        if detail.multiple:
            return MultiChoiceInput(options=options, min_selected=1, default=defaults or None)
        return ChoiceInput(options=options, default=defaults[0] if len(defaults) == 1 else None)
    if OPTION_FIELD in detail.params:
        raise ValueError(f"params.{OPTION_FIELD}: a param of that name hides the options")
    properties = {name: _param_schema(name, p) for name, p in detail.params.items()}
    required = [name for name, field in properties.items() if "default" not in field]
    if len(options) > 1 or detail.multiple:
        choose: dict[str, Any] = {"title": "Option", "enum": options}
        if detail.multiple:
            choose = {"title": "Options", "type": "array", "items": {"enum": options},
                      "minItems": 1, "uniqueItems": True}
        if defaults:
            choose["default"] = defaults if detail.multiple else defaults[0]
        else:
            required.insert(0, OPTION_FIELD)
        properties = {OPTION_FIELD: choose, **properties}
    schema = {"type": "object", "properties": properties, "required": required}
    return FormInput(schema=schema)


def _assignees(config: AirflowDeployment, detail: HitlDetail) -> list[str]:
    found: list[str] = []
    for user in detail.assigned_users:
        name = config.users.get(user.id, user.name)
        if _ASSIGNEE.match(name):
            found.append(name)
    return found or list(config.assignees)


def event_for(deployment: str, config: AirflowDeployment, detail: HitlDetail) -> EventCreate:
    """The event that shows ``detail`` in the inbox.

    Raises:
        ValueError: the action cannot be shown as an event (e.g. a pydantic refusal of a
            param's schema); the message names the field.
    """
    ti = detail.task_instance
    prompt = detail.subject if not detail.body else f"{detail.subject}\n\n{detail.body}"
    step = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
    name = _NOT_NAME.sub("-", f"{ti.dag_id}.{ti.task_id}").lstrip("_.:@/+-")[:200] or "airflow"
    context: dict[str, Any] = {
        "airflow_deployment": deployment, "dag": ti.dag_display_name or ti.dag_id,
        "run": ti.dag_run_id, "task": ti.task_display_name or ti.task_id,
        "asked_at": detail.created_at.isoformat()}
    if ti.map_index >= 0:
        context["map_index"] = ti.map_index
    if detail.assigned_users:
        context["airflow_assigned_users"] = [u.name for u in detail.assigned_users]
    labels = {**config.labels, "airflow_deployment": deployment, "airflow_dag": ti.dag_id,
              "airflow_task": ti.task_id}
    options: list[Any] = list(detail.options)
    source = Source(orchestrator=ORCHESTRATOR, run=f"{ti.dag_id}/{ti.dag_run_id}", step=step,
                    link=task_link(config, ti),
                    params={"deployment": deployment, "dag_id": ti.dag_id, "run_id": ti.dag_run_id,
                            "task_id": ti.task_id, "map_index": ti.map_index,
                            "try_number": ti.try_number, "options": options,
                            "multiple": detail.multiple})
    return EventCreate(name=name, prompt=prompt[:_MAX_PROMPT] or name, input=_input_of(detail),
                       key=event_key(deployment, ti), context=context,
                       assignees=_assignees(config, detail), source=source, labels=labels,
                       policy=config.policy)


def answer_for(event: Event) -> tuple[list[str], dict[str, Any]] | None:
    """The ``chosen_options`` and ``params_input`` that tell Airflow the event's decision, or
    ``None`` when the decision is no answer (cancelled, expired: the action keeps waiting in
    Airflow, where it can still be answered).

    Raises:
        ValueError: a rejection of an action that has no ``Reject`` option (nothing in
            Airflow means "rejected" there).
    """
    decision = event.decision
    assert decision is not None
    if decision.outcome in (Outcome.cancelled, Outcome.expired):
        return None
    value: Any = decision.value
    spec = event.input
    listed: Any = event.source.params.get("options")
    options = [str(o) for o in listed] if isinstance(listed, list) else []
    if spec.kind == "approval":
        return (["Approve"] if value is True else ["Reject"]), {}
    if decision.outcome == Outcome.rejected:
        if "Reject" in options:
            return ["Reject"], {}
        raise ValueError(f"rejected, and the Airflow action has no Reject option "
                         f"(its options: {options})")
    if spec.kind == "choice":
        return [str(value)], {}
    if spec.kind == "multichoice":
        return [str(v) for v in value or []], {}
    if spec.kind != "form" or not isinstance(value, dict):
        raise ValueError(f"an answer of kind {spec.kind} does not map onto Airflow's options")
    properties: dict[str, Any] = spec.schema_.get("properties", {})
    chosen: Any = value.get(OPTION_FIELD, properties.get(OPTION_FIELD, {}).get("default"))
    if OPTION_FIELD not in properties:
        chosen = options[:1]
    params = {name: value.get(name, field.get("default")) for name, field in properties.items()
              if name != OPTION_FIELD}
    return ([str(c) for c in chosen] if isinstance(chosen, list) else [str(chosen)]), params


def value_of_response(event: Event, detail: HitlDetail) -> Any:
    """The value the event would have had, for an answer given in Airflow."""
    chosen = detail.chosen_options or []
    spec = event.input
    if spec.kind == "approval":
        return chosen == ["Approve"]
    if spec.kind == "choice":
        return chosen[0] if chosen else None
    if spec.kind == "multichoice":
        return chosen
    value: dict[str, Any] = dict(detail.params_input)
    if OPTION_FIELD in getattr(spec, "schema_", {}).get("properties", {}):
        value[OPTION_FIELD] = chosen if detail.multiple else (chosen[0] if chosen else None)
    return value
