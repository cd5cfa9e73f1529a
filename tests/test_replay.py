"""``signoff policy replay`` (issue 21) on a history the test records through a real hub."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from signoff import Client, Policy, Rule
from signoff.testing import HubProcess, until

CANDIDATE = textwrap.dedent("""
    [[route]]
    when = "confidence >= 0.9 and impact == 'low'"
    then = "approve"

    [[route]]
    when = "impact == 'critical' and confidence < 0.5"
    then = "block"

    [[route]]
    when = "confidence >= 0.5"
    then = "approve"
    match = { labels = { team = "ml" } }
""")


def test_replay_counts_what_a_candidate_would_have_done(hub: HubProcess, tmp_path: Path) -> None:
    flow = Client(hub.url, hub.token("flow", role="workflow"))
    people = Client(hub.url, hub.admin_token)
    history = [  # confidence, impact, labels, what the person decided
        (0.95, "low", {}, True),            # route[0] approves: so did the person
        (0.92, "low", {}, False),           # route[0] approves: a would-be false approval
        (0.30, "critical", {}, False),      # route[1] blocks: so did the person
        (0.20, "critical", {}, True),       # route[1] blocks: a would-be false block
        (0.60, "medium", {"team": "ml"}, False),    # route[2]: a would-be false approval
        (0.60, "medium", {"team": "data"}, True),   # no rule matches
    ]
    ids = []
    for i, (confidence, impact, labels, approve) in enumerate(history):
        event = flow.create(name="refund", prompt=f"Refund {i}?", confidence=confidence,
                            impact=impact, labels=labels)
        people.respond(event.id, approve)
        ids.append(event.id)
    # decided by no person: not tried
    flow.create(name="refund", prompt="Auto?", confidence=0.99, impact="low",
                policy=Policy(route=[Rule(when="confidence > 0.9", then="approve")]))
    late = flow.create(name="refund", prompt="Nobody came?", timeout=0.5, on_timeout="reject")
    until(lambda: flow.get(late.id).status == "decided", what="the timeout")
    candidate = tmp_path / "candidate.toml"
    candidate.write_text(CANDIDATE)

    def signoff(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from signoff.cli import run; run()", "policy", "replay",
             *args], capture_output=True, text=True,
            env={"SIGNOFF_URL": hub.url, "SIGNOFF_TOKEN": hub.admin_token or "", "PATH": ""})

    done = signoff(str(candidate), "--since", "30d", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["events"], report["skipped"]) == (6, 2)
    tallies = [(t["matched"], t["approved"], t["false_approvals"], t["blocked"],
                t["false_blocks"]) for t in report["rules"]]
    assert tallies == [(2, 2, 1, 0, 0), (2, 0, 0, 2, 1), (1, 1, 1, 0, 0)]
    assert report["rules"][0]["examples"] == [ids[1]]
    assert report["rules"][1]["examples"] == [ids[3]]

    table = signoff(str(candidate), "--since", "30d")
    assert table.returncode == 0, table.stderr
    assert "would auto-approve 3, of which people rejected or answered otherwise 2" in table.stdout
    assert "would block 2, of which people approved 1" in table.stdout
    assert signoff(str(candidate), "--since", "30 days").returncode == 1
    bad = tmp_path / "bad.toml"
    bad.write_text('[[route]]\nwhen = "confidence >="\nthen = "approve"\n')
    refused = signoff(str(bad))
    assert refused.returncode == 1 and "route" in refused.stderr
