"""Argo gate latency through a real hub and the tests' fake Argo Server (no Kubernetes here).

For each of ``--n`` gates, one after the other: render an approval, submit it to the fake
Argo Server, let the fake controller run its ``http`` register template against the hub
(registration = controller start -> suspend node Running), then answer the event and time
answer's 200 -> the suspend node Succeeded with its outputs set (the hub's dispatcher and
ArgoResumer's ``PUT /set`` on loopback). A real cluster adds the controller's reconcile
delay on top of the second figure.

Run: ``python bench/argo_resume.py [--n 50]`` (needs the ``argo`` and ``hub`` extras).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' fakes

from signoff.adapters.argo import HubConnection, approval, standalone_workflow  # noqa: E402
from signoff.testing import HubProcess  # noqa: E402
from tests.adapters.argo.conftest import NAMESPACE, SECRET, hub_env  # noqa: E402
from tests.adapters.argo.fake_argo import FakeArgoServer  # noqa: E402
from tests.adapters.argo.fake_controller import FakeController  # noqa: E402


def figures(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (f"{name:<34} median {statistics.median(ordered) * 1000:7.1f} ms   "
            f"p95 {p95 * 1000:7.1f} ms   max {ordered[-1] * 1000:7.1f} ms")


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--n", type=int, default=50)
    n = options.parse_args().n
    registration, resume = [], []
    with tempfile.TemporaryDirectory() as tmp, FakeArgoServer() as argo:
        env = hub_env(argo) | {"SIGNOFF_DELIVERY_BACKOFF": "0.5"}
        with HubProcess(Path(tmp) / "hub.db", env=env) as hub:
            token = hub.token("argo-workflows", role="workflow")
            argo.secrets[(NAMESPACE, SECRET)] = {"authorization": f"Bearer {token}"}
            manifest = standalone_workflow(approval(
                "approve", "Release?", hub=HubConnection(url=hub.url, token_secret=SECRET)))
            controller = FakeController(argo)
            with httpx.Client(base_url=hub.url, headers=hub.headers()) as client:
                for _ in range(n):
                    started = time.perf_counter()
                    run = controller.start_gate(argo.submit(manifest, NAMESPACE), "approve")
                    node = run.wait_node()
                    registration.append(time.perf_counter() - started)
                    event_id = next(p["value"] for p in node["inputs"]["parameters"]
                                    if p["name"] == "signoff-event")
                    client.post(f"/api/v1/events/{event_id}/responses",
                                json={"value": True}).raise_for_status()
                    answered = time.perf_counter()
                    while argo.node(run.workflow, node["id"])["phase"] == "Running":
                        time.sleep(0.001)
                    resume.append(time.perf_counter() - answered)
    print(f"argo gates: {n}, one after the other, hub and fake Argo Server on loopback")
    print(figures("registration (start -> waiting)", registration))
    print(figures("resume (answer 200 -> node set)", resume))


if __name__ == "__main__":
    main()
