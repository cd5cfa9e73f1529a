"""The README's commands cannot drift: they are read from README.md itself and checked.

- the quickstart command is run as written, in a fresh venv (made with ``python -m venv``, as
  a newcomer's Python would be), from a fresh copy of the checkout, until the inbox shows the
  example event; the time from start to that moment is printed;
- the test command is exactly what ``.ci/run`` runs.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from signoff.testing import free_port

from .example_header import fresh_checkout

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Deploy churn-model v3 to production?"


def readme_commands() -> list[str]:
    """Every fenced ``sh`` block of the README's first two sections ("Try it", "Run every
    test"), as single commands."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## Try it")
    end = text.index("\n## ", text.index("## Run every test"))
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", text[start:end], re.S)]


def test_the_readme_has_two_commands_to_start_with() -> None:
    quickstart, tests = readme_commands()
    assert "examples/quickstart.py" in quickstart and "nox" in tests
    assert "\n" not in quickstart and "\n" not in tests


def test_the_readme_test_command_is_what_ci_runs() -> None:
    _, readme = readme_commands()
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    marker = max(i for i, line in enumerate(script) if "the README's test command" in line)
    runs = next(line.strip() for line in script[marker + 1:]
                if line.strip() and not line.lstrip().startswith("#"))
    assert runs == readme
    assert script[-1].strip() == readme  # and it is the last thing CI does


def _inbox_html(login_url: str) -> str:
    """What a browser shows after opening the printed one-time link and pressing its button."""
    with httpx.Client(follow_redirects=True, timeout=10) as browser:
        page = browser.get(login_url)
        page.raise_for_status()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None, page.text
        inbox = browser.post(login_url, data={"csrf": csrf.group(1)})
        inbox.raise_for_status()
        return inbox.text


@pytest.mark.install
def test_the_readme_quickstart_runs_as_written_from_a_fresh_venv(tmp_path: Path) -> None:
    quickstart, _ = readme_commands()
    if shutil.which("uv") is None and shutil.which("uv", path=str(Path.home() / ".local/bin")) is None:
        pytest.skip("uv is not installed; the quickstart installs it with pip, and so would we")
    started = time.monotonic()
    checkout = fresh_checkout(tmp_path / "signoff")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PATH=f"{venv / 'bin'}:{env['PATH']}", SIGNOFF_PORT=str(port),
               TMPDIR=str(tmp_path), PIP_DISABLE_PIP_VERSION_CHECK="1")
    process = subprocess.Popen(["bash", "-c", quickstart], cwd=checkout, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    assert process.stdout is not None
    lines: list[str] = []
    try:
        login_url = None
        for line in process.stdout:
            lines.append(line)
            found = re.search(r"(http://127\.0\.0\.1:\d+/\S*)", line)
            if found and login_url is None and "Open the inbox" in "".join(lines[-3:]):
                login_url = found.group(1)
            if login_url and "waiting for approval" in line:
                break
        else:
            raise AssertionError("the quickstart never waited:\n" + "".join(lines))
        assert login_url is not None and f":{port}/" in login_url
        inbox = _inbox_html(login_url)
        assert PROMPT in inbox
        elapsed = time.monotonic() - started
        print(f"\nREADME quickstart: fresh copy + fresh venv to the inbox showing "
              f"{PROMPT!r}: {elapsed:.1f} s")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert not list(tmp_path.glob("signoff-quickstart-*")), "".join(lines)
