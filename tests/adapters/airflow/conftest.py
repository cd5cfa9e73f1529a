from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# without the airflow extra (the core's environment) this folder has nothing to run
collect_ignore_glob = ["test_*.py"] if importlib.util.find_spec("airflow") is None else []

# Importing airflow in this process (the trigger tests do) reads AIRFLOW_HOME and creates it:
# never let that be ~/airflow. The Airflow processes the tests start get their own home.
_UNIT_HOME = tempfile.mkdtemp(prefix="signoff-airflow-unit-")
atexit.register(shutil.rmtree, _UNIT_HOME, True)
os.environ["AIRFLOW_HOME"] = _UNIT_HOME

from .harness import (  # noqa: E402
    TEST_DAGS,
    AirflowDriver,
    DagTestRunner,
    compile_site_packages,
    make_home,
)


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One Airflow home for the session: SQLite, the example and test DAGs, migrated."""
    compile_site_packages()
    home = tmp_path_factory.mktemp("airflow-home")
    return home, make_home(home)


@pytest.fixture(scope="session")
def dag_runner(airflow_home: tuple[Path, dict[str, str]]) -> Iterator[DagTestRunner]:
    """The session's ``dag.test()`` runner process, warmed up."""
    home, env = airflow_home
    runner = DagTestRunner(home, env).start()
    warmup = runner.submit(TEST_DAGS / "signoff_warmup.py", "signoff_warmup").wait(600)
    assert warmup["tasks"]["nothing"]["state"] == "success", warmup
    yield runner
    runner.stop()


@pytest.fixture
def runner(dag_runner: DagTestRunner) -> Iterator[DagTestRunner]:
    """The runner, made clean again after the test if it left a run waiting."""
    yield dag_runner
    dag_runner.settle()


@pytest.fixture
def driver(runner: DagTestRunner) -> AirflowDriver:
    return AirflowDriver(runner)
