from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff.testing import HubProcess


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    """A real `signoff serve` on loopback with a fresh SQLite store."""
    process = HubProcess(tmp_path / "hub.db", env={"SIGNOFF_SWEEP_INTERVAL": "0.2"})
    with process:
        yield process


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One hub for a whole module, for tests that do not restart it."""
    process = HubProcess(tmp_path_factory.mktemp("hub") / "hub.db")
    with process:
        yield process
