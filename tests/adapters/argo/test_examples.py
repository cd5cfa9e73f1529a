"""examples/argo_*: the Python example runs and its gate works; the YAML stays valid and current."""

from __future__ import annotations

import subprocess
import sys
from importlib import util
from pathlib import Path
from typing import Any

import yaml

from signoff.adapters.argo import validate, wrap
from signoff.adapters.argo._manifest import dump_yaml

from .conftest import ArgoWorld
from .helpers import answer, outputs

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


def load_example(name: str) -> Any:
    spec = util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_argo_example_is_tested() -> None:
    found = sorted(p.name for p in EXAMPLES.glob("argo_*"))
    assert found == ["argo_release.py", "argo_suspend_template.yaml"]


def test_release_example_prints_a_valid_workflow() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLES / "argo_release.py")],
                          capture_output=True, text=True, check=True, timeout=120)
    manifest = yaml.safe_load(done.stdout)
    validate(manifest)
    main = next(t for t in manifest["spec"]["templates"] if t["name"] == "main")
    assert [[s["name"] for s in group] for group in main["steps"]] == [
        ["build"], ["approve"], ["release"]]
    assert main["steps"][2][0]["when"] == "{{steps.approve.outputs.parameters.value}} == true"


def test_release_example_gate_is_answered_in_the_inbox(argo_world: ArgoWorld) -> None:
    workflow = load_example("argo_release").build_workflow(argo_world.hub_connection())
    run = argo_world.run(workflow.to_dict(), "approve")
    event = answer(argo_world, run, True, "go")
    # the waiting node shows its inbox page (Argo's UI lists a node's inputs)
    shown = {p["name"]: p.get("value") for p in run.wait_node()["inputs"]["parameters"]}
    assert shown["signoff-inbox"] == \
        f"{argo_world.hub_connection().url.rstrip('/')}/events/{event['id']}"
    assert event["prompt"] == "Release 3.2.0 to production?"
    assert event["context"] == {"version": "3.2.0"}
    assert event["assignees"] == ["group:release"]
    assert outputs(run.finished(20)) == {"value": "true", "outcome": "approved"}


def test_suspend_template_example_is_the_wrapped_seed() -> None:
    text = (EXAMPLES / "argo_suspend_template.yaml").read_text()
    manifest = yaml.safe_load(text)
    validate(manifest)
    seed = yaml.safe_load((Path(__file__).parent / "data" / "suspend-template.yaml").read_text())
    from signoff.adapters.argo import HubConnection

    expected = wrap(seed, "release", hub=HubConnection(url="http://signoff.signoff.svc:8765"),
                    timeout=14400, assignees=["group:release"])
    body = "".join(line for line in text.splitlines(True) if not line.startswith("#"))
    assert body == dump_yaml(expected)
