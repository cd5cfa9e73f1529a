"""Ship a model only when a lead approves, then ask for the release details (signoff + Prefect).

From the checkout, in a virtual environment (``uv venv && . .venv/bin/activate``), after
``uv pip install '.[hub,prefect]'``, type each line as written; a line ending in ``&`` keeps
running (or give it a terminal of its own, without the ``&``):

    $ prefect server start --port 4200 &
    $ export PREFECT_API_URL=http://127.0.0.1:4200/api
    $ SIGNOFF_RESUMERS__PREFECT__API_URL=$PREFECT_API_URL signoff serve --port 8765 --db hub.db &
    $ export SIGNOFF_URL=http://127.0.0.1:8765 \
        SIGNOFF_TOKEN=$(signoff token create --user release-flow --role workflow --db hub.db)
    $ python examples/prefect_release.py churn-v3

The hub prints a one-time login link on its first start: open it to answer in the inbox. The
flow run's log shows each question's inbox page
(``signoff: waiting for an answer in the inbox: http://127.0.0.1:8765/events/...``), and the
inbox links back to the run in Prefect's UI (http://127.0.0.1:4200).

`evaluate` scores the model; `approve` asks the ML leads in signoff's inbox, showing the
report, and the flow run pauses in Prefect until they answer (or until someone answers the
form in Prefect's own UI). A rejection skips the deploy. Then `ask` asks for the rollout
settings as a typed form (a pydantic model), with defaults if nobody answers within the hour.
The hub's Prefect resumer (``SIGNOFF_RESUMERS__PREFECT__API_URL``) points at the same Prefect
API as the flow.
"""

from __future__ import annotations

import sys
from typing import Literal

from prefect import flow, task
from pydantic import BaseModel, Field

from signoff.adapters.prefect import approve, ask


class Rollout(BaseModel):
    """How the approved model goes out."""

    title: str = Field(max_length=80, description="Title for the release report")
    traffic: Literal["5%", "25%", "100%"] = "5%"
    replicas: int = Field(default=2, ge=1, le=10)


@task
def evaluate(model: str) -> dict[str, float | str]:
    return {"model": model, "auc": 0.91, "baseline_auc": 0.87}


@task
def deploy(model: str, rollout: Rollout) -> str:
    return f"deployed {model} to {rollout.traffic} of traffic on {rollout.replicas} replicas"


@flow(name="release")
def release(model: str) -> str:
    report = evaluate(model)
    if not approve(f"Ship {model}?", context=report, assignees=["group:ml-leads"],
                   priority="high", timeout=3600):
        return f"{model} was not approved; nothing deployed"
    rollout = ask(f"How should {model} roll out?", input=Rollout,
                  default=Rollout(title=f"{model} release"), timeout=3600,
                  on_timeout="default", assignees=["group:ml-leads"])
    return f"{deploy(model, rollout)} ({rollout.title})"


if __name__ == "__main__":
    print(release(sys.argv[1] if len(sys.argv) > 1 else "churn-v3"), flush=True)
