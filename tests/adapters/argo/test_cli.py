"""``signoff argo render | wrap | validate``, through the real ``signoff`` command group."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from signoff.adapters.argo import validate
from signoff.cli import main

from .golden import check_golden

SEED = Path(__file__).parent / "data" / "suspend-template.yaml"
HUB = ("--hub-url", "http://signoff.signoff.svc:8765")


def run(*args: str, input: str | None = None) -> tuple[int, str]:  # noqa: A002
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.output


def test_render_is_found_through_the_entry_point() -> None:
    done = subprocess.run([sys.executable, "-c", "from signoff.cli import run; run()", "argo",
                           "render", "--name", "approve", "--prompt", "Release?", *HUB],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    templates = yaml.safe_load(done.stdout)
    assert [t["name"] for t in templates] == ["approve", "approve-register", "approve-wait",
                                             "approve-verify"]


def test_render_choice_matches_golden() -> None:
    code, output = run("argo", "render", "--name", "region", "--kind", "choice",
                       "--option", "eu", "--option", "us", "--default", "eu", "--prompt",
                       "Where to?", "--timeout", "600", "--on-timeout", "default",
                       "--assignee", "group:ops", "--context", '{"service": "api"}',
                       "--label", "team=ops", "--registration", "container", *HUB)
    assert code == 0, output
    check_golden("cli-choice.yaml", output)
    wait = yaml.safe_load(output)[2]
    assert wait["inputs"]["parameters"][1]["enum"] == ["eu", "us"]
    assert wait["outputs"]["parameters"][0]["valueFrom"]["default"] == "eu"


def test_render_workflow_validates() -> None:
    code, output = run("argo", "render", "--name", "count", "--kind", "int", "--min", "1",
                       "--max", "5", "--default", "2", "--workflow", *HUB)
    assert code == 0, output
    validate(yaml.safe_load(output))
    code, checked = run("argo", "validate", "-", input=output)
    assert (code, checked) == (0, "Workflow count-: valid\n")


def test_wrap_the_seed(tmp_path: Path) -> None:
    target = tmp_path / "wrapped.yaml"
    code, output = run("argo", "wrap", str(SEED), "--before", "release", "--timeout", "60",
                       "-o", str(target), *HUB)
    assert code == 0, output
    wrapped = yaml.safe_load(target.read_text())
    validate(wrapped)
    names = [s["name"] for g in wrapped["spec"]["templates"][0]["steps"] for s in g]
    assert names == ["build", "approve", "delay", "approve-release", "release"]


def test_refusals_are_one_line_errors(tmp_path: Path) -> None:
    code, output = run("argo", "wrap", str(SEED), "--before", "deploy", *HUB)
    assert code == 1
    assert output.startswith("Error: before: no step or task named 'deploy'")
    code, output = run("argo", "render", "--name", "Bad_Name", *HUB)
    assert (code, output.splitlines()[-1]) == (1, "Error: name: expected lower-case letters, "
                                                  "digits and '-' (at most 54, starting and "
                                                  "ending alphanumeric), got 'Bad_Name'")
    code, output = run("argo", "render", "--name", "n", "--kind", "int", "--default", "x", *HUB)
    assert code == 1 and "--default: expected a whole number, got 'x'" in output
    code, output = run("argo", "render", "--name", "n", "--kind", "int", "--min", "1.5", *HUB)
    assert (code, output.splitlines()[-1]) == (1, "Error: --min: expected a whole number for "
                                                  "an int gate, got 1.5")
    code, output = run("argo", "render", "--name", "n", "--label", "novalue", *HUB)
    assert code == 2 and "expected KEY=VALUE, got 'novalue'" in output
    bad = tmp_path / "two.yaml"
    bad.write_text("kind: Workflow\n---\nkind: Workflow\n")
    code, output = run("argo", "validate", str(bad))
    assert code == 1 and "expected one manifest (a YAML mapping), got 2 documents" in output
    bad.write_text("kind: Workflow\nmetadata: {name: x}\nspec:\n  templatez: []\n")
    code, output = run("argo", "validate", str(bad))
    assert code == 1 and "spec.templatez: not a field Argo knows" in output
    bad.write_text("kind: Workflow\nspec:\n  entrypoint: 3\n")
    code, output = run("argo", "validate", str(bad))
    assert code == 1
    assert output.startswith("Error: Workflow is not valid for Argo (hera's models): metadata: ")
    assert "required" in output.lower()


def test_no_hub_address_is_guessed() -> None:
    """Without --hub-url nothing renders: a default address would only fail in the cluster."""
    for command in (["render", "--name", "approve"], ["wrap", str(SEED), "--before", "release"]):
        code, output = run("argo", *command)
        assert code == 2, output
        assert "Missing option '--hub-url'" in output
        assert "apiVersion" not in output and "approve-register" not in output
