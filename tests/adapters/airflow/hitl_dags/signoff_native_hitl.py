"""Airflow 3.3's own HITL operators, no signoff in the DAG: the hub's bridge mirrors them.

``native_approval``: an ``ApprovalOperator`` assigned to two Airflow users, then a task that
runs only when approved. ``native_input``: a ``HITLOperator`` with two options and an integer
param, then a task that records what it received. ``native_timeout``: a ``HITLOperator``
whose ``response_timeout`` passes, so Airflow answers it with its defaults.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk import DAG, Param, task

with DAG("native_approval", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    approve = ApprovalOperator(
        task_id="approve", subject="Ship the {{ ds }} load?", body="Rows: 1,204",
        assigned_users=[{"id": "signoff", "name": "signoff"}, {"id": "alice", "name": "alice"}])

    @task
    def ship() -> str:
        return "shipped"

    approve >> ship()

with DAG("native_input", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    pick = HITLOperator(
        task_id="pick", subject="Which model, and how many rows?", options=["small", "large"],
        params={"rows": Param(100, type="integer", minimum=1, description="rows to sample")})

    @task
    def use(answer: dict) -> dict:
        return {"options": answer["chosen_options"], "rows": answer["params_input"]["rows"]}

    use(pick.output)

with DAG("native_timeout", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    HITLOperator(task_id="wait", subject="Anyone there?", options=["yes", "no"], defaults=["no"],
                 response_timeout=timedelta(seconds=2))
