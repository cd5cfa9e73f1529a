"""Every example in examples/ that needs only the hub runs here (adapters run theirs), and every
example says at its top how to start what it needs, in lines a test runs as written."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from signoff.testing import free_port

from .example_header import header_commands
from .test_readme import readme_commands

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.suffix in (".py", ".yaml"))


def test_the_quickstart_header_is_the_readme_command() -> None:
    (command,) = header_commands(ROOT / "examples" / "quickstart.py")
    assert command.text == readme_commands()[0]  # which test_readme runs in a fresh venv


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_has_a_header_that_a_test_runs(example: Path) -> None:
    """Its top says how to start what it needs (``$ `` lines), and a test reads those lines
    from the file and runs them (an adapter's test, in that adapter's folder)."""
    assert header_commands(example), f"{example.name} says nowhere how to run it"
    if example.name == "quickstart.py":
        return  # test_readme.py runs it, as the README's first command
    engine = example.name.split("_")[0]
    folder = ROOT / "tests" / "adapters" / ("flyte2" if example.name == "flyte_v2_hitl.py"
                                            else engine)
    runners = [path for path in folder.glob("test_*.py")
               if "header_commands(" in (text := path.read_text())
               and (example.name in text or f'"{engine}_*' in text or "PLAYS" in text)]
    assert runners, f"no test in {folder.relative_to(ROOT)} runs {example.name}'s header"


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

    with contextlib.ExitStack() as stack:
        stack.callback(process.wait)
        stack.callback(process.kill)
        # the printed one-time link signs a browser in; the reviewer answers in the inbox
        link = read_until(r"(http\S+/login/link/\S+)").group(1)
        browser = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}"))
        confirm = browser.get(link)
        assert confirm.status_code == 200 and "Sign in as admin" in confirm.text
        login_csrf = re.search(r'name="csrf" value="([^"]+)"', confirm.text)
        assert login_csrf is not None
        assert browser.post(link, data={"csrf": login_csrf.group(1)}).status_code == 303
        approval = read_until(r"waiting for approval -> (\S+)/events/(\S+)").group(2)
        inbox = browser.get("/")
        assert inbox.status_code == 200 and f"/events/{approval}" in inbox.text
        found = re.search(r'name="csrf" value="([0-9a-f]{64})"', inbox.text)
        assert found is not None
        csrf = found.group(1)
        answered = browser.post(f"/events/{approval}/respond",
                                data={"csrf": csrf, "choice": "approve", "comment": "ship it"})
        assert answered.status_code == 303
        read_until(r"approved, deploying")
        share = read_until(r"waiting for the rollout share -> \S+/events/(\S+)").group(1)
        bad = browser.post(f"/events/{share}/respond", data={"csrf": csrf, "value": "50%"})
        assert bad.status_code == 422
        done = browser.post(f"/events/{share}/respond", data={"csrf": csrf, "value": "25%"})
        assert done.status_code == 303
        read_until(r"rolling out to 25% of traffic")
        assert process.wait(timeout=30) == 0
