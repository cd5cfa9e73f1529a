"""Quickstart: a hub on SQLite with a small workflow waiting in its inbox.

    pip install uv && uv run --no-project --with '.[hub]' python examples/quickstart.py

It starts `signoff serve` on http://127.0.0.1:8765 with a fresh store in a temporary folder,
prints a one-time link that signs your browser in, and runs a two-step "release" workflow that asks for
an approval and then for a typed answer. Answer both in the inbox and watch the workflow go on.
Ctrl-C stops everything. `--port` picks another port; `--once` exits when the workflow ends.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from signoff import Client, Rejected, result_of
from signoff.testing import HubProcess


def release(client: Client, inbox: str) -> None:
    """A workflow with two human steps, written against the plain client."""
    model = "churn-model v3"
    report = {"model": model, "auc": 0.91, "baseline_auc": 0.87, "rows_scored": 120_000}
    print(f"workflow: evaluated {model}: {report}", flush=True)

    approval = client.create(
        name="approve-release", key=f"quickstart:{model}:approve",
        prompt=f"Deploy {model} to production?", context=report, priority="high",
        recommendation=True, confidence=0.82,
        source={"orchestrator": "api", "run": "quickstart", "step": "approve"},
    )
    print(f"workflow: waiting for approval -> {inbox}/events/{approval.id}", flush=True)
    approved = result_of(client.wait(approval.id), approval=True)
    if not approved:
        print("workflow: rejected; nothing deployed", flush=True)
        return
    print(f"workflow: approved, deploying {model}", flush=True)

    traffic = client.create(
        name="rollout-share", key=f"quickstart:{model}:traffic",
        prompt="Which share of traffic should the new model get first?",
        input={"kind": "choice", "options": ["5%", "25%", "100%"], "default": "5%"},
        timeout=3600, on_timeout="default",
        source={"orchestrator": "api", "run": "quickstart", "step": "rollout"},
    )
    print(f"workflow: waiting for the rollout share -> {inbox}/events/{traffic.id}", flush=True)
    try:
        share = result_of(client.wait(traffic.id))
    except Rejected as exc:
        print(f"workflow: rollout refused ({exc})", flush=True)
        return
    print(f"workflow: rolling out to {share} of traffic. Done.", flush=True)


def main() -> int:
    """Start a hub, run the workflow, keep the hub up until Ctrl-C (or `--once`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--once", action="store_true", help="exit when the workflow ends")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="signoff-quickstart-"))
    hub = HubProcess(folder / "signoff.db", port=args.port).start()
    try:
        print("", flush=True)
        print("signoff hub running. Open the inbox with this one-time link (it signs you in as"
              " admin, once):", flush=True)
        print(f"    {hub.login_url}", flush=True)
        print("", flush=True)
        client = Client(hub.url, hub.token("quickstart", role="workflow"))
        release(client, hub.url)
        if not args.once:
            print("workflow finished; the hub keeps running. Ctrl-C to stop.", flush=True)
            assert hub.process is not None
            hub.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
