"""Issue 18: the alert rules pass ``promtool check rules`` and their unit tests (breach and
non-breach series), and every metric the dashboards and rules use is in a running hub's scrape.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from signoff.testing import HubProcess

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "signoff-rules.yml"
DASHBOARDS = sorted((DEPLOY / "grafana").glob("*.json"))
METRIC = re.compile(r"\bsignoff_[a-z0-9_]*[a-z0-9]\b")
RECORDED = re.compile(r"\bsignoff:[a-z0-9_:]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is missing: apt-get install prometheus (.ci/run does)")
    return subprocess.run(["promtool", *args], cwd=RULES.parent, capture_output=True,
                          text=True, timeout=300, check=False)


def test_rules_pass_promtool_check() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_alerts_fire_on_breach_and_stay_quiet_otherwise() -> None:
    files = sorted(p.name for p in RULES.parent.glob("*.test.yml"))
    tested = promtool("test", "rules", *files)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"]
              for r in g["rules"] if "alert" in r}
    exercised: dict[str, set[bool]] = {}
    for name in files:
        for case in yaml.safe_load((RULES.parent / name).read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                exercised.setdefault(check["alertname"], set()).add(bool(check["exp_alerts"]))
    assert {a for a, seen in exercised.items() if seen == {True, False}} == alerts


def _expressions() -> list[str]:
    found = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str) and node.get("datasource", {}).get(
                    "type") == "prometheus":
                found.append(node["expr"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    assert [p.stem for p in DASHBOARDS] == ["signoff-debug", "signoff-executive",
                                            "signoff-oncall"]
    for path in DASHBOARDS:
        walk(json.loads(path.read_text()))
    return found


def test_every_metric_used_is_in_a_running_hubs_scrape(tmp_path: Path) -> None:
    expressions = _expressions()
    used = {name for expr in expressions for name in METRIC.findall(expr)}
    assert len(used) > 20
    with HubProcess(tmp_path / "hub.db") as hub:
        text = httpx.get(f"{hub.url}/metrics").text
    exported = {family.name + suffix for family in text_string_to_metric_families(text)
                for suffix in SUFFIXES.get(family.type, ())}
    assert used - exported == set()
    recorded = {r["record"] for g in yaml.safe_load(RULES.read_text())["groups"]
                for r in g["rules"] if "record" in r}
    assert {n for expr in expressions for n in RECORDED.findall(expr)} - recorded == set()
