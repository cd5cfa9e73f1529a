"""One DAG per shared scenario (tests/adapters/scenarios.py), each: ask >> after.

An approval scenario uses ApprovalSensor (a rejection skips ``after``); every other kind uses
InputSensor. The hub comes from the ``signoff_default`` connection the test sets.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from signoff.adapters.airflow import ApprovalSensor, InputSensor
from tests.adapters.scenarios import SCENARIOS

for scenario in SCENARIOS:
    with DAG(f"signoff_scenario_{scenario.name}", schedule=None,
             start_date=datetime(2025, 1, 1), catchup=False, tags=["signoff-test"]) as dag:
        args = scenario.kwargs
        spec = args.pop("input")
        if spec["kind"] == "approval":
            ask = ApprovalSensor(task_id="ask", prompt=f"scenario {scenario.name}?",
                                 default=spec.get("default"), **args)
        else:
            ask = InputSensor(task_id="ask", prompt=f"scenario {scenario.name}?", input=spec,
                              **args)
        ask >> EmptyOperator(task_id="after")
    globals()[dag.dag_id] = dag
