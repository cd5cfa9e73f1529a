"""A real Prefect server for the session and a real hub wired to it.

Prefect reads its settings when it is first imported, so the environment is set here, before
any test module imports Prefect: a private ``PREFECT_HOME`` and the API URL of the server the
``prefect_api`` fixture starts (``prefect server start`` on loopback, SQLite).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from signoff.testing import HubProcess, free_port

# SIGNOFF_TEST_PREFECT_API=http://127.0.0.1:4200/api reuses a running server (faster locally)
EXTERNAL_API = os.environ.get("SIGNOFF_TEST_PREFECT_API")
PREFECT_HOME = Path(tempfile.mkdtemp(prefix="signoff-prefect-"))
PREFECT_PORT = int(EXTERNAL_API.rsplit(":", 1)[1].split("/")[0]) if EXTERNAL_API else free_port()
PREFECT_API = f"http://127.0.0.1:{PREFECT_PORT}/api"

# services the tests do not need cost CPU on a 2-core machine
_QUIET = ("SCHEDULER", "LATE_RUNS", "FOREMAN", "TRIGGERS", "DB_VACUUM",
          "CANCELLATION_CLEANUP", "REPOSSESSOR")
ENV = {
    "PREFECT_HOME": str(PREFECT_HOME),
    "PREFECT_API_URL": PREFECT_API,
    "PREFECT_UI_URL": f"http://127.0.0.1:{PREFECT_PORT}",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
    **{f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in _QUIET},
}
os.environ.update(ENV)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """``prefect server start`` on loopback for the whole session; yields its API URL."""
    if EXTERNAL_API:
        yield PREFECT_API
        return
    log = (PREFECT_HOME / "server.log").open("a")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(PREFECT_PORT)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **ENV},
        start_new_session=True)
    deadline = time.monotonic() + 180
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"prefect server exited: "
                                   f"{(PREFECT_HOME / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{PREFECT_API}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prefect server did not answer /api/health in 180 s")
            time.sleep(0.3)
        yield PREFECT_API
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def hub_env(prefect_api: str) -> dict[str, str]:
    """What a hub needs to resume flows on the test Prefect server."""
    return {"SIGNOFF_SWEEP_INTERVAL": "0.2", "SIGNOFF_RESUMERS__PREFECT__API_URL": prefect_api}


@pytest.fixture(scope="module")
def prefect_hub(prefect_api: str, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[HubProcess]:
    """One real hub per test module, with its Prefect resumer pointed at the test server."""
    with HubProcess(tmp_path_factory.mktemp("hub") / "hub.db", env=hub_env(prefect_api)) as hub:
        yield hub


@pytest.fixture
def fresh_hub(prefect_api: str, tmp_path: Path) -> Iterator[HubProcess]:
    """A hub of one's own, for tests that restart it."""
    with HubProcess(tmp_path / "hub.db", env=hub_env(prefect_api)) as hub:
        yield hub


@pytest.fixture(scope="module")
def flow_token(prefect_hub: HubProcess) -> str:
    """A workflow token on the module's hub."""
    return prefect_hub.token("prefect-flows", role="workflow")
