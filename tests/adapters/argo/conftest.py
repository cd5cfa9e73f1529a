from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signoff.testing import HubProcess

from .fake_argo import FakeArgoServer
from .fake_controller import FakeController, GateRun

NAMESPACE = "argo"
SECRET = "signoff-token"


def hub_env(argo: FakeArgoServer) -> dict[str, str]:
    """A hub whose argo resumer talks to the fake Argo Server, with quick retries."""
    return {
        "SIGNOFF_SWEEP_INTERVAL": "0.2",
        "SIGNOFF_DELIVERY_BACKOFF": "0.1",
        "SIGNOFF_DELIVERY_BACKOFF_MAX": "0.5",
        "SIGNOFF_RESUMERS__ARGO__URL": argo.url,
        "SIGNOFF_RESUMERS__ARGO__TOKEN": argo.token,
        "SIGNOFF_RESUMERS__ARGO__NAMESPACES": NAMESPACE,
    }


class ArgoWorld:
    """The fake Argo Server and controller, and a real hub wired to them."""

    def __init__(self, argo: FakeArgoServer, hub: HubProcess) -> None:
        self.argo, self.hub = argo, hub
        self.controller = FakeController(argo)
        self.workflow_token = hub.token("argo-workflows", role="workflow")
        argo.secrets[(NAMESPACE, SECRET)] = {"authorization": f"Bearer {self.workflow_token}"}

    def hub_connection(self, **options: Any) -> Any:
        from signoff.adapters.argo import HubConnection

        return HubConnection(url=self.hub.url, token_secret=SECRET, **options)

    def run(self, manifest: dict[str, Any], step: str,
            item: tuple[int, str] | None = None) -> GateRun:
        """Submit ``manifest`` to the fake server and run its gate step ``step``."""
        workflow = self.argo.submit(manifest, NAMESPACE)
        return self.controller.start_gate(workflow, step, item=item)


@pytest.fixture(scope="session")
def argo_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArgoWorld]:
    with FakeArgoServer() as argo:
        hub = HubProcess(Path(tmp_path_factory.mktemp("argo-hub")) / "hub.db",
                         env=hub_env(argo))
        with hub:
            yield ArgoWorld(argo, hub)
