"""Runs ``dag.test()`` on request, one DAG run at a time, in its own Airflow process.

Started by :class:`~tests.adapters.airflow.harness.DagTestRunner` with ``AIRFLOW_HOME`` set. Reads
one JSON command a line on stdin::

    {"dag_file": ..., "dag_id": ..., "env": {...}, "result": "/tmp/x.json"}

sets ``env`` (the hub's connection, for instance), runs the DAG to its end with
``dag.test()`` (deferred triggers run in-process), and writes what happened to ``result``:
the run's state, each task's state, try number, end time and XComs, and each failure's
exception (recorded by an ``on_failure_callback`` attached here, so DAG files stay plain).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def _load_dag(dag_file: str, dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=dag_file)
    if dag_id not in bag.dags:
        raise LookupError(f"{dag_file} defines no DAG {dag_id!r}; import errors: "
                          f"{bag.import_errors}")
    return bag.dags[dag_id]


def _collect(dr: Any, failures: list[dict[str, Any]]) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    tasks: dict[str, Any] = {}
    with create_session() as session:
        for ti in dr.get_task_instances(session=session):
            tasks[ti.task_id] = {
                "state": str(ti.state.value if hasattr(ti.state, "value") else ti.state),
                "try_number": ti.try_number,
                "end": ti.end_date.timestamp() if ti.end_date else None,
                "xcom": {},
            }
        query = XComModel.get_many(run_id=dr.run_id, dag_ids=dr.dag_id)
        for row in session.scalars(query):
            tasks.setdefault(row.task_id, {"xcom": {}})["xcom"][row.key] = \
                XComModel.deserialize_value(row)
    return {"run_id": dr.run_id, "state": str(dr.state), "tasks": tasks, "failures": failures}


def _run(command: dict[str, Any]) -> dict[str, Any]:
    saved = dict(os.environ)
    os.environ.update(command.get("env", {}))
    try:
        return _test(command)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _test(command: dict[str, Any]) -> dict[str, Any]:
    dag = _load_dag(command["dag_file"], command["dag_id"])
    failures: list[dict[str, Any]] = []

    def record(context: Any) -> None:
        error = context.get("exception")
        failures.append({"task_id": context["ti"].task_id, "try_number": context["ti"].try_number,
                         "type": type(error).__name__, "mro": [c.__name__ for c in
                                                               type(error).__mro__],
                         "message": str(error)})

    for task in dag.tasks:
        task.on_failure_callback = [record]
    started = time.time()
    # Airflow 3 triggers a manual run (UI, CLI, REST) without a logical date: no {{ ds }}
    dates = {"logical_date": None} if command.get("manual") else {}
    dr = dag.test(run_conf=command.get("conf"), **dates)
    result = _collect(dr, failures)
    result.update(started=started, finished=time.time())
    return result


def main() -> None:
    """Serve commands until stdin closes."""
    print("runner ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        try:
            result = _run(command)
        except BaseException as exc:  # report, never die: the next test needs the runner
            result = {"error": f"{type(exc).__name__}: {exc}", "traceback":
                      traceback.format_exc()}
        target = Path(command["result"])
        target.with_suffix(".tmp").write_text(json.dumps(result, default=str))
        target.with_suffix(".tmp").replace(target)


if __name__ == "__main__":
    main()
