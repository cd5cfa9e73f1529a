"""``/readyz`` (the store answers) beside ``/healthz`` (the process answers), on a real hub.

The fault is a real one: another process holds SQLite's WAL-index locks on the hub's database
(what a stuck backup tool or a second program on the file does), so the hub's readers wait.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from signoff.testing import HubProcess


@contextmanager
def database_locked_by_another_process(database: str) -> Iterator[None]:
    """Hold the write, checkpoint, recovery and every read-mark lock of the WAL index (bytes
    120-127 of ``-shm``), as a process in the middle of recovering the WAL would."""
    fd = os.open(database + "-shm", os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 8, 120, os.SEEK_SET)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops its locks


def wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def test_readyz_answers_200_when_the_store_answers(hub: HubProcess) -> None:
    answer = httpx.get(f"{hub.url}/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ready"}
    assert "retry-after" not in answer.headers
    assert httpx.head(f"{hub.url}/readyz").status_code == 200


def test_readyz_is_503_with_retry_after_while_the_store_cannot_answer_and_healthz_stays_200(
        tmp_path: Path) -> None:
    env = {"SIGNOFF_READY_TIMEOUT": "0.5", "SIGNOFF_READY_RETRY_AFTER": "7"}
    with HubProcess(tmp_path / "hub.db", env=env) as hub:
        assert httpx.get(f"{hub.url}/readyz").status_code == 200
        with database_locked_by_another_process(hub.database):
            started = time.monotonic()
            answer = httpx.get(f"{hub.url}/readyz", timeout=10)
            took = time.monotonic() - started
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "7"
            assert answer.json()["status"] == "unavailable"
            assert "did not answer within 0.5 s" in answer.json()["reason"]
            assert took < 5  # bounded by ready_timeout, not by SQLite's 30 s busy wait
            # a second probe while the first check still hangs waits on that same check
            assert httpx.get(f"{hub.url}/readyz", timeout=10).status_code == 503
            # liveness does not ask the store: a database outage restarts no replica
            alive = httpx.get(f"{hub.url}/healthz", timeout=5)
            assert alive.status_code == 200 and alive.json()["status"] == "ok"
        # the lock is gone: ready again, by itself
        wait_for(lambda: httpx.get(f"{hub.url}/readyz", timeout=5).status_code == 200, 45)


def test_readyz_is_listed_in_the_openapi_document_with_its_503(hub: HubProcess) -> None:
    spec = httpx.get(f"{hub.url}/openapi.json").json()
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]
