"""Argo Workflows: approval and input steps as suspend nodes, registered with the hub.

```python
from hera.workflows import Container, Steps, Workflow
from signoff.adapters.argo import HubConnection, approval

hub = HubConnection(url="http://signoff.signoff.svc:8765", token_secret="signoff-token")
with Workflow(generate_name="release-", entrypoint="main") as w:
    gate = approval("approve", "Release {{workflow.parameters.version}}?", hub=hub,
                    timeout=3600, assignees=["group:release"])
    with Steps(name="main"):
        gate.step()
        release(when=gate.when())
```

A gate is four templates: ``<name>`` (steps: register, wait, verify), ``<name>-register`` (an
``http`` template, or a container with curl, that POSTs the event to the hub),
``<name>-wait`` (a suspend node with intermediate parameters that the hub's
:class:`~signoff.adapters.argo.resumer.ArgoResumer` sets) and ``<name>-verify`` (a container
running ``signoff verify-decision``: the gate fails unless the node holds the hub's signed
decision; ``HubConnection(verify=False)`` leaves it out). Downstream steps read
``{{steps.<name>.outputs.parameters.value}}`` and ``...outcome``.

The workflow side needs hera (``pip install 'signoff[argo]'``); it loads on first use, so the
hub can import :mod:`signoff.adapters.argo.resumer` without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from signoff.adapters import lazy_exports
from signoff.adapters.argo._common import ArgoExtraMissing

if TYPE_CHECKING:
    from signoff.adapters.argo._manifest import (
        render,
        standalone_workflow,
        template_dicts,
        validate,
        wrap,
    )
    from signoff.adapters.argo._templates import ArgoGate, HubConnection, approval, input_step

__all__ = [
    "ArgoExtraMissing",
    "ArgoGate",
    "HubConnection",
    "approval",
    "input_step",
    "render",
    "standalone_workflow",
    "template_dicts",
    "validate",
    "wrap",
]

_LAZY = {
    "ArgoGate": "_templates",
    "HubConnection": "_templates",
    "approval": "_templates",
    "input_step": "_templates",
    "render": "_manifest",
    "standalone_workflow": "_manifest",
    "template_dicts": "_manifest",
    "validate": "_manifest",
    "wrap": "_manifest",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, public=__all__)
