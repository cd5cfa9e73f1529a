"""Policy shadow mode (issue 21) through a real `signoff serve`: a shadow rule never acts, the
event and its audit trail keep what it would have done, and `signoff export` and `/metrics`
show whether the people who decided agreed; shadow rules from the hub's policy file too.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import httpx
from click.testing import CliRunner

from signoff import Client, Rule
from signoff.cli import main
from signoff.testing import HubProcess

SHADOW_APPROVE = "route[0]: confidence >= 0.9 -> approve"


def _export(hub: HubProcess, *args: str) -> str:
    env = {"SIGNOFF_URL": hub.url, "SIGNOFF_TOKEN": hub.admin_token or ""}
    result = CliRunner().invoke(main, ["export", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return str(result.output)


def _shadow_counts(hub: HubProcess) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{hub.url}/metrics").text
    found = re.findall(r'^signoff_shadow_total\{(.*)\} (\S+)$', text, re.M)
    return {(dict(re.findall(r'(\w+)="([^"]*)"', labels))["rule"],
             dict(re.findall(r'(\w+)="([^"]*)"', labels))["agreed"]): float(value)
            for labels, value in found}


def test_a_shadow_rule_never_acts_and_is_exported_and_counted(hub: HubProcess) -> None:
    flow = Client(hub.url, hub.token("flow", role="workflow"))
    admin = Client(hub.url, hub.admin_token)
    policy = {"route": [Rule(when="confidence >= 0.9", then="approve", mode="shadow"),
                        Rule(when="impact == 'low'", then="approve"),
                        Rule(when="confidence < 0.2", then="block", mode="shadow")]}
    overruled = flow.create(name="refund", prompt="Refund $40?", confidence=0.95,
                            impact="high", policy=policy)
    # the shadow auto-approve did not act: a human decides
    assert overruled.status == "pending" and overruled.decision is None
    assert overruled.shadow is not None
    assert (overruled.shadow.rule, overruled.shadow.outcome, overruled.shadow.value) == (
        SHADOW_APPROVE, "approve", True)
    [entry] = [e for e in admin.audit(overruled.id) if e["action"] == "shadow"]
    assert entry["data"]["outcome"] == "approve"
    admin.respond(overruled.id, False, "not without a receipt")

    agreeing = flow.create(name="refund", prompt="Refund $12?", confidence=0.97, impact="high",
                           policy=policy)
    admin.respond(agreeing.id, True)
    plain = flow.create(name="refund", prompt="Refund $900?", confidence=0.5, impact="high",
                        policy=policy)
    assert plain.shadow is None
    admin.respond(plain.id, False)
    # an enforcing rule decides at creation; the shadow block beside it is still recorded
    auto = flow.create(name="refund", prompt="Refund $1?", confidence=0.1, impact="low",
                       policy=policy)
    assert auto.decision is not None and auto.decision.by == "policy"
    assert auto.shadow is not None and auto.shadow.outcome == "block"

    rows = {r["id"]: r for r in map(json.loads, _export(hub).splitlines())}
    assert [(rows[e.id]["shadow_rule"], rows[e.id]["shadow_outcome"],
             rows[e.id]["shadow_agreed"]) for e in (overruled, agreeing, plain, auto)] == [
        (SHADOW_APPROVE, "approve", False), (SHADOW_APPROVE, "approve", True),
        (None, None, None), ("route[2]: confidence < 0.2 -> block", "block", False)]
    table = {r["id"]: r for r in csv.DictReader(io.StringIO(_export(hub, "--format", "csv")))}
    assert (table[overruled.id]["shadow_outcome"], table[overruled.id]["shadow_agreed"]) == (
        "approve", "False")

    assert _shadow_counts(hub) == {(SHADOW_APPROVE, "false"): 1.0,
                                   (SHADOW_APPROVE, "true"): 1.0,
                                   ("route[2]: confidence < 0.2 -> block", "false"): 1.0}


def test_shadow_rules_from_the_policy_file(tmp_path: Path) -> None:
    config = tmp_path / "signoff.toml"
    config.write_text("""
[[policies]]
match = { name = "refund-*" }
forbid_auto_approve = true
route = [{ when = "confidence >= 0.8", then = "approve", mode = "shadow" }]
""")
    with HubProcess(tmp_path / "hub.db", config=config) as hub:
        flow = Client(hub.url, hub.token("flow", role="workflow"))
        admin = Client(hub.url, hub.admin_token)
        # the workflow's own auto-approve is taken out by the file; the file's shadow stays
        event = flow.create(name="refund-eu", prompt="Refund?", confidence=0.9,
                            policy={"route": [{"when": "confidence >= 0.8",
                                               "then": "approve"}]})
        assert event.status == "pending"
        assert event.shadow is not None and event.shadow.outcome == "approve"
        assert event.policy is not None and [r.mode for r in event.policy.route] == ["shadow"]
        admin.respond(event.id, True)
        [row] = map(json.loads, _export(hub).splitlines())
        assert (row["shadow_rule"], row["shadow_agreed"]) == (
            "route[0]: confidence >= 0.8 -> approve", True)
