"""DAGs for the Airflow-specific tests (the shared scenarios are in signoff_scenarios.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException

from signoff.adapters.airflow import ApprovalSensor, InputSensor

START = datetime(2025, 1, 1)


class CrashingApproval(ApprovalSensor):
    """Loses its first try like a dying worker would: right after asking, or after the answer."""

    def __init__(self, *, crash: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crash = crash

    def execute(self, context: Any) -> Any:
        if self.crash == "after_ask" and context["ti"].try_number == 1:
            self._ask(context)
            raise AirflowException("worker lost after asking")
        return super().execute(context)

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        if self.crash == "after_decision" and context["ti"].try_number == 1:
            raise AirflowException("worker lost after the decision")
        return super().execute_complete(context, event)


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, tags=["signoff-test"])


with _dag("signoff_reject_fails") as reject_fails:
    ApprovalSensor(task_id="ask", prompt="Ship it?", on_reject="fail") >> \
        EmptyOperator(task_id="after")

for crash in ("after_ask", "after_decision"):
    with _dag(f"signoff_retry_{crash}") as retry_dag:
        CrashingApproval(task_id="ask", prompt="Retry me?", crash=crash, retries=1,
                         retry_delay=timedelta(seconds=0)) >> EmptyOperator(task_id="after")
    globals()[retry_dag.dag_id] = retry_dag

with _dag("signoff_tampered") as tampered:
    # the decision reaches the first try, which dies; the retry, 3 s later, finds the event
    # decided at creation and must verify what the hub now says (the test changes it meanwhile)
    CrashingApproval(task_id="ask", prompt="Tamper with me?", crash="after_decision",
                     retries=1, retry_delay=timedelta(seconds=3)) >> \
        EmptyOperator(task_id="after")

with _dag("signoff_restart") as restart:
    InputSensor(task_id="ask", prompt="How many shards?", input=int, poll_seconds=5) >> \
        EmptyOperator(task_id="after")

with _dag("signoff_hub_gone") as hub_gone:
    ApprovalSensor(task_id="ask", prompt="Anyone there?", timeout=2,
                   deadline_grace=timedelta(seconds=1), poll_seconds=1) >> \
        EmptyOperator(task_id="after")

with _dag("signoff_env_token") as env_token:
    ApprovalSensor(task_id="ask", prompt="Token from the environment?", trigger_token="env")

with _dag("signoff_no_hub") as no_hub:
    # retries as a production DAG would have: a missing connection must not use them up
    ApprovalSensor(task_id="ask", prompt="Which hub?", retries=3,
                   retry_delay=timedelta(seconds=1))

with _dag("signoff_stored_connection") as stored_connection:
    ApprovalSensor(task_id="ask", prompt="Stored connection?", conn_id="signoff_stored")

with _dag("signoff_mapped") as mapped:
    InputSensor.partial(task_id="ask", input={"kind": "choice", "options": ["a", "b"]}) \
        .expand(prompt=["first?", "second?"])

with _dag("signoff_linked") as linked:
    ApprovalSensor(task_id="ask", prompt="Run {{ run_id }} of {{ dag.dag_id }}?",
                   context={"try": "{{ ti.try_number }}"}, labels={"team": "{{ dag.dag_id }}"},
                   priority="high")
