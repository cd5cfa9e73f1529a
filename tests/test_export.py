"""``signoff export`` (issue 21): filters, JSONL and CSV, and the labelled columns."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from pathlib import Path

from click.testing import CliRunner

from signoff import Client
from signoff.cli import main
from signoff.testing import HubProcess

FORM = {"type": "object", "properties": {"limit": {"type": "integer"},
                                          "region": {"type": "string"}},
        "required": ["limit", "region"]}


def _export(hub: HubProcess, *args: str) -> str:
    env = {"SIGNOFF_URL": hub.url, "SIGNOFF_TOKEN": hub.admin_token or ""}
    result = CliRunner().invoke(main, ["export", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return str(result.output)


def test_export_filters_formats_and_columns(hub: HubProcess, tmp_path: Path) -> None:
    flow = Client(hub.url, hub.token("flow", role="workflow"))
    admin = Client(hub.url, hub.admin_token)
    kept = flow.create(name="refund-eu", prompt="Refund?", recommendation=True, confidence=0.7,
                       source={"orchestrator": "airflow", "run": "r1"})
    admin.respond(kept.id, False, "too much")
    tuned = flow.create(name="refund-limits", prompt="Limits?", input={"kind": "form",
                        "schema": FORM}, recommendation={"limit": 100, "region": "eu"},
                        source={"orchestrator": "prefect"})
    admin.respond(tuned.id, {"limit": 50, "region": "eu"})
    other = flow.create(name="deploy", prompt="Deploy?", recommendation=True)
    admin.respond(other.id, True)

    rows = {r["id"]: r for r in map(json.loads, _export(hub, "--since", "1d").splitlines())}
    assert set(rows) == {kept.id, tuned.id, other.id}
    assert (rows[kept.id]["overridden"], rows[kept.id]["amended"]) == (True, False)
    assert rows[kept.id]["amended_fields"] is None
    # the form's proposal changed before approval: amended, and which fields
    assert (rows[tuned.id]["overridden"], rows[tuned.id]["amended"]) == (True, True)
    assert rows[tuned.id]["amended_fields"] == ["limit"]
    assert rows[tuned.id]["digest"].startswith("sha256:") and rows[tuned.id]["signature"]
    assert rows[other.id]["overridden"] is False
    assert 0 <= rows[kept.id]["seconds_to_decide"] < 60
    assert rows[kept.id]["confidence"] == 0.7 and rows[kept.id]["by"] == "admin"

    named = [json.loads(r)["id"] for r in _export(hub, "--name", "refund-*").splitlines()]
    assert sorted(named) == sorted([kept.id, tuned.id])
    sourced = [json.loads(r)["id"] for r in _export(hub, "--source", "airflow").splitlines()]
    assert sourced == [kept.id]
    rejected = [json.loads(r)["id"] for r in _export(hub, "--outcome", "rejected").splitlines()]
    assert rejected == [kept.id]

    table = list(csv.DictReader(io.StringIO(_export(hub, "--format", "csv",
                                                    "--name", "refund-limits"))))
    assert len(table) == 1 and json.loads(table[0]["amended_fields"]) == ["limit"]
    assert json.loads(table[0]["value"]) == {"limit": 50, "region": "eu"}
    assert table[0]["overridden"] == "True"

    env = {"SIGNOFF_URL": hub.url, "SIGNOFF_TOKEN": hub.admin_token or ""}
    target = tmp_path / "rows.parquet"
    parquet = CliRunner().invoke(main, ["export", "--format", "parquet", "-o", str(target)],
                                 env=env)
    if importlib.util.find_spec("pyarrow") is None:
        assert parquet.exit_code == 1 and "pyarrow" in parquet.output
    else:
        assert parquet.exit_code == 0 and target.stat().st_size > 0
    bad = CliRunner().invoke(main, ["export", "--since", "a month"], env=env)
    assert bad.exit_code == 1 and "--since" in bad.output
