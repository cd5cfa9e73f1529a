"""Gates as hera templates: ``approval(...)`` and ``input_step(...)``.

A gate named ``approve`` is four templates and one step:

```
approve            steps: [register], [wait], [verify]; outputs value, outcome
approve-register   http POST /api/v1/events (or a curl container); result = the event JSON
approve-wait       suspend; inputs signoff-event (the event id), value, outcome;
                   outputs value, outcome: valueFrom.supplied with a default
approve-verify     container: signoff verify-decision on the wait's outputs (see _steps.py)
```

The wait step gets the event id with ``{{=jsonpath(steps.register.outputs.result, '$.id')}}``:
the hub assigns ids, so the id cannot be known before registration, and selecting the node by
its id keeps the hub's field selector short and free of the node names and loop items that a
key-based selector would have to escape. The key (``argo:<workflow uid>:<node name>``) is
built in the ``approve`` steps template from ``{{node.name}}``, so a retried register attempt
(a child node with another name) still sends the same key and gets the same event back.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from signoff.adapters.argo._common import ArgoExtraMissing

try:
    from hera.workflows import (
        DAG,
        HTTP,
        Parameter,
        RetryStrategy,
        Script,
        Step,
        Steps,
        Suspend,
        Task,
        Workflow,
        models,
    )
    from hera.workflows._context import _context
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ArgoExtraMissing("hera") from exc

from signoff import ApprovalInput, EventCreate, input_spec
from signoff.adapters.argo._body import body_json
from signoff.adapters.argo._common import (
    EVENT_PARAM,
    INBOX_PARAM,
    KEY_PARAM,
    NODE_PARAM,
    OUTPUTS,
    UNANSWERED,
    OnReject,
    check_gate_name,
    default_value,
)
from signoff.adapters.argo._steps import check_auth, register_auth, verify_template

__all__ = ["ArgoGate", "HubConnection", "approval", "input_step"]

_EVENT_ID = "{{=jsonpath(steps.register.outputs.result, '$.id')}}"


@dataclass(frozen=True)
class HubConnection:
    """How the workflow reaches the hub, and where its token lives.

    Args:
        url: the hub's base URL as seen from the cluster (Argo tags allowed); required, there
            is no default address (``--hub-url`` in ``signoff argo``).
        token_secret: the Kubernetes Secret, in the workflow's namespace, holding the token.
        token_key: the key in that Secret; its value is the whole header value,
            ``Bearer <token>`` (an ``http`` template header takes a Secret value verbatim).
        registration: ``http`` (an Argo ``http`` template, run by the Argo agent, no image) or
            ``container`` (a curl container, for clusters without the agent).
        image: the image of the ``container`` registration; it needs ``sh`` and ``curl``.
        argo_ui_url: the Argo UI's base URL, to link the workflow from the inbox.
        public_url: the hub's URL as reviewers open it (default ``url``); the waiting node
            shows its inbox page, ``<public_url>/events/<id>``, as its ``signoff-inbox`` input.
        insecure_skip_verify: skip TLS verification of the hub (``http`` registration only).
        auth: ``secret`` (the token from ``token_secret``) or ``workload``: no Secret at all;
            the register and verify containers present a projected service-account token
            (audience ``audience``) that the hub checks as workload identity
            (``docs/identity.md``). ``workload`` needs ``registration="container"``: an
            ``http`` template runs in Argo's agent, which cannot present a pod's token.
        audience: the projected token's audience (the hub's workload issuer's ``audience``).
        token_expiration: the projected token's lifetime in seconds (the kubelet renews it).
        verify: add the ``<name>-verify`` step after the suspend node, which checks the
            node's value against the hub's signed decision (:mod:`.verify`) and fails the gate
            on anything set outside signoff.
        verify_image: the image of that step; it needs ``signoff`` (the hub's image has it).
        keys: the hub's public keys to pin in the workflow (the JSON ``signoff keys``
            prints, as text or a mapping); without them the step fetches ``/api/v1/keys``.
    """

    url: str = ""
    token_secret: str = "signoff-token"
    token_key: str = "authorization"
    registration: Literal["http", "container"] = "http"
    image: str = "curlimages/curl:8.11.1"
    argo_ui_url: str | None = None
    public_url: str | None = None
    insecure_skip_verify: bool = False
    auth: Literal["secret", "workload"] = "secret"
    audience: str = "signoff"
    token_expiration: int = 3600
    verify: bool = True
    verify_image: str = "signoff:0.1.0"
    keys: str | Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.url:
            # a guessed default would render a workflow that fails only in the cluster, at its
            # first gate; naming the setting here fails where the manifest is built
            raise ValueError("url: expected the hub's http(s) URL as seen from the cluster, "
                             "e.g. HubConnection(url='http://signoff.signoff.svc:8765') or "
                             "--hub-url; got nothing")
        check_auth(self)
        if self.registration not in ("http", "container"):
            raise ValueError(f"registration: expected 'http' or 'container', "
                             f"got {self.registration!r}")
        if not self.url.startswith(("http://", "https://", "{{")):
            raise ValueError(f"url: expected the hub's http(s) URL, got {self.url!r}")
        if self.public_url is not None and not self.public_url.startswith(
                ("http://", "https://", "{{")):
            raise ValueError(f"public_url: expected the hub's http(s) URL, "
                             f"got {self.public_url!r}")
        if self.registration == "container" and "'" in self.url:
            raise ValueError(f"url: a container registration quotes the URL for sh; expected "
                             f"no ' in it, got {self.url!r}")


@dataclass(frozen=True)
class ArgoGate:
    """A rendered gate: its templates, and the step or task that calls it."""

    name: str
    kind: str
    templates: tuple[Any, ...]
    parameters: tuple[str, ...] = field(default=())

    def step(self, name: str | None = None, *, arguments: Mapping[str, str] | None = None,
             **kwargs: Any) -> Step:
        """A ``Step`` calling the gate (added to the current ``Steps`` context, if any)."""
        return Step(name=name or self.name, template=self.name,
                    arguments=self._arguments(arguments), **kwargs)

    def task(self, name: str | None = None, *, arguments: Mapping[str, str] | None = None,
             **kwargs: Any) -> Task:
        """A DAG ``Task`` calling the gate (added to the current ``DAG`` context, if any)."""
        return Task(name=name or self.name, template=self.name,
                    arguments=self._arguments(arguments), **kwargs)

    def __call__(self, name: str | None = None, **kwargs: Any) -> Step | Task:
        """A task inside a ``DAG`` context, a step anywhere else."""
        pieces = _context.pieces or []
        if pieces and isinstance(pieces[-1], DAG):
            return self.task(name, **kwargs)
        return self.step(name, **kwargs)

    def value(self, step: str | None = None, *, dag: bool = False) -> str:
        """``{{steps.<step>.outputs.parameters.value}}`` (``tasks.`` with ``dag=True``)."""
        return f"{{{{{'tasks' if dag else 'steps'}.{step or self.name}.outputs.parameters.value}}}}"

    def when(self, step: str | None = None, *, dag: bool = False) -> str:
        """The ``when`` that runs a step only after an approval: ``<value> == true``."""
        if self.kind not in ("approval", "bool"):
            raise TypeError(f"when: gate {self.name!r} asks for {self.kind}, not an approval")
        return f"{self.value(step, dag=dag)} == true"

    def _arguments(self, given: Mapping[str, str] | None) -> list[Parameter] | None:
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.parameters))
        if unknown:
            raise ValueError(f"arguments: gate {self.name!r} takes {list(self.parameters)}, "
                             f"got {unknown}")
        return [Parameter(name=k, value=str(v)) for k, v in given.items()] or None


def approval(name: str, prompt: str, **options: Any) -> ArgoGate:
    """A gate that asks to approve or reject; ``value`` is ``true`` or ``false``.

    A rejection fails the gate's node (so the workflow stops) unless ``on_reject="continue"``;
    then the node succeeds with ``value`` ``false`` and steps branch with ``when=gate.when()``.
    Takes the same options as :func:`input_step`.
    """
    return input_step(name, prompt, input=ApprovalInput(), **options)


def input_step(
    name: str,
    prompt: str,
    *,
    input: Any = str,  # noqa: A002 - the event's field name
    hub: HubConnection | None = None,
    timeout: float | None = None,
    on_timeout: Literal["default", "reject", "fail"] = "reject",
    on_reject: OnReject = "fail",
    grace: float = 60.0,
    context: Mapping[str, Any] | None = None,
    assignees: Sequence[str] = (),
    priority: str = "normal",
    labels: Mapping[str, str] | None = None,
    recommendation: Any = None,
    confidence: float | None = None,
    impact: str | None = None,
    policy: Mapping[str, Any] | None = None,
    parameters: Mapping[str, str | None] | Sequence[str] = (),
) -> ArgoGate:
    """A gate that asks for a typed answer; ``value`` carries it as a string.

    Args:
        name: the gate's template and step name (a DNS label).
        prompt: the question; Argo tags such as ``{{workflow.parameters.version}}`` or
            ``{{inputs.parameters.NAME}}`` (a declared parameter) are resolved by Argo.
        input: a type, pydantic model, dict spec or input spec (as for ``Client.create``).
        hub: where the hub is and where the token lives (required).
        timeout: seconds until the hub's deadline; Argo's own ``duration`` is this plus
            ``grace``, a backstop that resumes the node with the defaults (``false`` for an
            approval) if the hub's decision never arrives.
        on_timeout: what the hub's deadline does (``default``, ``reject`` or ``fail``).
        on_reject: ``fail`` the node on a rejection, or ``continue`` with ``value`` false.
        grace: seconds Argo waits past the hub's deadline before giving up on its own.
        context: JSON shown to reviewers (strings may hold Argo tags).
        assignees: users and ``group:NAME``; empty means anyone.
        priority: ``low``, ``normal``, ``high`` or ``urgent``.
        labels: the event's labels.
        recommendation: what the automation before the gate recommends.
        confidence: how sure that recommendation is, 0 to 1.
        impact: ``low``, ``medium``, ``high`` or ``critical``; the hub's policies key on it
            (``batch_refused_impacts``: a high-impact gate is never decided in a batch).
        policy: the event's policy (``{"forbid_batch": True}``, ``{"quorum": 2}``...).
        parameters: names of extra inputs of the gate (a mapping gives them defaults) that
            the prompt and context may use as ``{{inputs.parameters.NAME}}``.

    Raises:
        ValueError: a field is not what was expected (the message names it).
    """
    check_gate_name(name)
    if hub is None:
        raise ValueError("hub: expected HubConnection(url=...) naming the hub's URL as seen "
                         "from the cluster (--hub-url in signoff argo); got nothing")
    spec = input_spec(input)
    if on_reject not in ("fail", "continue"):
        raise ValueError(f"on_reject: expected 'fail' or 'continue', got {on_reject!r}")
    if grace < 0:
        raise ValueError(f"grace: expected seconds >= 0, got {grace!r}")
    declared = dict(parameters) if isinstance(parameters, Mapping) else dict.fromkeys(parameters)
    for reserved in (KEY_PARAM, NODE_PARAM):
        if reserved in declared:
            raise ValueError(f"parameters: {reserved!r} is reserved")
    # the event is checked here, so a bad field fails at render time, not in the cluster
    event = EventCreate(
        name=name, prompt=prompt, input=spec, key="argo:check", context=dict(context or {}),
        assignees=list(assignees), priority=priority, timeout=timeout,  # type: ignore[arg-type]
        on_timeout=on_timeout, labels=dict(labels or {}), recommendation=recommendation,
        confidence=confidence, impact=impact, policy=policy)  # type: ignore[arg-type]
    body = _event_body(event, hub, on_reject)

    def build() -> tuple[Any, ...]:
        templates: tuple[Any, ...] = (
            _wrapper(name, declared, hub.public_url or hub.url, hub.verify),
            _register(name, hub, body, tuple(declared)), _wait(name, spec, timeout, grace))
        if hub.verify:
            templates += (verify_template(name, hub, default_value(spec)),)
        return templates

    # built outside any hera context, so nothing lands in the user's Steps or DAG by itself
    templates = contextvars.Context().run(build)
    gate = ArgoGate(name=name, kind=spec.kind, templates=templates, parameters=tuple(declared))
    pieces = _context.pieces or []
    if pieces and isinstance(pieces[0], Workflow):
        present = {getattr(t, "name", None) for t in pieces[0].templates}
        pieces[0].templates.extend(t for t in templates if t.name not in present)
    return gate


def _event_body(event: EventCreate, hub: HubConnection, on_reject: str) -> str:
    body = event.model_dump(mode="json", by_alias=True, exclude_none=True,
                            exclude={"key", "source"})
    source: dict[str, Any] = {
        "orchestrator": "argo",
        "run": "{{workflow.namespace}}/{{workflow.name}}",
        "step": f"{{{{inputs.parameters.{NODE_PARAM}}}}}",
        "params": {
            "namespace": "{{workflow.namespace}}",
            "workflow": "{{workflow.name}}",
            "uid": "{{workflow.uid}}",
            "node": f"{{{{inputs.parameters.{NODE_PARAM}}}}}",
            "node_field_selector": f"inputs.parameters.{EVENT_PARAM}.value={{event_id}}",
            "outputs": list(OUTPUTS),
            "on_reject": on_reject,
        },
    }
    if hub.argo_ui_url:
        source["link"] = (hub.argo_ui_url.rstrip("/")
                          + "/workflows/{{workflow.namespace}}/{{workflow.name}}")
    ordered = {"name": body.pop("name"), "prompt": body.pop("prompt"),
               "key": f"{{{{inputs.parameters.{KEY_PARAM}}}}}", **body, "source": source}
    return body_json(ordered)


def _wrapper(name: str, declared: Mapping[str, str | None], public_url: str,
             verify: bool) -> Steps:
    passed = [Parameter(name=p, value=f"{{{{inputs.parameters.{p}}}}}") for p in declared]
    key = "argo:{{workflow.uid}}:{{node.name}}"
    # the gate succeeds (and its outputs exist) only once the verify step accepted the node's
    # outputs as the hub's signed decision
    check = [Step(name="verify", template=f"{name}-verify", arguments=[
        Parameter(name=EVENT_PARAM, value=_EVENT_ID), Parameter(name=KEY_PARAM, value=key),
        *(Parameter(name=o, value=f"{{{{steps.wait.outputs.parameters.{o}}}}}")
          for o in OUTPUTS)])] if verify else []
    return Steps(
        name=name,
        inputs=[Parameter(name=p, default=d) if d is not None else Parameter(name=p)
                for p, d in declared.items()] or None,
        outputs=[Parameter(name=o, value_from=models.ValueFrom(
            parameter=f"{{{{steps.wait.outputs.parameters.{o}}}}}")) for o in OUTPUTS],
        sub_steps=[
            Step(name="register", template=f"{name}-register", arguments=[
                Parameter(name=KEY_PARAM, value=key),
                Parameter(name=NODE_PARAM, value="{{node.name}}"),
                *passed,
            ]),
            Step(name="wait", template=f"{name}-wait",
                 arguments=[Parameter(name=EVENT_PARAM, value=_EVENT_ID),
                            Parameter(name=INBOX_PARAM,
                                      value=f"{public_url.rstrip('/')}/events/{_EVENT_ID}")]),
            *check,
        ],
    )


def _register(name: str, hub: HubConnection, body: str, declared: tuple[str, ...]) -> Any:
    inputs = [Parameter(name=KEY_PARAM), Parameter(name=NODE_PARAM),
              *(Parameter(name=p) for p in declared)]
    url = hub.url.rstrip("/") + "/api/v1/events"
    # the key makes every attempt idempotent, so retrying on any failure is safe
    # parsed from plain data: hera 5's models are pydantic-v1 style, hera 7's are v2
    backoff_data = {"duration": "5s", "factor": 2, "maxDuration": "5m"}
    parse = getattr(models.Backoff, "model_validate", None) or models.Backoff.parse_obj
    retry = RetryStrategy(limit=5, retry_policy="Always", backoff=parse(backoff_data))
    if hub.registration == "container":
        authorization, auth = register_auth(hub)
        source = (
            "set -eu\n"
            f"{authorization}"
            f"curl -sS --fail-with-body --retry 5 --retry-connrefused -X POST '{url}' \\\n"
            '  -H "Authorization: ${AUTHORIZATION}" \\\n'
            "  -H 'Content-Type: application/json' --data-binary @- <<'SIGNOFF_EVENT'\n"
            f"{body}\nSIGNOFF_EVENT\n"
        )
        return Script(name=f"{name}-register", inputs=inputs, image=hub.image, command=["sh"],
                      source=source, retry_strategy=retry, **auth)
    secret = models.HTTPHeaderSource(secret_key_ref=models.SecretKeySelector(
        name=hub.token_secret, key=hub.token_key))
    return HTTP(
        name=f"{name}-register",
        inputs=inputs,
        url=url,
        method="POST",
        headers=[models.V1alpha1HTTPHeader(name="Content-Type", value="application/json"),
                 models.V1alpha1HTTPHeader(name="Authorization", value_from=secret)],
        body=body,
        success_condition="response.statusCode == 201 || response.statusCode == 200",
        timeout_seconds=30,
        insecure_skip_verify=hub.insecure_skip_verify or None,
        retry_strategy=retry,
    )


def _wait(name: str, spec: Any, timeout: float | None, grace: float) -> Suspend:
    default = default_value(spec)
    enum = None
    if spec.kind in ("approval", "bool"):
        enum = ["true", "false"]
    elif spec.kind == "choice":
        enum = list(spec.options)
    duration = str(math.ceil(timeout + grace)) if timeout is not None else None
    return Suspend(
        name=f"{name}-wait",
        duration=duration,
        inputs=[
            Parameter(name=EVENT_PARAM, description="The signoff event this node waits for."),
            Parameter(name="value", default=default, enum=enum,
                      description="Answer in the signoff inbox: an answer given here bypasses "
                                  "the hub and its audit trail."),
            Parameter(name="outcome", default=UNANSWERED),
            Parameter(name=INBOX_PARAM, description="signoff: waiting for an answer in the "
                                                    "inbox at this URL."),
        ],
        outputs=[
            Parameter(name="value", value_from=models.ValueFrom(
                supplied=models.SuppliedValueFrom(), default=default)),
            Parameter(name="outcome", value_from=models.ValueFrom(
                supplied=models.SuppliedValueFrom(), default=UNANSWERED)),
        ],
    )
