"""``wrap``: an approval inserted before a named step of an existing manifest."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hera.workflows import models

from signoff.adapters.argo import HubConnection, approval, input_step, validate, wrap
from signoff.adapters.argo._manifest import dump_yaml

from .conftest import ArgoWorld
from .golden import check_golden
from .helpers import answer, outputs

SEED = Path(__file__).parent / "data" / "suspend-template.yaml"
HUB = HubConnection(url="http://signoff.signoff.svc:8765")


def seed() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SEED.read_text())
    return loaded


def test_seed_suspend_template_is_wrapped_before_release() -> None:
    original = seed()
    validate(original)
    wrapped = wrap(original, "release", hub=HUB, timeout=3600)
    check_golden("suspend-template-wrapped.yaml", dump_yaml(wrapped))
    validate(wrapped)
    assert original == seed()  # the input is not changed
    steps = wrapped["spec"]["templates"][0]["steps"]
    assert [[s["name"] for s in group] for group in steps] == [
        ["build"], ["approve"], ["delay"], ["approve-release"], ["release"]]
    assert steps[4][0]["when"] == "{{steps.approve-release.outputs.parameters.value}} == true"
    names = [t["name"] for t in wrapped["spec"]["templates"]]
    assert names == ["suspend", "approve", "delay", "hello-world", "approve-release",
                     "approve-release-register", "approve-release-wait",
                     "approve-release-verify"]


def test_wrapped_seed_runs_its_gate(argo_world: ArgoWorld) -> None:
    wrapped = wrap(seed(), "release", hub=argo_world.hub_connection())
    run = argo_world.run(wrapped, "approve-release")
    event = answer(argo_world, run, True)
    assert event["prompt"] == f"Run step 'release' of workflow {run.workflow['metadata']['name']}?"
    assert event["key"].endswith("[3].approve-release")
    assert outputs(run.finished(20)) == {"value": "true", "outcome": "approved"}


DAG_MANIFEST = {
    "apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
    "metadata": {"name": "release"},
    "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "dag": {"tasks": [
            {"name": "build", "template": "echo"},
            {"name": "test", "template": "echo", "dependencies": ["build"]},
            {"name": "release", "template": "echo", "dependencies": ["build", "test"],
             "when": "{{workflow.parameters.go}} == yes"},
        ]}},
        {"name": "echo", "container": {"image": "busybox", "command": ["echo"]}},
    ]},
}


def test_dag_task_gets_a_gate_that_takes_over_its_dependencies() -> None:
    wrapped = wrap(DAG_MANIFEST, "release", hub=HUB)
    tasks = {t["name"]: t for t in wrapped["spec"]["templates"][0]["dag"]["tasks"]}
    assert tasks["approve-release"] == {"name": "approve-release", "template": "approve-release",
                                        "dependencies": ["build", "test"]}
    assert tasks["release"]["depends"] == "approve-release"
    assert "dependencies" not in tasks["release"]
    assert tasks["release"]["when"] == ("({{workflow.parameters.go}} == yes) && "
                                        "{{tasks.approve-release.outputs.parameters.value}} == true")
    assert list(tasks) == ["build", "test", "approve-release", "release"]


def test_cron_workflow_and_custom_gate() -> None:
    cron = {"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow",
            "metadata": {"name": "nightly"},
            "spec": {"workflowSpec": copy.deepcopy(seed()["spec"])}}
    # Argo 3.6 replaced 'schedule' by 'schedules'; hera's models follow the Argo they track
    fields = getattr(models.CronWorkflowSpec, "model_fields", None) or (
        models.CronWorkflowSpec.__fields__)
    if "schedules" in fields:
        cron["spec"]["schedules"] = ["0 2 * * *"]
    else:
        cron["spec"]["schedule"] = "0 2 * * *"
    gate = approval("go-live", "Go live?", hub=HUB, on_reject="continue")
    wrapped = wrap(cron, "release", gate=gate)
    steps = wrapped["spec"]["workflowSpec"]["templates"][0]["steps"]
    assert steps[3] == [{"name": "go-live", "template": "go-live"}]


@pytest.mark.parametrize(("manifest", "kwargs", "message"), [
    (seed(), {"before": "deploy"}, r"before: no step or task named 'deploy' in any steps or "
                                   r"dag template \(found \['approve', 'build', 'delay', "
                                   r"'release'\]\)"),
    (seed(), {"before": "release", "name": "approve"}, "name: 'approve' clashes"),
    ({"kind": "Pod"}, {"before": "x"}, "kind: expected one of"),
    (seed(), {"before": "release", "template": "delay"}, "in template 'delay'"),
], ids=["missing", "clash", "kind", "wrong-template"])
def test_wrap_refusals_name_the_problem(manifest: dict[str, Any], kwargs: dict[str, Any],
                                        message: str) -> None:
    name = kwargs.pop("name", None)
    if name:
        kwargs["gate"] = approval(name, "?", hub=HUB)
    with pytest.raises(ValueError, match=message):
        wrap(manifest, **kwargs)


def test_ambiguous_step_needs_a_template() -> None:
    manifest = seed()
    manifest["spec"]["templates"].append(
        {"name": "again", "steps": [[{"name": "release", "template": "hello-world"}]]})
    with pytest.raises(ValueError, match=r"'release' is in templates \['suspend', 'again'\]"):
        wrap(manifest, "release", hub=HUB)
    wrapped = wrap(manifest, "release", hub=HUB, template="again")
    assert wrapped["spec"]["templates"][4]["steps"][0] == [
        {"name": "approve-release", "template": "approve-release"}]


def test_wrap_needs_an_approval_gate() -> None:
    with pytest.raises(ValueError, match="gate: wrap guards a step with an approval, got a int"):
        wrap(seed(), "release", gate=input_step("n", "?", input=int, hub=HUB))
