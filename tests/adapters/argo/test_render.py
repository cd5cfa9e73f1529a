"""Rendering: golden manifests validated with hera's models, JSON-safe bodies, clear refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hera.workflows import DAG, Steps, Task, Workflow

from signoff.adapters.argo import (
    HubConnection,
    approval,
    input_step,
    render,
    standalone_workflow,
    template_dicts,
    validate,
)
from signoff.adapters.argo._body import body_json, to_expr

from .fake_expr import substitute
from .golden import check_golden

HUB = HubConnection(url="http://signoff.signoff.svc:8765", token_secret="signoff-token",
                    argo_ui_url="https://argo.example.com")

GATES = {
    "approval": lambda: approval(
        "approve", "Release {{workflow.parameters.version}} to production?", hub=HUB,
        timeout=3600, assignees=["group:release"], priority="high",
        context={"version": "{{workflow.parameters.version}}", "changes": 12},
        labels={"team": "payments"}),
    "input_int": lambda: input_step(
        "replicas", "How many replicas?", input={"kind": "int", "min": 1, "max": 9,
                                                 "default": 3},
        hub=HUB, timeout=600, on_timeout="default", grace=30),
    "choice": lambda: input_step(
        "region", "Deploy where?", input={"kind": "choice", "options": ["eu", "us"]}, hub=HUB),
    "container": lambda: approval(
        "approve", "Release?", hub=HubConnection(url=HUB.url, registration="container")),
    "parameters": lambda: approval(
        "approve", "Deploy {{inputs.parameters.target}}?", hub=HUB,
        parameters={"target": "staging"}, on_reject="continue"),
}


@pytest.mark.parametrize("name", sorted(GATES))
def test_rendered_templates_match_golden_and_validate(name: str) -> None:
    gate = GATES[name]()
    text = render(gate)
    check_golden(f"{name}.yaml", text)
    templates = yaml.safe_load(text)
    assert [t["name"] for t in templates] == [gate.name, f"{gate.name}-register",
                                              f"{gate.name}-wait", f"{gate.name}-verify"]
    # each template, and a workflow holding them, pass hera's models with nothing dropped
    validate({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
              "metadata": {"name": "check"},
              "spec": {"entrypoint": gate.name, "templates": templates}})


def test_standalone_workflow_matches_golden() -> None:
    check_golden("standalone.yaml", render(GATES["approval"](), workflow=True))


def test_wait_template_has_supplied_outputs_with_defaults_and_duration() -> None:
    wait = template_dicts(GATES["input_int"]())[2]
    assert wait["suspend"] == {"duration": "630"}
    assert wait["outputs"]["parameters"] == [
        {"name": "value", "valueFrom": {"default": "3", "supplied": {}}},
        {"name": "outcome", "valueFrom": {"default": "unanswered", "supplied": {}}}]
    names = [p["name"] for p in wait["inputs"]["parameters"]]
    assert names == ["signoff-event", "value", "outcome", "signoff-inbox"]
    approve_wait = template_dicts(GATES["approval"]())[2]
    value = approve_wait["inputs"]["parameters"][1]
    assert (value["default"], value["enum"]) == ("false", ["true", "false"])


TRICKY = 'say "hi" \\ then\nnew line, {braces}, ünïcode'


def test_body_is_valid_json_whatever_argo_substitutes() -> None:
    gate = approval("approve", "Deploy {{inputs.parameters.target}} ({{workflow.name}})?",
                    hub=HUB, parameters=["target"],
                    context={"target": "{{inputs.parameters.target}}", "fixed": TRICKY})
    body = template_dicts(gate)[1]["http"]["body"]
    scope = {"workflow.name": "wf-x", "workflow.namespace": "argo", "workflow.uid": "u-1",
             "inputs.parameters.signoff-key": f"argo:u-1:wf-x[0].approve(0:{TRICKY})",
             "inputs.parameters.signoff-node": f"wf-x[0].approve(0:{TRICKY})",
             "inputs.parameters.target": TRICKY}
    sent = json.loads(substitute(body, scope))
    assert sent["prompt"] == f"Deploy {TRICKY} (wf-x)?"
    assert sent["context"] == {"target": TRICKY, "fixed": TRICKY}
    assert sent["key"] == f"argo:u-1:wf-x[0].approve(0:{TRICKY})"
    assert sent["source"]["params"]["node_field_selector"] == (
        "inputs.parameters.signoff-event.value={event_id}")
    assert sent["source"]["link"] == "https://argo.example.com/workflows/argo/wf-x"


@pytest.mark.parametrize(("text", "expected"), [
    ("plain", None),
    ("{{workflow.name}}", "workflow.name"),
    ("a{{inputs.parameters.my-p}}b", "'a' + inputs.parameters['my-p'] + 'b'"),
    ("it's {{workflow.labels.app.kubernetes.io/name}}",
     "'it\\'s ' + workflow.labels['app.kubernetes.io/name']"),
    ("{{=asInt(inputs.parameters.n) + 1}}", "string(asInt(inputs.parameters.n) + 1)"),
])
def test_tags_become_expressions(text: str, expected: str | None) -> None:
    assert to_expr(text) == expected


@pytest.mark.parametrize(("body", "message"), [
    ({"prompt": "a }} b"}, "body.prompt: unbalanced"),
    ({"prompt": "{{ }}"}, "body.prompt: empty tag"),
    ({"context": {"{{x}}": 1}}, "body.context.{{x}}: Argo tags are not allowed in keys"),
    ({"prompt": "@@signoff-argo-expr-0@@"}, "body.prompt: the text .@@signoff-argo-expr-. is"),
])
def test_bodies_argo_would_misread_are_refused(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("{", r"\{").replace("}", r"\}")):
        body_json(body)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: approval("Approve_Release", "?", hub=HUB), "name: expected lower-case letters"),
    (lambda: approval("approve", "?", hub=HUB, on_reject="skip"), "on_reject: expected 'fail' or"),
    (lambda: approval("approve", "?", hub=HUB, grace=-1), "grace: expected seconds >= 0"),
    (lambda: approval("approve", "?", hub=HUB, timeout=-5), "timeout"),
    (lambda: approval("approve", "?", hub=HUB, assignees=["bad name"]), "assignee 'bad name'"),
    (lambda: input_step("ask", "?", hub=HUB, input={"kind": "choice"}), "options"),
    (lambda: approval("approve", "?", hub=HUB, parameters=["signoff-key"]), "parameters: 'signoff-key'"),
    (lambda: HubConnection(url="signoff:8765"), "url: expected the hub's http"),
    (lambda: HubConnection(url=HUB.url, registration="pod"), "registration: expected 'http' or"),
])
def test_bad_gate_options_are_refused_naming_the_field(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_in_a_workflow_context_templates_are_added_once() -> None:
    with Workflow(generate_name="release-", entrypoint="main") as w:
        gate = approval("approve", "Release?", hub=HUB)
        with Steps(name="main"):
            gate.step()
            gate.step("approve-again")
        with DAG(name="dag"):
            task = gate()
            second = gate.task("second", depends="approve")
    assert isinstance(task, Task) and second.depends == "approve"
    manifest = w.to_dict()
    names = [t["name"] for t in manifest["spec"]["templates"]]
    assert names == ["approve", "approve-register", "approve-wait", "approve-verify", "main",
                     "dag"]
    assert [s["name"] for g in manifest["spec"]["templates"][4]["steps"] for s in g] == [
        "approve", "approve-again"]
    validate(manifest)


def test_gate_helpers() -> None:
    gate = approval("approve", "?", hub=HUB, parameters=["target"])
    assert gate.when() == "{{steps.approve.outputs.parameters.value}} == true"
    assert gate.when("x", dag=True) == "{{tasks.x.outputs.parameters.value}} == true"
    with pytest.raises(ValueError, match=r"arguments: gate 'approve' takes \['target'\]"):
        gate.step(arguments={"other": "1"})
    with pytest.raises(TypeError, match="asks for int, not an approval"):
        input_step("n", "?", hub=HUB, input=int).when()


def test_validate_catches_what_hera_would_drop() -> None:
    manifest = standalone_workflow(approval("approve", "?", hub=HUB))
    validate(manifest)
    manifest["spec"]["templates"][3]["suspend"]["durration"] = "5"
    with pytest.raises(ValueError, match=r"spec.templates\[3\].suspend.durration: not a field"):
        validate(manifest)
    with pytest.raises(ValueError, match="kind: expected one of"):
        validate({"kind": "Pod"})
    with pytest.raises(ValueError, match="not valid for Argo"):
        validate({"kind": "Workflow", "spec": {"templates": "none"}})


def test_validate_takes_what_argo_takes_and_names_every_problem_at_once() -> None:
    manifest = standalone_workflow(approval("approve", "?", hub=HUB))
    manifest["spec"]["templates"].append({"name": "work", "container": {
        "image": "busybox", "resources": {"limits": {"cpu": 1, "memory": "64Mi"},
                                          "requests": {"cpu": 0.5}}}})
    validate(manifest)  # Kubernetes takes a number for a quantity: so does validate
    manifest["spec"]["templates"][3]["suspend"]["durration"] = "5"
    manifest["spec"]["entrypointt"] = "main"
    with pytest.raises(ValueError) as refused:
        validate(manifest)
    message = str(refused.value)
    assert "\n" not in message
    assert "spec.entrypointt: not a field Argo knows" in message
    assert "spec.templates[3].suspend.durration: not a field Argo knows" in message
    with pytest.raises(ValueError) as refused:  # a number where Argo takes only a string
        validate({"kind": "Workflow", "metadata": {"name": "x"},
                  "spec": {"templates": [{"name": 3, "container": {"image": 4}}]}})
    assert "spec.templates[0].name: Input should be a valid string, got 3" in str(refused.value)
    assert "spec.templates[0].container.image: Input should be a valid string, got 4" in str(
        refused.value)
