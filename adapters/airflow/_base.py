"""What the three sensors share: ask the hub, defer to the trigger, read the decision.

The subclasses in :mod:`.sensors` decide only what an answer and a rejection mean for them
(:meth:`_SignoffSensor.answered`, :meth:`_SignoffSensor.rejected`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import quote

import pydantic
from airflow.sdk import BaseSensorOperator
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)
from airflow.sdk.log import mask_secret

from signoff import (
    ApprovalInput,
    Client,
    Decision,
    Event,
    Forbidden,
    HubError,
    HubUnavailable,
    InputSpec,
    InvalidInput,
    Outcome,
    Source,
    Unauthenticated,
    input_spec,
)
from signoff.adapters import _hub

from .exceptions import SignoffCancelled, SignoffExpired, SignoffRejected
from .hook import TOKEN_ENV, HubCredentials, SignoffHook
from .triggers import SignoffTrigger

_NOT_NAME = re.compile(r"[^A-Za-z0-9_.:@/+-]+")


class _SignoffSensor(BaseSensorOperator):
    """What the three sensors share: ask, defer, and read the decision.

    Args:
        prompt: the question shown to the reviewer (templated).
        context: JSON shown beside the prompt (templated).
        assignees: user names and ``group:NAME``; empty means anyone (templated).
        priority: ``low``, ``normal``, ``high`` or ``urgent``.
        timeout: how long the question stays open (timedelta or seconds); ``None``: no deadline.
        on_timeout: what the deadline decides: ``reject``, ``default`` (the input's default)
            or ``fail`` (the task fails).
        labels: free labels for the hub's filters (templated).
        recommendation: what the automation before this step suggests (templated).
        confidence: how sure that automation is, 0..1.
        event_name: a short name for the event (default ``<dag_id>.<task_id>``).
        conn_id: the ``signoff`` Airflow connection; ``SIGNOFF_URL``/``SIGNOFF_TOKEN`` when
            it is not defined.
        trigger_token: how the trigger finds the token: ``connection`` (default: it reads
            ``conn_id`` itself when it starts; with no such connection, ``SIGNOFF_TOKEN`` of
            the triggerer), ``env`` (always ``SIGNOFF_TOKEN`` of the triggerer) or ``kwargs``
            (the token among the trigger's arguments, which Airflow 3.3 stores unencrypted).
        ask_again_on_clear: clearing the task in Airflow asks again (a new event); retries
            always reuse the event.
        airflow_base_url: the Airflow UI address for the link shown in the hub (default
            ``[api] base_url``; no link when neither is set).
        deadline_grace: how long after the hub's deadline the trigger itself gives up
            (it only matters when the hub cannot be reached at the deadline).
        hub_retry_for: how long ``execute`` retries a hub it cannot reach, in seconds.
        poll_seconds: the length of one long-poll of the trigger.
        settle_seconds: the shortest life, under a triggerer, of a trigger whose event goes
            back to a worker (default 0; see
            :class:`~signoff.adapters.airflow.triggers.SignoffTrigger`).
    """

    template_fields: Sequence[str] = ("prompt", "context", "assignees", "labels",
                                      "recommendation")
    template_fields_renderers = {"context": "json", "recommendation": "json"}
    ui_color = "#fdf1d6"
    on_reject: str = "fail"

    def __init__(self, *, prompt: str, input: Any = None,
                 context: Mapping[str, Any] | None = None, assignees: Sequence[str] = (),
                 priority: str = "normal", timeout: timedelta | float | None = None,
                 on_timeout: Literal["reject", "default", "fail"] = "reject",
                 labels: Mapping[str, str] | None = None, recommendation: Any = None,
                 confidence: float | None = None, event_name: str | None = None,
                 conn_id: str = SignoffHook.default_conn_name,
                 trigger_token: Literal["connection", "env", "kwargs"] = "connection",
                 ask_again_on_clear: bool = True, airflow_base_url: str | None = None,
                 deadline_grace: timedelta = timedelta(minutes=5), hub_retry_for: float = 60.0,
                 poll_seconds: float = 55.0, settle_seconds: float = 0.0,
                 **kwargs: Any) -> None:
        response_timeout = (timedelta(seconds=timeout) if isinstance(timeout, (int, float))
                            else timeout)
        if response_timeout is not None and response_timeout.total_seconds() <= 0:
            raise ValueError(f"timeout: expected a positive duration, got {timeout!r}")
        if response_timeout is not None:
            kwargs["timeout"] = response_timeout
        super().__init__(**kwargs)
        self.prompt = prompt
        try:
            self.input_spec: InputSpec = input_spec(
                ApprovalInput() if input is None else input)
        except (TypeError, pydantic.ValidationError) as exc:
            raise ValueError(f"input: {exc}") from exc
        if on_timeout not in ("reject", "default", "fail"):
            raise ValueError(f"on_timeout: expected 'reject', 'default' or 'fail', "
                             f"got {on_timeout!r}")
        if on_timeout == "default" and self.input_spec.default is None:
            raise ValueError("on_timeout='default' needs a default in the input spec")
        if trigger_token not in ("connection", "env", "kwargs"):
            raise ValueError(f"trigger_token: expected 'connection', 'env' or 'kwargs', "
                             f"got {trigger_token!r}")
        self.context = dict(context or {})
        self.assignees = list(assignees)
        self.priority = priority
        self.response_timeout = response_timeout
        self.on_timeout = on_timeout
        self.labels = dict(labels or {})
        self.recommendation = recommendation
        self.confidence = confidence
        self.event_name = event_name
        self.conn_id = conn_id
        self.trigger_token = trigger_token
        self.ask_again_on_clear = ask_again_on_clear
        self.airflow_base_url = airflow_base_url
        self.deadline_grace = deadline_grace
        self.hub_retry_for = hub_retry_for
        self.poll_seconds = poll_seconds
        self.settle_seconds = settle_seconds

    # asking ---------------------------------------------------------------------------------
    def event_key(self, context: Any) -> str:
        """The idempotency key: the same for every try of this task instance."""
        ti = context["ti"]
        key = f"airflow:{ti.dag_id}:{ti.run_id}:{ti.task_id}:{ti.map_index}"
        clears = getattr(context.get("dag_run"), "clear_number", 0) or 0
        if self.ask_again_on_clear and clears:
            key += f":clear{clears}"
        return key

    def _link(self, ti: Any) -> str | None:
        base = self.airflow_base_url or conf.get("api", "base_url", fallback=None)
        if not base:
            return None
        mapped = f"/mapped/{ti.map_index}" if ti.map_index is not None and ti.map_index >= 0 else ""
        return (f"{base.rstrip('/')}/dags/{quote(ti.dag_id)}/runs/{quote(ti.run_id, safe='')}"
                f"/tasks/{quote(ti.task_id)}{mapped}")

    def _event_fields(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        name = self.event_name or f"{ti.dag_id}.{ti.task_id}"
        name = _NOT_NAME.sub("-", name).lstrip("_.:@/+-")[:200] or "airflow"
        step = ti.task_id if ti.map_index is None or ti.map_index < 0 else \
            f"{ti.task_id}[{ti.map_index}]"
        return {
            "name": name, "prompt": self.prompt, "input": self.input_spec,
            "key": self.event_key(context), "context": self.context,
            "assignees": self.assignees, "priority": self.priority,
            "timeout": None if self.response_timeout is None
            else self.response_timeout.total_seconds(),
            "on_timeout": self.on_timeout, "labels": self.labels,
            "recommendation": self.recommendation, "confidence": self.confidence,
            "source": Source(orchestrator="airflow", run=f"{ti.dag_id}/{ti.run_id}", step=step,
                             link=self._link(ti),
                             params={"dag_id": ti.dag_id, "run_id": ti.run_id,
                                     "task_id": ti.task_id, "map_index": ti.map_index,
                                     "try_number": ti.try_number}),
        }

    def _ask(self, context: Any) -> tuple[Event, HubCredentials]:
        try:
            creds = SignoffHook(self.conn_id).credentials()
        except ValueError as exc:  # a connection that does not name a hub
            raise AirflowFailException(f"signoff: {exc}") from exc
        if creds.token:
            mask_secret(creds.token)
        fields = self._event_fields(context)
        where = f"the signoff hub at {creds.url} (from {creds.origin})"
        try:
            with Client(creds.url, creds.token, retry_for=self.hub_retry_for) as client:
                event = client.create(**fields)
                if event.decision is not None:  # decided at once: verified before it is used
                    client.verified(event.id, event.decision)
        except pydantic.ValidationError as exc:
            raise AirflowFailException(f"signoff: the event of task {self.task_id} is not "
                                       f"valid: {_errors(exc)}") from exc
        except InvalidInput as exc:
            raise AirflowFailException(f"signoff: {where} refused the event: {exc}") from exc
        except (Unauthenticated, Forbidden) as exc:
            raise AirflowFailException(f"signoff: {where} refused the token: {exc}") from exc
        except (HubUnavailable, HubError) as exc:
            raise AirflowException(f"signoff: {where} could not create the event: {exc}") from exc
        return event, creds

    def execute(self, context: Any) -> Any:
        """Ask (or find the earlier question), then return at once or defer to the trigger."""
        event, creds = self._ask(context)
        context["ti"].xcom_push(key="signoff_event",
                                value={"id": event.id, "key": event.key, "hub_url": creds.url})
        if event.decision is not None:
            self.log.info("signoff event %s is already decided (%s)", event.id,
                          event.decision.outcome.value)
            return self._complete(context, event.id, event.decision)
        self.log.info(_hub.WAITING, _hub.inbox_url(creds.url, event.id))
        deadline = None if event.deadline is None else event.deadline + self.deadline_grace
        trigger = SignoffTrigger(
            hub_url=creds.url, event_id=event.id,
            deadline=None if deadline is None else deadline.astimezone(timezone.utc).isoformat(),
            poll_seconds=self.poll_seconds, settle_seconds=self.settle_seconds,
            finish=self.finish_in_trigger(), push_return=bool(self.do_xcom_push),
            **self._token_source(creds))  # type: ignore[arg-type]  # str | None fields only
        # Airflow's own deferral timeout only backs the trigger's deadline up
        backstop = None if deadline is None else \
            deadline - datetime.now(timezone.utc) + timedelta(minutes=1)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=backstop)

    def finish_in_trigger(self) -> str:
        """Which answers the trigger may end the task with itself (see ``SignoffTrigger``):
        any answer, as long as :meth:`answered` is this class's (it returns the value).
        """
        return "value" if type(self).answered is _SignoffSensor.answered else ""

    def _token_source(self, creds: HubCredentials) -> dict[str, str | None]:
        """Tell the trigger where the token is, keeping it out of its stored arguments."""
        if self.trigger_token == "kwargs":
            return {"token": creds.token}
        if self.trigger_token == "env" or creds.origin == "environment":
            return {"token_env": creds.token_env or TOKEN_ENV}
        return {"conn_id": self.conn_id}

    # answering ------------------------------------------------------------------------------
    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Resume from the trigger: the decision, or why there is none."""
        if not event:
            raise AirflowException("signoff: the trigger ended without an event")
        status = event.get("status")
        if status == "decided":
            decision = Decision.model_validate(event["decision"])
            return self._complete(context, event["event_id"], decision)
        if status == "timeout":
            raise AirflowSensorTimeout(f"signoff: {event.get('message')}")
        raise AirflowException(f"signoff: {event.get('message', event)}")

    def _complete(self, context: Any, event_id: str, decision: Decision) -> Any:
        context["ti"].xcom_push(key="signoff_decision",
                                value={"event_id": event_id, **decision.model_dump(mode="json")})
        who = f"by {decision.by}" + (f": {decision.comment}" if decision.comment else "")
        about = f"{self.prompt!r} (signoff event {event_id})"
        if decision.outcome == Outcome.expired:
            raise SignoffExpired(f"signoff: nobody answered {about} before the deadline "
                                 f"({who})", decision)
        if decision.outcome == Outcome.cancelled:
            raise SignoffCancelled(f"signoff: {about} was cancelled {who}", decision)
        if decision.outcome == Outcome.rejected:
            self.log.info("signoff: %s was rejected %s", about, who)
            return self.rejected(context, decision, f"signoff: {about} was rejected {who}")
        self.log.info("signoff: %s was answered %s: %r", about, who, decision.value)
        return self.answered(context, decision)

    def answered(self, context: Any, decision: Decision) -> Any:
        """What the task returns for an answer (approved, answered, default on timeout)."""
        return decision.value

    def rejected(self, context: Any, decision: Decision, message: str) -> Any:
        """What a rejection does: fail, unless ``on_reject`` says otherwise."""
        if self.on_reject == "skip":
            raise AirflowSkipException(message)
        raise SignoffRejected(message, decision)


def _errors(exc: pydantic.ValidationError, whole: bool = True) -> str:
    """Each error as ``field: message (got value)``; model-wide ones without the value."""
    parts = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(p) for p in error["loc"])
        if where:
            parts.append(f"{where}: {message} (got {error.get('input')!r})")
        else:
            parts.append(f"event: {message}" if whole else message)
    return "; ".join(parts)
