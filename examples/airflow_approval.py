"""Approve a load into production before it runs (signoff + Apache Airflow 3).

`count` finds how many rows would be loaded; `approve_load` asks the data owners in signoff's
inbox, showing that number; `load` runs only once someone approved. A rejection skips `load`
(the run still succeeds, like a short-circuit); pass ``on_reject="fail"`` to fail it instead.

From the checkout, in a virtual environment (``uv venv && . .venv/bin/activate``), after
``uv pip install '.[hub,airflow]'``, type each line as written; a line ending in ``&`` keeps
running (or give it a terminal of its own, without the ``&``):

    $ export AIRFLOW_HOME=$PWD/airflow-home AIRFLOW__CORE__DAGS_FOLDER=$PWD/examples \
        AIRFLOW__CORE__LOAD_EXAMPLES=False
    $ airflow db migrate
    $ signoff serve --port 8765 --db hub.db &
    $ export SIGNOFF_URL=http://127.0.0.1:8765 \
        SIGNOFF_TOKEN=$(signoff token create --user airflow --role workflow --db hub.db)
    $ airflow dags test signoff_approve_load

In a deployment, the Airflow connection ``signoff_default`` (type signoff, host = the hub's URL,
password = a workflow token; see docs/airflow.md) takes the place of ``SIGNOFF_URL`` and
``SIGNOFF_TOKEN``. The hub prints a one-time login link on its first start: open it to answer
in the inbox. The task log shows each question's inbox page
(``signoff: waiting for an answer in the inbox: http://127.0.0.1:8765/events/...``).
``airflow dags test`` runs the DAG and its trigger in this one process; with a scheduler and a
triggerer (``airflow standalone``), ``airflow dags trigger signoff_approve_load``
runs it there instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from signoff.adapters.airflow import ApprovalSensor

with DAG("signoff_approve_load", schedule=None, start_date=datetime(2025, 1, 1),
         catchup=False, tags=["signoff"]) as dag:

    @task
    def count() -> int:
        return 1234

    approve = ApprovalSensor(
        task_id="approve_load",
        prompt="Load {{ dag_run.run_after | ds }} into prod?",
        context={"rows": "{{ ti.xcom_pull('count') }}", "table": "sales.orders"},
        assignees=["group:data-owners"],
        timeout=timedelta(hours=8),
    )

    @task
    def load(rows: int) -> str:
        return f"loaded {rows} rows"

    rows = count()
    rows >> approve >> load(rows)
