"""The fake Argo Server keeps Argo's rules; the fake expression engine keeps expr's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .fake_argo import FakeArgoServer
from .fake_expr import Missing, Unsupported, evaluate, expand, parse_selector, substitute


@pytest.fixture
def argo() -> Iterator[FakeArgoServer]:
    with FakeArgoServer() as server:
        workflow = server.submit({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                                  "metadata": {"name": "wf"}, "spec": {}}, "argo")
        outputs = {"parameters": [{"name": "value", "valueFrom": {"supplied": {},
                                                                   "default": "false"}}]}
        for name, phase, kind in (("wf[0].a", "Running", "Suspend"),
                                  ("wf[1].b", "Succeeded", "Suspend"),
                                  ("wf[2].c", "Running", "Pod")):
            server.add_node(workflow, {"name": name, "displayName": name[-1], "type": kind,
                                       "phase": phase, "templateName": "t",
                                       "inputs": {"parameters": [{"name": "signoff-event",
                                                                  "value": f"ev,{name[-1]}"}]},
                                       "outputs": outputs})
        yield server


def put(argo: FakeArgoServer, action: str, body: Any, token: str | None = None) -> httpx.Response:
    return httpx.put(f"{argo.url}/api/v1/workflows/argo/wf/{action}", json=body,
                     headers={"Authorization": f"Bearer {token or argo.token}"})


def phases(argo: FakeArgoServer) -> dict[str, str]:
    nodes = argo.workflows[("argo", "wf")]["status"]["nodes"].values()
    return {n["displayName"]: n["phase"] for n in nodes}


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"nodeFieldSelector": "displayName=a", "phase": "Running"}, 400,
     "Running is an invalid phase to set to"),
    ({"nodeFieldSelector": "displayName=a", "outputParameters": {"value": "true"}}, 400,
     "json: cannot unmarshal dict into Go struct field .outputParameters of type string"),
    ({"nodeFieldSelector": "displayName=a", "outputParameters": "value=true"}, 400,
     "unable to parse output parameter set request"),
    ({"nodeFieldSelector": "displayName=a", "outputParameters": '{"value": true}'}, 400,
     "unable to parse output parameter set request"),
    ({"nodeFieldSelector": "displayName=a", "outputParameters": '{"other": "x"}'}, 500,
     "node is not expecting output parameter 'other'"),
    ({"nodeFieldSelector": "displayName=b", "phase": "Succeeded"}, 500,
     "no suspend nodes matching nodeFieldSelector: displayName=b"),
    ({"nodeFieldSelector": "displayName=c", "phase": "Succeeded"}, 500,
     "no suspend nodes matching"),
    ({"phase": "Succeeded"}, 500, "use a node field selector"),
    ({"nodeFieldSelector": "displayName", "phase": "Succeeded"}, 500, "invalid selector"),
], ids=["bad-phase", "object-outputs", "outputs-not-json", "non-string-value",
        "unknown-output", "finished-node", "not-a-suspend-node", "no-selector", "bad-selector"])
def test_set_refuses_what_argo_refuses(argo: FakeArgoServer, body: dict[str, Any], status: int,
                                       message: str) -> None:
    before = phases(argo)
    answer = put(argo, "set", body)
    assert answer.status_code == status
    assert message in answer.json()["message"]
    assert set(answer.json()) == {"error", "code", "message", "details"}
    assert phases(argo) == before


def test_set_touches_only_the_selected_active_suspend_node(argo: FakeArgoServer) -> None:
    answer = put(argo, "set", {"nodeFieldSelector": r"inputs.parameters.signoff-event.value=ev\,a",
                               "outputParameters": '{"value": "true"}', "phase": "Succeeded",
                               "message": "ok", "extra": 1})
    assert answer.status_code == 200, answer.text
    assert phases(argo) == {"a": "Succeeded", "b": "Succeeded", "c": "Running"}
    node = next(n for n in answer.json()["status"]["nodes"].values() if n["displayName"] == "a")
    assert node["outputs"]["parameters"] == [{"name": "value", "value": "true"}]
    assert node["message"] == "ok"
    assert argo.calls[-1].unknown_fields == ["extra"]
    again = put(argo, "set", {"nodeFieldSelector": "displayName=a", "phase": "Failed"})
    assert again.status_code == 500


def test_resume_without_selector_applies_defaults(argo: FakeArgoServer) -> None:
    assert put(argo, "resume", {}).status_code == 200
    node = next(n for n in argo.workflows[("argo", "wf")]["status"]["nodes"].values()
                if n["displayName"] == "a")
    assert (node["phase"], node["outputs"]["parameters"]) == (
        "Succeeded", [{"name": "value", "value": "false"}])


def test_auth_and_missing_workflow(argo: FakeArgoServer) -> None:
    refused = put(argo, "set", {"nodeFieldSelector": "displayName=a"}, token="nope")
    assert (refused.status_code, refused.json()["code"]) == (401, 16)
    missing = httpx.get(f"{argo.url}/api/v1/workflows/argo/gone",
                        headers={"Authorization": f"Bearer {argo.token}"})
    assert (missing.status_code, missing.json()["message"]) == (
        404, 'workflows.argoproj.io "gone" not found')


def test_expressions() -> None:
    env = expand({"inputs.parameters.my-name": 'a "b"', "workflow.name": "wf",
                  "steps.register.outputs.result": '{"id": "ev_1"}', "inputs.parameters": "[]"})
    assert evaluate("toJson('x: ' + inputs.parameters['my-name'])", env) == '"x: a \\"b\\""'
    assert evaluate("jsonpath(steps.register.outputs.result, '$.id')", env) == "ev_1"
    assert evaluate("1 == 2 || 'a\\'b' == \"a'b\"", env) is True
    with pytest.raises(Missing):
        evaluate("inputs.parameters['other']", env)
    with pytest.raises(Unsupported):
        evaluate("inputs.parameters['my-name'] | upper", env)
    text = "{{workflow.name}} {{=toJson(workflow.name)}} {{inputs.parameters.x}} {{=steps.y}}"
    assert substitute(text, {"workflow.name": "wf"}) == (
        'wf "wf" {{inputs.parameters.x}} {{=steps.y}}')


def test_selectors() -> None:
    assert parse_selector(r"a=b\,c,d!=e,f==g\=h") == [("a", "=", "b,c"), ("d", "!=", "e"),
                                                      ("f", "=", "g=h")]
    with pytest.raises(ValueError, match="invalid escape"):
        parse_selector(r"a=b\x")
