"""Let a person pick how a model is rolled out (signoff + Apache Airflow 3).

`rollout` asks which way to go; the answer selects the downstream task, like a branch
operator, and the others are skipped. Nobody answering within the hour means "Hold".

From the checkout, in a virtual environment (``uv venv && . .venv/bin/activate``), after
``uv pip install '.[hub,airflow]'``, type each line as written; a line ending in ``&`` keeps
running (or give it a terminal of its own, without the ``&``):

    $ export AIRFLOW_HOME=$PWD/airflow-home AIRFLOW__CORE__DAGS_FOLDER=$PWD/examples \
        AIRFLOW__CORE__LOAD_EXAMPLES=False
    $ airflow db migrate
    $ signoff serve --port 8765 --db hub.db &
    $ export SIGNOFF_URL=http://127.0.0.1:8765 \
        SIGNOFF_TOKEN=$(signoff token create --user airflow --role workflow --db hub.db)
    $ airflow dags test signoff_rollout

In a deployment, the Airflow connection ``signoff_default`` (type signoff, host = the hub's URL,
password = a workflow token; see docs/airflow.md) takes the place of ``SIGNOFF_URL`` and
``SIGNOFF_TOKEN``. The hub prints a one-time login link on its first start: open it to answer
in the inbox. The task log shows each question's inbox page
(``signoff: waiting for an answer in the inbox: http://127.0.0.1:8765/events/...``).
``airflow dags test`` runs the DAG and its trigger in this one process; with a scheduler and a
triggerer (``airflow standalone``), ``airflow dags trigger signoff_rollout``
runs it there instead.
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
