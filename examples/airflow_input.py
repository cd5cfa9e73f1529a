"""Ask a person for typed values a DAG needs (signoff + Apache Airflow 3).

`sample_size` asks for a bounded number (1,000 when nobody answers within 30 minutes);
`budget` asks for a small form built from a pydantic model. Each answer is the task's XCom
``return_value``, so downstream tasks take it like any other task's output.

From the checkout, in a virtual environment (``uv venv && . .venv/bin/activate``), after
``uv pip install '.[hub,airflow]'``, type each line as written; a line ending in ``&`` keeps
running (or give it a terminal of its own, without the ``&``):

    $ export AIRFLOW_HOME=$PWD/airflow-home AIRFLOW__CORE__DAGS_FOLDER=$PWD/examples \
        AIRFLOW__CORE__LOAD_EXAMPLES=False
    $ airflow db migrate
    $ signoff serve --port 8765 --db hub.db &
    $ export SIGNOFF_URL=http://127.0.0.1:8765 \
        SIGNOFF_TOKEN=$(signoff token create --user airflow --role workflow --db hub.db)
    $ airflow dags test signoff_backfill_inputs

In a deployment, the Airflow connection ``signoff_default`` (type signoff, host = the hub's URL,
password = a workflow token; see docs/airflow.md) takes the place of ``SIGNOFF_URL`` and
``SIGNOFF_TOKEN``. The hub prints a one-time login link on its first start: open it to answer
in the inbox. The task log shows each question's inbox page
(``signoff: waiting for an answer in the inbox: http://127.0.0.1:8765/events/...``).
``airflow dags test`` runs the DAG and its trigger in this one process; with a scheduler and a
triggerer (``airflow standalone``), ``airflow dags trigger signoff_backfill_inputs``
runs it there instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task
from pydantic import BaseModel, Field

from signoff.adapters.airflow import InputSensor


class Budget(BaseModel):
    max_cost_usd: float = Field(gt=0, description="The most the backfill may cost.")
    reason: str = Field(min_length=3)


with DAG("signoff_backfill_inputs", schedule=None, start_date=datetime(2025, 1, 1),
         catchup=False, tags=["signoff"]) as dag:
    sample_size = InputSensor(
        task_id="sample_size",
        prompt="How many rows should the backfill sample?",
        input={"kind": "int", "min": 100, "max": 100_000, "default": 1_000},
        timeout=timedelta(minutes=30),
        on_timeout="default",
    )
    budget = InputSensor(task_id="budget", prompt="What may the backfill cost?", input=Budget)

    @task
    def backfill(rows: int, budget: dict) -> str:
        return f"{rows} rows for at most ${budget['max_cost_usd']:.2f} ({budget['reason']})"

    backfill(sample_size.output, budget.output)
