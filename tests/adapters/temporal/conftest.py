from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from .harness import LoopThread, Stack, stack_on, start_dev_server, start_time_skipping


@pytest.fixture(scope="session")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="session")
def dev_server(loop: LoopThread) -> Iterator[WorkflowEnvironment]:
    """``temporal server start-dev`` (in memory), once for the session."""
    env = loop.run(start_dev_server())
    yield env
    loop.run(env.shutdown())


@pytest.fixture
def time_skipping(loop: LoopThread) -> Iterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server, fresh per test (its clock is global)."""
    env = loop.run(start_time_skipping())
    yield env
    loop.run(env.shutdown())


@pytest.fixture
def dev(loop: LoopThread, dev_server: WorkflowEnvironment, tmp_path: Path) -> Iterator[Stack]:
    """A fresh hub and worker on the session's dev server."""
    with stack_on(loop, dev_server, tmp_path / "hub.db") as stack:
        yield stack


@pytest.fixture(scope="module")
def dev_shared(loop: LoopThread, dev_server: WorkflowEnvironment,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One hub and worker on the dev server for a whole module (tests that restart nothing)."""
    with stack_on(loop, dev_server, tmp_path_factory.mktemp("hub") / "hub.db") as stack:
        yield stack


@pytest.fixture
def skipping(loop: LoopThread, time_skipping: WorkflowEnvironment,
             tmp_path: Path) -> Iterator[Stack]:
    """A fresh hub and worker on a fresh time-skipping server."""
    with stack_on(loop, time_skipping, tmp_path / "hub.db") as stack:
        yield stack
