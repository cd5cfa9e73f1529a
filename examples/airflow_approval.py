"""Approve a load into production before it runs (signoff + Apache Airflow 3).

`count` finds how many rows would be loaded; `approve_load` asks the data owners in signoff's
inbox, showing that number; `load` runs only once someone approved. A rejection skips `load`
(the run still succeeds, like a short-circuit); pass ``on_reject="fail"`` to fail it instead.

The hub is the Airflow connection ``signoff_default`` (type signoff, host = hub URL,
password = a workflow token), or ``SIGNOFF_URL`` and ``SIGNOFF_TOKEN``. Needs a triggerer
(``airflow standalone`` has one) or ``dag.test()``.
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
