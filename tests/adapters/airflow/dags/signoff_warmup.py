"""A one-task DAG the test session runs first: it pays Airflow's start-up (the in-process
execution API is built on the first task) before any test's clock starts."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("signoff_warmup", schedule=None, start_date=datetime(2025, 1, 1), catchup=False):
    EmptyOperator(task_id="nothing")
