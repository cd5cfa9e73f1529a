"""An Argo release workflow with an approval, written with hera.

From the checkout, in a virtual environment (``uv venv && . .venv/bin/activate``), after
``uv pip install '.[argo]'`` (the hub's URL is the one the cluster's pods reach; there is no
default):

    $ SIGNOFF_URL=http://signoff.signoff.svc:8765 python examples/argo_release.py > release.yaml
    $ signoff argo validate release.yaml
    $ argo submit release.yaml -p version=3.2.0     # on your cluster

build -> approve (in the signoff inbox) -> release, guarded by ``when``. A rejection fails
the approve step, so the workflow stops there; Argo's own timeout (the hub's deadline plus a
grace) leaves ``value`` at ``false``, so it never releases by default. The register step needs
the Secret ``signoff-token`` of docs/argo.md; while the approve step waits, its node shows the
event's inbox page as its ``signoff-inbox`` input (Argo's UI, ``argo get``).
"""

from __future__ import annotations

import os

from hera.workflows import Container, Parameter, Steps, Workflow

from signoff.adapters.argo import HubConnection, approval


def build_workflow(hub: HubConnection | None = None) -> Workflow:
    """The release workflow; ``hub`` says where the hub is and which Secret holds the token."""
    if hub is None:
        url = os.environ.get("SIGNOFF_URL")
        if not url:
            raise SystemExit("argo_release.py: set SIGNOFF_URL to the hub's URL as the "
                             "cluster's pods reach it, e.g. http://signoff.signoff.svc:8765")
        hub = HubConnection(url=url, token_secret="signoff-token")
    with Workflow(generate_name="release-", entrypoint="main",
                  arguments=[Parameter(name="version", value="3.2.0")]) as workflow:
        build = Container(name="build", image="busybox", command=["echo"],
                          args=["building {{workflow.parameters.version}}"])
        release = Container(name="release", image="busybox", command=["echo"],
                            args=["releasing {{workflow.parameters.version}}"])
        gate = approval("approve", "Release {{workflow.parameters.version}} to production?",
                        hub=hub, timeout=4 * 3600, assignees=["group:release"],
                        context={"version": "{{workflow.parameters.version}}"})
        with Steps(name="main"):
            build()
            gate.step()
            release(when=gate.when())
    return workflow


if __name__ == "__main__":
    print(build_workflow().to_yaml(), end="")
