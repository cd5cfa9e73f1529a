"""Let a person pick how a model is rolled out (signoff + Apache Airflow 3).

`rollout` asks which way to go; the answer selects the downstream task, like a branch
operator, and the others are skipped. Nobody answering within the hour means "Hold".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from signoff.adapters.airflow import BranchSensor

with DAG("signoff_rollout", schedule=None, start_date=datetime(2025, 1, 1), catchup=False,
         tags=["signoff"]) as dag:
    rollout = BranchSensor(
        task_id="rollout",
        prompt="How should model {{ params.model }} be rolled out?",
        context={"model": "{{ params.model }}", "offline_auc": 0.91},
        options={"Canary (5%)": "deploy_canary", "Everywhere": "deploy_all", "Hold": "hold"},
        default="Hold",
        timeout=timedelta(hours=1),
        on_timeout="default",
        params={"model": "churn-v3"},
    )
    rollout >> [EmptyOperator(task_id="deploy_canary"), EmptyOperator(task_id="deploy_all"),
                EmptyOperator(task_id="hold")]
