"""Run a real hub in tests: ``signoff serve`` in a subprocess, on loopback, on a temporary store.

```python
from signoff.testing import HubProcess

with HubProcess(tmp_path / "hub.db") as hub:
    token = hub.token("flow", role="workflow")
    ...
```

Needs the ``hub`` extra in the environment the tests run in.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

__all__ = ["HubProcess", "HubStartError", "free_port", "until"]

T = TypeVar("T")

_LOGIN = re.compile(r"(http\S+/login/link/\S+)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def until(check: Callable[[], T | None], timeout: float = 20.0, what: str = "the condition",
          every: float = 0.05) -> T:
    """What ``check`` returns once it is truthy, asking every ``every`` seconds; tests wait on
    a condition, never a fixed sleep.

    Raises:
        AssertionError: ``check`` stayed falsy for ``timeout`` seconds (naming ``what``).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {timeout} s")


_RUNNING: set[HubProcess] = set()


def _stop_all() -> None:
    for hub in list(_RUNNING):
        hub.stop()


atexit.register(_stop_all)  # a test run that ends early leaves no hub behind


def _child_code() -> str:
    """The ``python -c`` code that runs ``signoff``. On Linux, from the main thread, the child
    first asks for SIGTERM when its parent dies (a killed test run, a SIGTERM from CI), and
    exits at once if the parent is already gone. Done after exec, in the child itself: a
    ``preexec_fn`` is unsafe in a process with threads. Not from other threads: the kernel
    sends the signal when the starting *thread* ends.
    """
    run = "from signoff.cli import run; run()"
    if not sys.platform.startswith("linux") or threading.current_thread() != threading.main_thread():
        return run
    return (f"import ctypes, os, sys; ctypes.CDLL(None).prctl(1, {int(signal.SIGTERM)}); "
            f"os.getppid() == {os.getpid()} or sys.exit(1); {run}")


class HubStartError(RuntimeError):
    """The hub did not start; ``reason`` is the hub's own last word (e.g. a taken port)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class HubProcess:
    """A ``signoff serve`` subprocess; restartable on the same store and port."""

    def __init__(self, database: str | Path, *, port: int | None = None,
                 env: dict[str, str] | None = None, config: str | Path | None = None,
                 log_dir: str | Path | None = None) -> None:
        self.database = str(database)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.config = config
        self.admin_token: str | None = None
        """An admin API token (minted by :meth:`start` on a fresh store)."""
        self.login_url: str | None = None
        """The one-time login link the hub printed on a fresh store (signs a browser in as
        admin, once)."""
        self.process: subprocess.Popen[str] | None = None
        # beside a SQLite file; for a database server, in ``log_dir`` (default: the temp folder)
        if log_dir is None and "://" not in self.database:
            self.log_path = Path(self.database + f".{self.port}.log")
        else:
            self.log_path = Path(log_dir or tempfile.gettempdir()) / f"signoff-hub.{self.port}.log"

    def start(self, timeout: float = 30.0) -> HubProcess:
        """Start the hub and wait until ``/healthz`` answers, from this very process.

        Each start passes a fresh random ``instance`` that ``/healthz`` must return, so a
        different server already on the port is never taken for this hub. On any failure the
        process is stopped and :class:`HubStartError` says why.
        """
        args = [sys.executable, "-c", _child_code(), "serve",
                "--port", str(self.port), "--db", self.database]
        if self.config is not None:
            args += ["--config", str(self.config)]
        instance = secrets.token_hex(16)
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=log, text=True,
                env={**self.env, "SIGNOFF_INSTANCE": instance})
        _RUNNING.add(self)
        try:
            self._wait_healthy(instance, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _failed(self, what: str) -> HubStartError:
        log = self.log_path.read_text() if self.log_path.exists() else ""
        last = log.strip().splitlines()[-1] if log.strip() else ""
        reason = last or what
        return HubStartError(f"{what}: {reason} (log: {self.log_path})", reason)

    def _wait_healthy(self, instance: str, timeout: float) -> None:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + timeout
        if self.admin_token is None:
            # a fresh store prints the admin's one-time login link first, then nothing more on
            # stdout; the tests' own admin API token is minted beside it
            line = self.process.stdout.readline() + self.process.stdout.readline()
            found = _LOGIN.search(line)
            if found is None:
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    raise self._failed(f"hub printed no login link: {line!r}") from None
                raise self._failed(f"hub exited with {self.process.returncode}")
            self.login_url = found.group(1)
            self.admin_token = self.token("admin", role="admin")
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self._failed(f"hub exited with {self.process.returncode}")
            try:
                answer = httpx.get(f"{self.url}/healthz", timeout=1)
                if answer.status_code == 200 and answer.json().get("instance") == instance:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        raise self._failed(f"hub did not become healthy in {timeout} s")

    def stop(self, kill: bool = False) -> None:
        """Stop the hub (SIGTERM, or SIGKILL with ``kill``) and wait for it to exit."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None
        _RUNNING.discard(self)

    def restart(self, kill: bool = False) -> HubProcess:
        """Stop and start again on the same store and port."""
        self.stop(kill=kill)
        return self.start()

    def token(self, user: str, role: str = "reviewer", groups: tuple[str, ...] = ()) -> str:
        """Mint a token in this hub's store (what ``signoff token create`` does)."""
        from ._rules import Identity
        from .store import load_audit_key, open_store

        # the audit key the hub was started with (its env), else the file beside the database
        key = load_audit_key(self.database, key=self.env.get("SIGNOFF_AUDIT_KEY"),
                             key_file=self.env.get("SIGNOFF_AUDIT_KEY_FILE"), create=True)
        store = open_store(self.database, audit_key=key.secret)
        try:
            return store.create_token(Identity(user=user, role=role, groups=groups))  # type: ignore[arg-type]
        finally:
            store.close()

    def headers(self, token: str | None = None) -> dict[str, str]:
        """``Authorization`` headers for ``token`` (the admin's by default)."""
        return {"Authorization": f"Bearer {token or self.admin_token}"}

    def __enter__(self) -> HubProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
