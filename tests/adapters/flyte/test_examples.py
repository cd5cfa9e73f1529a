"""The flytekit example runs as a user runs it, against a real hub; and the import rules."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from signoff.testing import HubProcess

from ...example_header import HeaderRun, header_commands
from ..scenarios import find_event
from .test_local import _pending

ROOT = Path(__file__).resolve().parents[3]


def test_the_publish_example_runs_locally(flow: HubProcess) -> None:
    example = subprocess.Popen([sys.executable, str(ROOT / "examples/flyte_publish.py")],
                               cwd=ROOT, env=dict(os.environ), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    title = _pending(flow, ":title")
    httpx.post(f"{flow.url}/api/v1/events/{title['id']}/responses",
               json={"value": "Q3 report"}, headers=flow.headers()).raise_for_status()
    gate = _pending(flow, ":publish")
    assert gate["assignees"] == ["group:editors"] and gate["context"] == {"channel": "#reports"}
    editor = flow.token("eve", role="reviewer", groups=("editors",))
    httpx.post(f"{flow.url}/api/v1/events/{gate['id']}/responses", json={"value": True},
               headers=flow.headers(editor)).raise_for_status()
    out, _ = example.communicate(timeout=120)
    assert "sent 'Q3 report': 3 rows, mean 2.50" in out, out


def test_the_publish_example_runs_as_its_header_says(tmp_path: Path) -> None:
    """The header's lines, read from the example and run as written: a hub, a workflow token,
    the example; the run's log shows each question's inbox URL."""
    hub_line, token, run = header_commands(ROOT / "examples/flyte_publish.py")
    assert hub_line.background and hub_line.text.startswith("signoff serve")
    assert run.text == "python examples/flyte_publish.py"
    with HeaderRun(tmp_path) as shell:
        shell.start(hub_line)
        shell.run(token)
        process = shell.start(run)
        hub = shell.hub()
        title = find_event(hub, "flyte:", timeout=120)  # type: ignore[arg-type]
        assert title["name"].endswith("title"), title
        hub.answer(title["id"], "Q3 report")
        gate = title
        deadline = time.monotonic() + 120
        while gate["id"] == title["id"]:
            assert time.monotonic() < deadline, "the approval was never asked"
            time.sleep(0.2)
            gate = find_event(hub, "flyte:")  # type: ignore[arg-type]
        hub.answer(gate["id"], True)
        out, _ = process.communicate(timeout=120)
    assert process.returncode == 0, out
    assert "sent 'Q3 report': 3 rows, mean 2.50" in out, out
    # flytekit's rich log wraps lines at 80 columns when there is no terminal: read it unwrapped
    unwrapped = "".join(out.split())
    for event in (title, gate):
        assert f"signoff:waitingforananswerintheinbox:{hub.url}/events/{event['id']}" \
            in unwrapped, out


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_the_resumer_and_the_package_load_no_flyte_sdk() -> None:
    done = _fresh("import sys, signoff.adapters.flyte, signoff.adapters.flyte.resumer; "
                  "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                  "('flytekit', 'flyte', 'grpc', 'flyteidl')))")
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_missing_sdk_names_the_extra() -> None:
    done = _fresh("import sys; sys.modules['flytekit'] = None\n"
                  "try:\n    from signoff.adapters.flyte import approve\n"
                  "except ImportError as exc:\n"
                  "    print(type(exc).__name__, exc)\n")
    assert done.stdout.startswith("MissingExtra"), done.stdout + done.stderr
    assert "pip install 'signoff[flyte]'" in done.stdout
    done = _fresh("import sys; sys.modules['flyte'] = None\n"
                  "try:\n    import signoff.adapters.flyte.v2\n"
                  "except ImportError as exc:\n"
                  "    print(type(exc).__name__, exc)\n")
    assert "MissingExtra" in done.stdout and "signoff[flyte2]" in done.stdout, done.stdout
