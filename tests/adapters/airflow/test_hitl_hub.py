"""The Airflow HITL bridge inside a real hub process, without Airflow: an address that never
answers does not stall the hub, only the bridge may make ``airflow-hitl`` events, and an
address egress does not allow stops the hub at start, naming the field.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from signoff.testing import HubProcess, HubStartError, until


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers a byte."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def _config(path: Path, port: int, *, allow: bool = True) -> Path:
    allowed = (f'egress_allow = ["http://127.0.0.1:{port}"]\n'
               'egress_allow_private = ["127.0.0.1/32"]\n') if allow else ""
    path.write_text(allowed + "[airflow_hitl.stuck]\n"
                    f'url = "http://127.0.0.1:{port}"\n'
                    'token = "not-a-real-jwt"\n'
                    "poll_interval = 0.2\ntimeout = 0.5\n")
    return path


def test_an_airflow_that_never_answers_does_not_stall_the_hub(tmp_path: Path,
                                                               black_hole: int) -> None:
    config = _config(tmp_path / "signoff.toml", black_hole)
    with HubProcess(tmp_path / "hub.db", config=config) as hub:
        failed = "airflow_hitl.stuck: looking at Airflow's pending actions failed"
        until(lambda: failed in hub.log_path.read_text(), timeout=30,
              what="the bridge to log the timeout")
        assert "ReadTimeout" in hub.log_path.read_text()
        for _ in range(20):  # the hub keeps answering at once while the bridge keeps trying
            health = httpx.get(f"{hub.url}/healthz", timeout=2).json()
            assert health["status"] == "ok"
        assert health["loop_lag"]["max"] < 0.25, health
        # logged once per reason, not at every look (one every 0.7 s here)
        assert hub.log_path.read_text().count(failed) == 1

        # a workflow token cannot make an event the bridge would answer Airflow with
        token = hub.token("someone", role="workflow")
        made = httpx.post(f"{hub.url}/api/v1/events", headers=hub.headers(token), json={
            "name": "sneaky", "prompt": "Approve?", "source": {
                "orchestrator": "airflow-hitl",
                "params": {"deployment": "stuck", "dag_id": "d", "run_id": "r",
                           "task_id": "t", "map_index": -1, "try_number": 1}}})
        assert made.status_code == 422, made.text
        assert made.json()["error"]["field"] == "source.params"


def test_an_airflow_address_egress_does_not_allow_stops_the_hub(tmp_path: Path) -> None:
    config = _config(tmp_path / "signoff.toml", 8080, allow=False)
    hub = HubProcess(tmp_path / "hub.db", config=config)
    with pytest.raises(HubStartError):
        hub.start()
    log = hub.log_path.read_text()
    assert ("refusing to start: airflow_hitl.stuck.url: refused: http://127.0.0.1:8080 is not "
            "in egress_allow (add it to egress_allow") in log
