"""examples/argo_*: the Python example runs and its gate works; the YAML stays valid and current."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import util
from pathlib import Path
from typing import Any

import yaml

from signoff.adapters.argo import validate, wrap
from signoff.adapters.argo._manifest import dump_yaml

from ...example_header import Command, HeaderRun, header_commands
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


def _header_up_to_the_cluster(path: Path) -> list[Command]:
    """The header's lines; the last one submits to a cluster, which cannot run here."""
    *here, submit = header_commands(path)
    assert submit.text.startswith("argo submit ") and submit.comment == "on your cluster"
    return here


def test_release_example_header_runs_as_written(tmp_path: Path) -> None:
    render, check = _header_up_to_the_cluster(EXAMPLES / "argo_release.py")
    with HeaderRun(tmp_path) as shell:
        shell.run(render)
        assert shell.run(check) == "Workflow release-: valid\n"
        manifest = yaml.safe_load((shell.cwd / "release.yaml").read_text())
    register = next(t for t in manifest["spec"]["templates"] if t["name"] == "approve-register")
    assert register["http"]["url"] == f"http://signoff.signoff.svc:{shell.port(8765)}/api/v1/events"


def test_release_example_names_the_missing_hub_url() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SIGNOFF_URL"}
    done = subprocess.run([sys.executable, str(EXAMPLES / "argo_release.py")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert "set SIGNOFF_URL to the hub's URL as the cluster's pods reach it" in done.stderr


def test_release_example_prints_a_valid_workflow() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLES / "argo_release.py")],
                          env={**os.environ, "SIGNOFF_URL": "http://signoff.signoff.svc:8765"},
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


def test_suspend_template_header_makes_this_file(tmp_path: Path) -> None:
    example = EXAMPLES / "argo_suspend_template.yaml"
    wrap_line, check = _header_up_to_the_cluster(example)
    with HeaderRun(tmp_path, ports=()) as shell:
        shell.run(wrap_line)
        assert shell.run(check) == "Workflow suspend-template-: valid\n"
        made = (shell.cwd / "wrapped.yaml").read_text()
    body = "".join(line for line in example.read_text().splitlines(True)
                   if not line.startswith("#"))
    assert made == body


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
