"""Quickstart: a hub on SQLite with a small workflow waiting in its inbox.

    $ pip install uv && uv run --no-project --with '.[hub]' python examples/quickstart.py

It starts `signoff serve` on http://127.0.0.1:8765 with a fresh store in a temporary folder,
prints a one-time link that signs your browser in, and runs a two-step "release" workflow that asks for
an approval and then for a typed answer. Answer both in the inbox and watch the workflow go on.
Ctrl-C (or SIGTERM) stops everything and removes the temporary folder. `--port` (or
SIGNOFF_PORT) picks another port; `--once` exits when the workflow ends.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from signoff import Client, Rejected, result_of
from signoff.testing import HubProcess, HubStartError


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
    parser.add_argument("--port", type=int, default=int(os.environ.get("SIGNOFF_PORT", 8765)),
                        help="the hub's port (default SIGNOFF_PORT or 8765)")
    parser.add_argument("--once", action="store_true", help="exit when the workflow ends")
    args = parser.parse_args()
    # Ctrl-C and SIGTERM only set this: an exception raised wherever the signal lands (inside
    # an HTTP client's connection pool, say) could leave a lock held that the cleanup needs
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stopping.set())
    folder = Path(tempfile.mkdtemp(prefix="signoff-quickstart-"))
    hub = HubProcess(folder / "signoff.db", port=args.port)
    try:
        try:
            hub.start()
        except HubStartError as exc:
            print(f"quickstart: the hub did not start. {exc.reason}", file=sys.stderr, flush=True)
            return 1
        print("", flush=True)
        print("signoff hub running. Open the inbox with this one-time link (it signs you in as"
              " admin, once):", flush=True)
        print(f"    {hub.login_url}", flush=True)
        print("", flush=True)
        token = hub.token("quickstart", role="workflow")
        finished = threading.Event()
        failed: list[Exception] = []

        def workflow() -> None:
            try:
                with Client(hub.url, token) as client:
                    release(client, hub.url)
                if not args.once:
                    print("workflow finished; the hub keeps running. Ctrl-C to stop.",
                          flush=True)
            except Exception as exc:  # the hub went away under it, say
                if not stopping.is_set():
                    failed.append(exc)
                    print(f"workflow: failed: {exc}", file=sys.stderr, flush=True)
            finally:
                finished.set()

        # the workflow waits in a thread of its own (a daemon: it ends with the process)
        threading.Thread(target=workflow, name="workflow", daemon=True).start()
        assert hub.process is not None
        while not stopping.wait(0.2):
            if (args.once and finished.is_set()) or hub.process.poll() is not None:
                break
        if stopping.is_set():
            print("quickstart: stopping", file=sys.stderr, flush=True)
        elif failed:
            return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        hub.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
