"""A real Airflow deployment on loopback: api-server, scheduler, dag-processor and triggerer.

These are the parts ``airflow standalone`` starts, run here one by one so a test or a bench
can watch each (the triggerer's CPU and memory, for one) and stop exactly what it started.
SQLite and the LocalExecutor; ``[core] simple_auth_manager_all_admins`` so the REST API hands
out an admin token without a password.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from signoff.testing import free_port

from .harness import ROOT, make_home

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


class AirflowServices:
    """The four long-running parts of Airflow, each its own process group."""

    def __init__(self, home: Path, *, env: dict[str, str] | None = None,
                 port: int | None = None, components: tuple[str, ...] = COMPONENTS,
                 extra_dags: tuple[Path, ...] = (),
                 login: tuple[str, str] | None = None) -> None:
        self.home = home
        self.login = login  # user and password, when all-admins mode is off
        self.components = components
        self.extra_dags = extra_dags
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = {
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            **(env or {}),
        }
        self.env: dict[str, str] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._token: str | None = None

    def start(self, timeout: float = 420.0) -> AirflowServices:
        """Migrate the database, start every part and wait until all report healthy."""
        self.env = make_home(self.home, self.extra_dags, **self.extra_env)
        for name in self.components:
            log = (self.home / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", name], cwd=ROOT, env=self.env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"airflow {name} exited with {process.returncode}:\n"
                                       f"{self.log(name)[-3000:]}")
            if self._healthy():
                return self
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"airflow did not become healthy in {timeout} s")

    def _healthy(self) -> bool:
        try:
            health = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return False
        parts = ["metadatabase", *(c.replace("-", "_") for c in self.components
                                   if c != "api-server")]
        return all(health.get(part, {}).get("status") == "healthy" for part in parts)

    def log(self, name: str) -> str:
        """What one part logged so far."""
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def pid(self, name: str) -> int:
        """The process id of one part (the leader of its process group)."""
        return self.processes[name].pid

    @property
    def token(self) -> str:
        """An admin JWT for the REST API (as ``login``'s user when given)."""
        if self._token is None:
            self._token = self.token_of(*self.login) if self.login else None
        if self._token is None:
            answer = httpx.get(f"{self.url}/auth/token", timeout=30)
            answer.raise_for_status()
            self._token = answer.json()["access_token"]
        return self._token

    def token_of(self, username: str, password: str) -> str:
        """A JWT for one simple-auth-manager user, from ``POST /auth/token``."""
        answer = httpx.post(f"{self.url}/auth/token", timeout=30,
                            json={"username": username, "password": password})
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        return token

    def api(self, method: str, path: str, *, token: str | None = None,
            **kwargs: Any) -> httpx.Response:
        """One call to the REST API (``/api/v2`` + ``path``) as the admin (or ``token``'s)."""
        return httpx.request(method, f"{self.url}/api/v2{path}", timeout=30,
                             headers={"Authorization": f"Bearer {token or self.token}"},
                             **kwargs)

    def wait_for_dag(self, dag_id: str, timeout: float = 180.0) -> None:
        """Wait until the dag-processor parsed ``dag_id``, then unpause it."""
        deadline = time.monotonic() + timeout
        while self.api("GET", f"/dags/{dag_id}").status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} was not parsed in {timeout} s:\n"
                                   f"{self.log('dag-processor')[-3000:]}")
            time.sleep(1.0)
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Start a DAG run now; returns its run id."""
        # a logical date, so templates such as {{ ds }} render as in a scheduled run
        now = datetime.now(timezone.utc).isoformat()
        answer = self.api("POST", f"/dags/{dag_id}/dagRuns",
                          json={"logical_date": now, "conf": conf or {}})
        answer.raise_for_status()
        run_id: str = answer.json()["dag_run_id"]
        return run_id

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """One task instance as the REST API shows it."""
        answer = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        answer.raise_for_status()
        found: dict[str, Any] = answer.json()
        return found

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 180.0) -> dict[str, Any]:
        """Wait until the run finished; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json()
            if run.get("state") in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {run.get('state')} after {timeout} s")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM each part's process group, then SIGKILL what is left after 30 s."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the group: the part's own children
            except ProcessLookupError:
                pass
            process.wait()
        self.processes.clear()

    def __enter__(self) -> AirflowServices:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
