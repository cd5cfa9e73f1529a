"""Schemathesis against a real `signoff serve`: every API operation, with an admin token and
with a workflow token, generated from the hub's own OpenAPI document. Checks: no 5xx, every
status code documented, every body matching its schema, the declared content types.

The number of cases each run generated is printed (``-s`` or the junit ``schemathesis_cases``
property); ``SIGNOFF_FUZZ_EXAMPLES`` and ``SIGNOFF_FUZZ_SEED`` change the budget and the seed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff.testing import HubProcess

CHECKS = ("not_a_server_error,status_code_conformance,response_schema_conformance,"
          "content_type_conformance,negative_data_rejection,unsupported_method,"
          "allow_header_conformance")
# The long-poll would hold a generated `wait` of up to 60 s; its bounds are tested directly
# (tests/hub/test_input_hardening.py::test_query_parameters_are_bounded).
CONFIG = """
request-timeout = 20
workers = 1
[parameters]
"query.wait" = 0
"""
EVERY_CALL = {"400", "401", "403", "404", "413", "422", "429"}
CHANGES = {"post /api/v1/events", "post /api/v1/events/{event_id}/responses",
           "post /api/v1/events/{event_id}/cancel"}


@pytest.fixture(scope="module")
def openapi(shared_hub: HubProcess) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{shared_hub.url}/openapi.json").json()
    return document


def _operations(openapi: dict[str, Any], prefix: str = "/api/"
                ) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{method} {path}", operation) for path, item in openapi["paths"].items()
            if path.startswith(prefix) for method, operation in item.items()
            if method in ("get", "post", "put", "patch", "delete")]


def test_openapi_declares_the_errors_every_call_can_meet(openapi: dict[str, Any]) -> None:
    operations = _operations(openapi)
    assert len(operations) >= 8
    for name, operation in operations:
        declared = set(operation["responses"])
        assert EVERY_CALL <= declared, (name, EVERY_CALL - declared)
        if name in CHANGES:
            assert "409" in declared, name
        error = operation["responses"]["422"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/ErrorBody"}, name


def test_openapi_declares_input_patterns_and_bounds(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    create = schemas["EventCreate"]["properties"]
    assert create["name"]["pattern"].startswith("^") and create["name"]["maxLength"] == 200
    assert create["assignees"]["maxItems"] == 100 and "pattern" in create["assignees"]["items"]
    timeout = next(v for v in create["timeout"]["anyOf"] if v.get("type") == "number")
    assert timeout["maximum"] == 365 * 86_400
    assert create["context"]["maxProperties"] == 500
    assert create["labels"]["maxProperties"] == 50
    assert schemas["TextInput"]["properties"]["pattern"]["anyOf"][0]["maxLength"] == 1000
    assert schemas["ChoiceInput"]["properties"]["options"]["maxItems"] == 500
    assert schemas["Rule"]["properties"]["when"]["maxLength"] == 1000
    wait = next(p for p in openapi["paths"]["/api/v1/events/{event_id}/decision"]["get"][
        "parameters"] if p["name"] == "wait")
    assert wait["schema"]["maximum"] == 60


def _fuzz(hub: HubProcess, token: str, tmp_path: Path) -> dict[str, Any]:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    seed = int(os.environ.get("SIGNOFF_FUZZ_SEED", random.randrange(1, 2**31)))
    examples = os.environ.get("SIGNOFF_FUZZ_EXAMPLES", "25")
    reports = tmp_path / "reports"
    command = [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
               "--config-file", str(config), "--no-color", "run", f"{hub.url}/openapi.json",
               "-H", f"Authorization: Bearer {token}", "--checks", CHECKS,
               "--max-examples", examples, "--seed", str(seed),
               "--phases", "examples,coverage,fuzzing,stateful",
               "--report", "json", "--report-dir", str(reports)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    found = sorted(reports.glob("*.json"))
    assert found, f"no schemathesis report (seed {seed}):\n{run.stdout[-3000:]}\n{run.stderr}"
    report: dict[str, Any] = json.loads(found[-1].read_text())
    report["seed"], report["output"], report["returncode"] = seed, run.stdout, run.returncode
    return report


@pytest.mark.parametrize("role", ["admin", "workflow"])
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
        shared_hub: HubProcess, openapi: dict[str, Any], role: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        record_property: Any) -> None:
    token = (shared_hub.admin_token or "") if role == "admin" else shared_hub.token(
        "fuzz-flow", role="workflow")
    report = _fuzz(shared_hub, token, tmp_path)
    cases = report["test_cases"]["generated"]
    record_property("schemathesis_cases", cases)
    with capsys.disabled():
        print(f"\nschemathesis ({role} token, seed {report['seed']}): {cases} cases, "
              f"{report['running_time']:.0f} s, {report['operations']['tested']} operations")
    summary = f"seed {report['seed']}:\n{report['output'][-6000:]}"
    assert report["returncode"] == 0, summary
    assert report["failures"] == [] and report["errors"] == [], summary
    assert report["operations"]["tested"] == len(_operations(openapi, "/")), summary
    assert cases > 500, summary
