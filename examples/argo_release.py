"""An Argo release workflow with an approval, written with hera.

    python examples/argo_release.py > release.yaml     # the manifest
    argo submit release.yaml -p version=3.2.0           # or: build_workflow().create()

build -> approve (in the signoff inbox) -> release, guarded by ``when``. A rejection fails
the approve step, so the workflow stops there; Argo's own timeout (the hub's deadline plus a
grace) leaves ``value`` at ``false``, so it never releases by default.
"""

from __future__ import annotations

import os

from hera.workflows import Container, Parameter, Steps, Workflow

from signoff.adapters.argo import HubConnection, approval


def build_workflow(hub: HubConnection | None = None) -> Workflow:
    """The release workflow; ``hub`` says where the hub is and which Secret holds the token."""
    hub = hub or HubConnection(url=os.environ.get("SIGNOFF_URL",
                                                  "http://signoff.signoff.svc:8765"),
                               token_secret="signoff-token")
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
