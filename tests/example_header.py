"""Run an example's own header, so what the example tells a newcomer to type cannot drift.

Each file under ``examples/`` says at its top how to start what it needs, as shell lines that
begin with ``$ `` (a trailing ``\\`` continues a line; a line ending in ``&`` keeps running,
like a server left open in its own terminal). :func:`header_commands` reads those lines from
the file itself, and :class:`HeaderRun` runs them as written, from a fresh copy of the checkout,
one after the other in one environment (an ``export`` carries on to the next line, as in a
terminal).

Two things differ from a newcomer's terminal, both because other test runs share this machine:
the well-known ports a header names (8765 for the hub, 7233 for Temporal, ...) are replaced by
free ports, and a line that keeps running counts as started once the first such port it names
accepts connections (a person would wait for its "serving on" line).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from signoff.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
_PROMPT = re.compile(r"^\s*(?:#\s*)?\$ (.*)$")
_SESSION = ("SIGNOFF_", "PREFECT_", "AIRFLOW", "TEMPORAL_", "FLYTE")
_BACKGROUND = re.compile(r"(?<!&)&\s*(#.*)?$")


@dataclass(frozen=True)
class Command:
    """One command of a header, as written (continuations joined)."""

    text: str

    @property
    def background(self) -> bool:
        """The command keeps running (it ends with ``&``)."""
        return _BACKGROUND.search(self.text) is not None

    @property
    def comment(self) -> str:
        """Its trailing comment, if any (what the header says about it)."""
        found = re.search(r"\s#\s*(.*)$", self.text)
        return found.group(1) if found else ""


def header_commands(path: Path) -> list[Command]:
    """The ``$ `` lines of the file's header: a Python module's docstring, or the leading
    ``#`` comment of any other file."""
    text = path.read_text()
    if path.suffix == ".py":
        found = re.match(r'\s*(?:#.*\n)*\s*[ru]?"""(.*?)"""', text, re.S)
        assert found is not None, f"{path.name}: no module docstring"
        header = found.group(1)
    else:
        header = "".join(line for line in text.splitlines(True) if line.startswith("#"))
    commands: list[Command] = []
    pending = ""
    for line in header.splitlines():
        if pending:
            part = re.sub(r"^\s*#?\s*", "", line)
            pending += " " + part.rstrip("\\").strip()
            if not line.rstrip().endswith("\\"):
                commands.append(Command(pending))
                pending = ""
            continue
        found = _PROMPT.match(line)
        if not found:
            continue
        body = found.group(1).rstrip()
        if body.endswith("\\"):
            pending = body.rstrip("\\").rstrip()
        else:
            commands.append(Command(body))
    assert not pending, f"{path.name}: a header line ends with a continuation"
    return commands


def fresh_checkout(into: Path) -> Path:
    """A copy of the checkout as a newcomer has it: no virtualenvs, caches, builds or stores."""
    ignore = shutil.ignore_patterns(".git", ".venv*", "venv", ".nox", "__pycache__",
                                    "*.egg-info", "build", "dist", ".mypy_cache",
                                    ".ruff_cache", "*.db*")
    return Path(shutil.copytree(ROOT, into, ignore=ignore))


def wait_listening(port: int, process: subprocess.Popen[str], timeout: float) -> None:
    """Until something accepts connections on 127.0.0.1:``port``; fail if ``process`` ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before listening on {port}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listened on port {port} within {timeout} s")


class HeaderRun:
    """Runs a header's commands in a fresh checkout, with one environment carried along.

    Args:
        workdir: an empty folder; the checkout is copied into ``workdir/signoff``.
        ports: the well-known ports the header may name; each gets a free port here.
        env: variables to add (the rest comes from this process, minus a virtualenv's and
            the engines' and hub's settings, which a newcomer's shell does not have).
    """

    def __init__(self, workdir: Path, ports: tuple[int, ...] = (8765,),
                 env: Mapping[str, str] | None = None) -> None:
        self.cwd = fresh_checkout(workdir / "signoff")
        self.ports = {port: free_port() for port in ports}
        bin_dir = str(Path(sys.executable).parent)
        # a newcomer's shell has none of the test session's engine or hub settings
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("VIRTUAL_ENV", "PYTHONPATH") and not k.startswith(_SESSION)}
        self.env.update(PATH=f"{bin_dir}:{self.env['PATH']}", TMPDIR=str(workdir),
                        **(env or {}))
        self.processes: list[subprocess.Popen[str]] = []
        self.logs = workdir / "logs"
        self.logs.mkdir()

    def port(self, well_known: int) -> int:
        """The port used here for the header's ``well_known`` one."""
        return self.ports[well_known]

    def as_run(self, command: Command) -> str:
        """The command with its well-known ports replaced, and nothing else changed."""
        text = command.text
        for known, port in self.ports.items():
            text = re.sub(rf"\b{known}\b", str(port), text)
        return text

    def run(self, command: Command, timeout: float = 300) -> str:
        """Run a command that ends; keep the environment it leaves; return its output."""
        assert not command.background, command
        with tempfile.NamedTemporaryFile("rb", dir=self.logs, suffix=".env") as after:
            done = subprocess.run(["bash", "-c", f"set -e\n{self.as_run(command)}\n"
                                                 f"env -0 > {after.name}"],
                                  cwd=self.cwd, env=self.env, capture_output=True, text=True,
                                  timeout=timeout)
            assert done.returncode == 0, (f"{command.text!r} failed ({done.returncode}):\n"
                                          f"{done.stdout}{done.stderr}")
            pairs = (item.split(b"=", 1) for item in after.read().split(b"\0") if b"=" in item)
            self.env = {k.decode(): v.decode() for k, v in pairs
                        if k not in (b"_", b"SHLVL", b"PWD", b"OLDPWD")}
        return done.stdout

    def start(self, command: Command, timeout: float = 120) -> subprocess.Popen[str]:
        """Start a command that keeps running (a server, or the example itself).

        A server (a line ending in ``&``) counts as started when the first well-known port it
        names listens; the example's own line is returned at once, its output on a pipe.
        """
        text = self.as_run(command)
        if command.background:
            text = _BACKGROUND.sub("", text).rstrip()
            log = open(self.logs / f"{len(self.processes)}.log", "w")  # noqa: SIM115
            process = subprocess.Popen(["bash", "-c", text], cwd=self.cwd,
                                       env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                       text=True, start_new_session=True)
            log.close()
        else:
            process = subprocess.Popen(["bash", "-c", text], cwd=self.cwd, env=self.env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, start_new_session=True)
        self.processes.append(process)
        if command.background:
            try:
                wait_listening(self.ports[self._served_port(command)], process, timeout)
            except AssertionError as exc:
                raise AssertionError(f"{command.text!r}: {exc}\n{self.log_of(process)}") from exc
        return process

    def _served_port(self, command: Command) -> int:
        """The well-known port a server line listens on: its ``--port``, else the first one
        it names."""
        given = re.search(r"--port[ =](\d+)", command.text)
        if given and int(given.group(1)) in self.ports:
            return int(given.group(1))
        named = sorted((found.start(), known) for known in self.ports
                       if (found := re.search(rf"\b{known}\b", command.text)))
        assert named, f"{command.text!r} keeps running but names no port to wait for"
        return named[0][1]

    def hub(self, database: str = "hub.db", well_known: int = 8765) -> HeaderHub:
        """The hub the header started, seen by an admin token minted on its database (as its
        operator would: ``signoff token create --role admin --db``)."""
        done = subprocess.run(["signoff", "token", "create", "--user", "example-test",
                               "--role", "admin", "--db", database], cwd=self.cwd,
                              env=self.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return HeaderHub(f"http://127.0.0.1:{self.port(well_known)}",
                         done.stdout.strip().splitlines()[-1])

    def log_of(self, process: subprocess.Popen[str]) -> str:
        """What a server started by :meth:`start` printed so far."""
        index = self.processes.index(process)
        path = self.logs / f"{index}.log"
        return path.read_text() if path.exists() else ""

    def close(self) -> None:
        """Stop every process started, as Ctrl-C would, then for good."""
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            if process.stdout is not None:
                process.stdout.close()

    def __enter__(self) -> HeaderRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class HeaderHub:
    """A hub started by a header: its URL and an admin token (what ``find_event`` needs)."""

    url: str
    admin_token: str

    def headers(self) -> dict[str, str]:
        """The admin's ``Authorization`` header."""
        return {"Authorization": f"Bearer {self.admin_token}"}

    def answer(self, event_id: str, value: object) -> None:
        """Answer an event as the admin, through the API."""
        answered = httpx.post(f"{self.url}/api/v1/events/{event_id}/responses",
                              json={"value": value}, headers=self.headers(), timeout=30)
        assert answered.status_code == 200, answered.text
