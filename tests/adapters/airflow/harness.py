"""Real Airflow for the tests: one Airflow home a session, a ``dag.test()`` runner, a driver.

Starting Airflow costs seconds (more when this machine sets ``PYTHONDONTWRITEBYTECODE``), so
the session makes one ``AIRFLOW_HOME`` (SQLite, the DAG folder holding ``examples/airflow_*.py``
and ``tests/adapters/airflow/dags/*.py``) and one long-lived runner process that runs
``dag.test()`` on request (:mod:`.runner`). The hub changes from test to test: each command
carries the ``signoff_default`` connection as ``AIRFLOW_CONN_SIGNOFF_DEFAULT``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signoff.testing import HubProcess
from tests.adapters.scenarios import Outcome, Scenario

ROOT = Path(__file__).resolve().parents[3]
TEST_DAGS = Path(__file__).resolve().parent / "dags"
EXAMPLES = ROOT / "examples"
SCENARIO_DAGS = TEST_DAGS / "signoff_scenarios.py"


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of every Airflow process of the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "SIGNOFF_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # the DAG files import tests.adapters.scenarios
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    env.update(extra)
    return env


def make_home(home: Path, extra_dags: tuple[Path, ...] = (), **extra: str) -> dict[str, str]:
    """Create an Airflow home with the example and test DAGs and a migrated SQLite database."""
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    for source in [*sorted(EXAMPLES.glob("airflow_*.py")), *sorted(TEST_DAGS.glob("*.py")),
                   *extra_dags]:
        shutil.copy(source, dags / source.name)
    env = airflow_env(home, **extra)
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return env


def compile_site_packages() -> None:
    """Byte-compile the environment once: with PYTHONDONTWRITEBYTECODE set, Airflow would
    otherwise compile its thousands of modules again in every process it starts."""
    marker = Path(sys.prefix) / ".signoff-bytecode"
    if marker.exists():
        return
    import sysconfig

    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0",
                    sysconfig.get_paths()["purelib"]], capture_output=True, timeout=900)
    marker.write_text("compiled\n")


class DagTestRunner:
    """A subprocess running :mod:`.runner`: ``dag.test()`` one DAG run at a time."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env
        self.process: subprocess.Popen[str] | None = None
        self.log_path = home / "runner.log"
        self.busy: Path | None = None

    def start(self) -> DagTestRunner:
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.adapters.airflow.runner"], cwd=ROOT, env=self.env,
            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, text=True)
        return self

    def submit(self, dag_file: Path, dag_id: str, *, env: dict[str, str] | None = None,
               manual: bool = False) -> DagRunHandle:
        """Queue one ``dag.test()`` of ``dag_id``; returns at once. ``manual`` runs it as
        Airflow 3 runs a manually triggered DAG: with no logical date."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        assert self.process is not None and self.process.stdin is not None
        result = self.home / "results" / f"{uuid.uuid4().hex}.json"
        result.parent.mkdir(exist_ok=True)
        command = {"dag_file": str(self.home / "dags" / dag_file.name), "dag_id": dag_id,
                   "env": env or {}, "result": str(result), "manual": manual}
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        self.busy = result
        return DagRunHandle(self, result, dag_id)

    def log_text(self) -> str:
        """Everything the runner logged so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Close stdin, then terminate the runner if it does not exit."""
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.busy = None

    def kill(self) -> None:
        """Stop a runner stuck in a run (a failed test left a question unanswered)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        self.busy = None

    def settle(self) -> None:
        """After a test: a runner still busy with a run is killed, so the next test starts clean."""
        if self.busy is not None and not self.busy.exists():
            self.kill()
        self.busy = None


@dataclass
class DagRunHandle:
    """One submitted ``dag.test()``; :meth:`wait` gives what the runner reported."""

    runner: DagTestRunner
    result_path: Path
    dag_id: str
    _result: dict[str, Any] | None = field(default=None, repr=False)

    def wait(self, timeout: float = 180.0) -> dict[str, Any]:
        """The run's report: state, tasks (state, try_number, end, xcom) and failures."""
        if self._result is not None:
            return self._result
        deadline = time.monotonic() + timeout
        while not self.result_path.exists():
            process = self.runner.process
            if process is None or process.poll() is not None:
                raise RuntimeError(f"the dag.test runner died; log:\n{self.runner.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.dag_id} did not finish in {timeout} s; log:\n"
                                   f"{self.runner.log_text()[-4000:]}")
            time.sleep(0.05)
        self._result = json.loads(self.result_path.read_text())
        self.runner.busy = None
        if "error" in self._result:
            raise RuntimeError(f"dag.test raised {self._result['error']}\n"
                               f"{self._result.get('traceback')}")
        return self._result


def connection_env(hub: HubProcess, token: str) -> dict[str, str]:
    """``signoff_default`` pointing at ``hub`` with ``token``, as an environment variable."""
    conn = {"conn_type": "signoff", "host": hub.url, "password": token}
    return {"AIRFLOW_CONN_SIGNOFF_DEFAULT": json.dumps(conn)}


ERROR_KINDS = {"SignoffRejected": "rejected", "SignoffExpired": "expired",
               "SignoffCancelled": "cancelled"}


@dataclass
class AirflowRun:
    """A scenario's DAG run in the runner, read back as the shared :class:`Outcome`."""

    handle: DagRunHandle
    key_prefix: str
    report: dict[str, Any] | None = None

    def result(self, timeout: float) -> Outcome:
        self.report = report = self.handle.wait(timeout)
        ask, after = report["tasks"]["ask"], report["tasks"]["after"]
        if ask["state"] == "failed":
            (failure,) = [f for f in report["failures"] if f["task_id"] == "ask"]
            assert after["state"] == "upstream_failed", report
            return Outcome(error=ERROR_KINDS.get(failure["type"], failure["type"]))
        assert ask["state"] == "success", report
        value = ask["xcom"]["return_value"]
        # a rejected approval short-circuits: the task succeeds with False, downstream skips
        assert after["state"] == ("skipped" if value is False else "success"), report
        assert ask["xcom"]["signoff_decision"]["value"] == value, report
        return Outcome(value=value)


class AirflowDriver:
    """Plays a shared scenario as ``dag.test()`` of its DAG in ``dags/signoff_scenarios.py``."""

    def __init__(self, runner: DagTestRunner) -> None:
        self.runner = runner
        self.runs: list[AirflowRun] = []

    def start(self, scenario: Scenario, hub: HubProcess) -> AirflowRun:
        dag_id = f"signoff_scenario_{scenario.name}"
        env = connection_env(hub, hub.token("airflow", role="workflow"))
        handle = self.runner.submit(SCENARIO_DAGS, dag_id, env=env)
        run = AirflowRun(handle, key_prefix=f"airflow:{dag_id}:")
        self.runs.append(run)
        return run
