"""DAGs for bench/airflow_latency.py (a DAG file, not a benchmark: the bench copies it into the
Airflow home it makes).

``signoff_bench_latency``: signoff's ApprovalSensor and Airflow's own ApprovalOperator side by
side in one run, each followed by a task, so both are answered under the same load.
``signoff_bench_waiting``: many signoff sensors (one mapped task) that just wait.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG

from signoff.adapters.airflow import ApprovalSensor, InputSensor

START = datetime(2025, 1, 1)

with DAG("signoff_bench_latency", schedule=None, start_date=START, catchup=False,
         tags=["signoff-bench"]) as latency:
    ApprovalSensor(task_id="signoff_approve", prompt="bench: go?") >> \
        EmptyOperator(task_id="after_signoff")
    ApprovalOperator(task_id="native_approve", subject="bench: go?") >> \
        EmptyOperator(task_id="after_native")

WAITING = int(os.environ.get("SIGNOFF_BENCH_WAITING", "1000"))

with DAG("signoff_bench_waiting", schedule=None, start_date=START, catchup=False,
         max_active_tasks=64, tags=["signoff-bench"]) as waiting:
    InputSensor.partial(task_id="wait", input=int, poll_seconds=55.0) \
        .expand(prompt=[f"bench question {i}" for i in range(WAITING)])
