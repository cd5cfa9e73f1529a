from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import flyte
import pytest

from signoff.testing import HubProcess


@pytest.fixture(scope="session", autouse=True)
def _flyte_local() -> None:
    flyte.init()


def _point_at(hub: HubProcess, patch: pytest.MonkeyPatch) -> None:
    patch.setenv("SIGNOFF_URL", hub.url)
    patch.setenv("SIGNOFF_TOKEN", hub.token("flyte2-tasks", role="workflow"))


@pytest.fixture
def flow(hub: HubProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubProcess]:
    """A fresh hub, with Flyte 2 tasks in this process pointed at it."""
    _point_at(hub, monkeypatch)
    yield hub


@pytest.fixture(scope="module")
def module_flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One hub for a module's tests that do not restart it."""
    process = HubProcess(Path(tmp_path_factory.mktemp("hub")) / "hub.db",
                         env={"SIGNOFF_SWEEP_INTERVAL": "0.2"})
    with process, pytest.MonkeyPatch.context() as patch:
        _point_at(process, patch)
        yield process
