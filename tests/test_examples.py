"""Every example in examples/ that needs only the hub runs here (adapters run theirs)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

from signoff.testing import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_waits_in_the_inbox_and_goes_on_when_answered() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--port", str(port), "--once"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines: list[str] = []

    def read_until(pattern: str) -> re.Match[str]:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"{pattern!r} never printed:\n{''.join(lines)}")

    try:
        token = read_until(r"\?token=(\S+)").group(1)
        headers = {"Authorization": f"Bearer {token}"}
        approval = read_until(r"waiting for approval -> (\S+)/events/(\S+)").group(2)
        inbox = httpx.get(f"http://127.0.0.1:{port}/api/v1/events",
                          params={"status": "pending"}, headers=headers).json()["events"]
        assert [e["id"] for e in inbox] == [approval]
        answered = httpx.post(f"http://127.0.0.1:{port}/api/v1/events/{approval}/responses",
                              json={"value": True, "comment": "ship it"}, headers=headers)
        assert answered.status_code == 200
        read_until(r"approved, deploying")
        share = read_until(r"waiting for the rollout share -> \S+/events/(\S+)").group(1)
        bad = httpx.post(f"http://127.0.0.1:{port}/api/v1/events/{share}/responses",
                         json={"value": "50%"}, headers=headers)
        assert bad.status_code == 422
        httpx.post(f"http://127.0.0.1:{port}/api/v1/events/{share}/responses",
                   json={"value": "25%"}, headers=headers).raise_for_status()
        read_until(r"rolling out to 25% of traffic")
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()
