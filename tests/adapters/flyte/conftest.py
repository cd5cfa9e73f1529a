from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff.testing import HubProcess


@pytest.fixture
def flow(hub: HubProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubProcess]:
    """The hub, with this process's workflow steps pointed at it (a workflow token)."""
    monkeypatch.setenv("SIGNOFF_URL", hub.url)
    monkeypatch.setenv("SIGNOFF_TOKEN", hub.token("flyte-wf", role="workflow"))
    monkeypatch.delenv("SIGNOFF_FLYTE_RUN", raising=False)
    monkeypatch.delenv("SIGNOFF_FLYTE_MODE", raising=False)
    yield hub


@pytest.fixture(scope="module")
def module_flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One hub for a module's tests that neither restart it nor depend on an empty store."""
    process = HubProcess(Path(tmp_path_factory.mktemp("hub")) / "hub.db",
                         env={"SIGNOFF_SWEEP_INTERVAL": "0.2"})
    with process, pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIGNOFF_URL", process.url)
        patch.setenv("SIGNOFF_TOKEN", process.token("flyte-wf", role="workflow"))
        patch.delenv("SIGNOFF_FLYTE_RUN", raising=False)
        patch.delenv("SIGNOFF_FLYTE_MODE", raising=False)
        yield process
