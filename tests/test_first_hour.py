"""A newcomer's first hour (issue 15): a busy port, a wrong database, cleanup on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from signoff import Client
from signoff.cli import main
from signoff.store import open_store
from signoff.testing import HubProcess, HubStartError

ROOT = Path(__file__).resolve().parents[1]
SIGNOFF = [sys.executable, "-c", "from signoff.cli import run; run()"]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port held by a plain listening socket (not a hub)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_on_a_busy_port_exits_naming_the_port(busy_port: int, tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    done = subprocess.run([*SIGNOFF, "serve", "--port", str(busy_port), "--db", str(db)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"signoff: port {busy_port} on 127.0.0.1 is already in use; "
        "choose another with --port PORT or SIGNOFF_PORT=PORT"]
    assert "serving on" not in done.stdout + done.stderr and "token=" not in done.stdout
    assert not db.exists()  # a hub that cannot start leaves no store behind


def test_serve_port_from_signoff_port(busy_port: int, tmp_path: Path) -> None:
    done = subprocess.run([*SIGNOFF, "serve", "--db", str(tmp_path / "hub.db")],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SIGNOFF_PORT": str(busy_port)})
    assert done.returncode != 0 and f"port {busy_port}" in done.stderr


def test_quickstart_on_a_busy_port_says_so_and_prints_no_login_url(busy_port: int,
                                                                   tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"),
                           "--port", str(busy_port), "--once"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode != 0
    assert f"port {busy_port}" in done.stderr and "--port" in done.stderr
    assert "token=" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # its temporary folder is gone too


def test_hub_process_refuses_a_hub_it_did_not_start(tmp_path: Path) -> None:
    with HubProcess(tmp_path / "one.db") as first:
        # a second hub on the same port: the first one answers /healthz, but it is not ours
        second = HubProcess(tmp_path / "two.db", port=first.port)
        with pytest.raises(HubStartError, match=f"port {first.port}"):
            second.start()
        assert second.process is None and second.login_url is None
        assert httpx.get(f"{first.url}/healthz").status_code == 200


def test_healthz_returns_the_instance_it_was_started_with(hub: HubProcess) -> None:
    instance = httpx.get(f"{hub.url}/healthz").json()["instance"]
    assert re.fullmatch(r"[0-9a-f]{32}", instance)


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_quickstart_leaves_nothing_behind_when_interrupted(tmp_path: Path,
                                                           sig: signal.Signals) -> None:
    from signoff.testing import free_port

    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)})
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if "waiting for approval" in line:
                break
        else:
            raise AssertionError("the quickstart never waited for approval")
        [folder] = tmp_path.iterdir()
        assert folder.name.startswith("signoff-quickstart-")
        children = _children(process.pid)
        assert children, "the hub runs as a child process"
        process.send_signal(sig)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert list(tmp_path.iterdir()) == []
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in children)


# --- a wrong database path -----------------------------------------------------------------

def _invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


def _wrong_databases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.txt"
    text.write_text("these are my notes\n")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    return {
        "missing folder": (tmp_path / "nowhere" / "signoff.db", "folder"),
        "text file": (text, "not a signoff database"),
        "other sqlite": (other, "not a signoff database"),
    }


@pytest.mark.parametrize("case", ["missing folder", "text file", "other sqlite"])
@pytest.mark.parametrize("command", [("audit", "verify"),
                                     ("token", "create", "--user", "rita")])
def test_reading_commands_refuse_a_wrong_database(tmp_path: Path, case: str,
                                                  command: tuple[str, ...]) -> None:
    path, says = _wrong_databases(tmp_path)[case]
    before = path.read_bytes() if path.exists() else None
    result = _invoke(*command, "--db", str(path))
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: database: ") and says in line and str(path) in line
    assert "Traceback" not in result.output
    assert (path.read_bytes() if path.exists() else None) == before  # nothing written


@pytest.mark.parametrize("command", [("audit", "verify"),
                                     ("token", "create", "--user", "rita")])
def test_reading_commands_never_create_a_database(tmp_path: Path,
                                                  command: tuple[str, ...]) -> None:
    typo = tmp_path / "signof.db"
    result = _invoke(*command, "--db", str(typo))
    assert result.exit_code == 1 and "intact" not in result.output
    assert result.output.strip() == (
        f"error: database: no signoff database at {typo}; give the hub's database with --db "
        "or SIGNOFF_DATABASE (only `signoff serve` creates one)")
    assert list(tmp_path.iterdir()) == []
    # the same through the environment
    result = _invoke(*command, env={"SIGNOFF_DATABASE": str(typo)})
    assert result.exit_code == 1 and "no signoff database" in result.output
    assert list(tmp_path.iterdir()) == []


def test_reading_commands_work_on_the_hubs_database(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    open_store(str(db)).close()
    assert _invoke("token", "create", "--user", "rita", "--db", str(db)).exit_code == 0
    verified = _invoke("audit", "verify", "--db", str(db))
    assert verified.exit_code == 0 and "intact" in verified.output


@pytest.mark.parametrize("case", ["missing folder", "text file", "other sqlite"])
def test_serve_refuses_a_wrong_database_in_one_line(tmp_path: Path, case: str) -> None:
    path, says = _wrong_databases(tmp_path)[case]
    done = subprocess.run([*SIGNOFF, "serve", "--port", "0", "--db", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("error: database: ") and says in done.stderr
    assert not (tmp_path / "nowhere").exists()


def test_settings_errors_are_one_line(tmp_path: Path) -> None:
    result = _invoke("audit", "verify", env={"SIGNOFF_PORT": "eighty"})
    assert result.exit_code == 1
    assert result.output.startswith("error: settings: port: ") and "\n" == result.output[-1]
    assert len(result.output.strip().splitlines()) == 1
    missing = _invoke("audit", "verify", "--config", str(tmp_path / "nope.toml"))
    assert missing.exit_code == 1 and missing.output.startswith("error: config: no such file")


# --- one name for each setting -------------------------------------------------------------

def test_the_hub_url_and_token_have_one_name_everywhere() -> None:
    """README, docs, examples and code say SIGNOFF_URL / SIGNOFF_TOKEN, never another spelling."""
    # and two that name another system's address and credential, not the hub's
    allowed = {"SIGNOFF_URL", "SIGNOFF_TOKEN", "SIGNOFF_FLYTE_CONSOLE_URL", "SIGNOFF_FLYTE2_TOKEN"}
    spelled: dict[str, set[str]] = {}
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    for folder in ("core", "adapters", "examples"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".md", ".yaml"}]
    for path in files:
        for name in re.findall(r"SIGNOFF_[A-Z0-9_]*(?:URL|TOKEN|HUB)\b", path.read_text()):
            if name not in allowed and "__" not in name:  # SIGNOFF_RESUMERS__X__URL: a setting
                spelled.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert spelled == {}
    readme = (ROOT / "README.md").read_text()
    assert "`--url`/`--token` or `SIGNOFF_URL`/`SIGNOFF_TOKEN`" in readme
    assert re.search(r"export SIGNOFF_URL=\S+ SIGNOFF_TOKEN=so_", readme)


def test_a_missing_token_names_the_flag_and_the_variable(shared_hub: HubProcess) -> None:
    result = _invoke("list", env={"SIGNOFF_URL": shared_hub.url, "SIGNOFF_TOKEN": ""})
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1
    assert "--token" in result.output and "SIGNOFF_TOKEN" in result.output
    # a token that is wrong is not called missing
    wrong = _invoke("list", env={"SIGNOFF_URL": shared_hub.url, "SIGNOFF_TOKEN": "so_nope"})
    assert wrong.exit_code == 1 and "unknown API token" in wrong.output
    assert "no token was given" not in wrong.output


# --- a CLI that reads well -----------------------------------------------------------------

def _env(hub: HubProcess) -> dict[str, str]:
    return {"SIGNOFF_URL": hub.url, "SIGNOFF_TOKEN": hub.admin_token or ""}


def test_list_shows_pending_events_as_an_aligned_table(hub: HubProcess) -> None:
    flow = Client(hub.url, hub.token("flow", role="workflow"))
    waiting = flow.create(name="deploy", prompt="Deploy churn-model v3?", priority="high",
                          assignees=["group:ops"])
    done = flow.create(name="count", prompt="How many\nreplicas?",
                       input={"kind": "int", "min": 1, "max": 9})
    Client(hub.url, hub.admin_token).respond(done.id, 3)
    pending = _invoke("list", env=_env(hub))
    assert pending.exit_code == 0
    header, *rows = pending.output.splitlines()
    assert header.split() == ["ID", "PRIORITY", "STATUS", "AGE", "ASSIGNEES", "PROMPT"]
    assert len(rows) == 1 and rows[0].startswith(waiting.id)
    assert rows[0].split()[1:3] == ["high", "pending"] and "group:ops" in rows[0]
    everything = _invoke("list", "--status", "all", env=_env(hub)).output.splitlines()
    assert len(everything) == 3
    # aligned: every column starts at the same place on every line
    for name in ("PRIORITY", "STATUS", "PROMPT"):
        at = everything[0].index(name)
        assert all(line[at - 2:at] == "  " and line[at] != " " for line in everything[1:])
    assert any("answered" in line and "How many replicas?" in line for line in everything)
    none = _invoke("list", "--status", "cancelled", env=_env(hub))
    assert none.exit_code == 0 and none.output.strip() == "no cancelled events"


def test_cancel_says_what_it_did(hub: HubProcess) -> None:
    event = Client(hub.url, hub.token("flow", role="workflow")).create(name="x", prompt="Go?")
    said = _invoke("cancel", event.id, env=_env(hub))
    assert said.exit_code == 0
    assert said.output.strip() == (
        f'{event.id} cancelled by admin: "Go?" is off every inbox, and the workflow step '
        "waiting on it stops (signoff.Cancelled).")
    again = _invoke("cancel", event.id, env=_env(hub))
    assert again.exit_code == 1
    assert again.output.strip() == f"error: event {event.id} is already cancelled"


def test_show_renders_context_as_a_tree(hub: HubProcess) -> None:
    event = Client(hub.url, hub.token("flow", role="workflow")).create(
        name="deploy", prompt="Deploy?", input={"kind": "int", "min": 1, "max": 9},
        context={"model": "churn", "metrics": {"auc": 0.91, "folds": [0.9, {"k": None}]}})
    shown = _invoke("show", event.id, env=_env(hub))
    assert shown.exit_code == 0
    lines = shown.output.splitlines()
    assert lines[0].split() == ["event:", event.id, "(deploy)"]
    assert "input:" in shown.output and '"max": 9' in shown.output
    assert lines[lines.index("context:") + 1:] == [
        "  model: churn",
        "  metrics:",
        "    auc: 0.91",
        "    folds:",
        "      - 0.9",
        "      -",
        "        k: null",
    ]
    assert json.loads(_invoke("show", event.id, "--json", env=_env(hub)).output)["id"] == event.id


def test_errors_are_one_line_without_reprs(hub: HubProcess) -> None:
    unknown = _invoke("show", "ev_nope", env=_env(hub))
    assert unknown.exit_code == 1 and unknown.output.startswith("error: ")
    assert len(unknown.output.strip().splitlines()) == 1 and "Traceback" not in unknown.output
    down = _invoke("list", env={"SIGNOFF_URL": "http://127.0.0.1:9", "SIGNOFF_TOKEN": "x"})
    assert down.exit_code == 1 and down.output.startswith("error: http://127.0.0.1:9")
    assert len(down.output.strip().splitlines()) == 1 and "<" not in down.output


def test_help_marks_commands_whose_extra_is_missing() -> None:
    import importlib.util

    shown = _invoke("--help").output
    if importlib.util.find_spec("hera") is not None:
        pytest.skip("the argo extra is installed here")
    [line] = [line for line in shown.splitlines() if line.strip().startswith("argo")]
    assert "(needs signoff[argo])" in line
    ran = _invoke("argo", "render", "--name", "x")
    assert ran.exit_code == 1
    assert ran.output.startswith("error: signoff argo needs signoff[argo]")
    assert "pip install 'signoff[argo]'" in ran.output


# --- nothing left behind by the test fixtures ----------------------------------------------

_HOLDER = """
import sys, time
from signoff.testing import HubProcess
hub = HubProcess(sys.argv[1]).start()
print(hub.process.pid, flush=True)
if sys.argv[2] == "raise":
    raise RuntimeError("a test that fails without stopping its hub")
time.sleep(120)
"""


@pytest.mark.parametrize("ending", ["raise", "sigkill", "sigterm"])
def test_hub_process_dies_with_whoever_started_it(tmp_path: Path, ending: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / "hub.db"),
                               ending], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    assert holder.stdout is not None
    try:
        hub_pid = int(holder.stdout.readline())
        assert _alive(hub_pid)
        if ending != "raise":
            holder.send_signal(signal.SIGKILL if ending == "sigkill" else signal.SIGTERM)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    deadline = time.monotonic() + 15
    while _alive(hub_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(hub_pid)
