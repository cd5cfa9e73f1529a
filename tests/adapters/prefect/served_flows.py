"""Flows served by a real Prefect runner (``python served_flows.py``) for the deployment tests.

Each flow appends one JSON line per start and one with its result to the file ``out``, so a
test sees how often Prefect ran it from the top. The hub comes from ``SIGNOFF_URL`` and
``SIGNOFF_TOKEN`` in the runner's environment, as in production.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prefect import flow, serve
from prefect.context import FlowRunContext

from signoff.adapters.prefect import approve, ask


def note(out: str, **line: Any) -> None:
    run = FlowRunContext.get()
    line["flow_run_id"] = str(run.flow_run.id) if run and run.flow_run else None
    line["pid"] = os.getpid()
    with Path(out).open("a") as file:
        file.write(json.dumps(line) + "\n")


@flow(name="signoff-suspend")
def suspended(out: str) -> int:
    note(out, start=True)
    replicas = ask("How many replicas?", input=int, suspend=True)
    note(out, value=replicas)
    return int(replicas)


@flow(name="signoff-short-pause")
def short_pause(out: str) -> bool:
    note(out, start=True)
    ok = approve("Ship it?", pause_timeout=3, poll_interval=0.5)
    note(out, value=ok)
    return ok


if __name__ == "__main__":
    serve(suspended.to_deployment(name="test"), short_pause.to_deployment(name="test"),
          print_starting_message=False)
