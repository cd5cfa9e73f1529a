"""A flytekit workflow with a typed question and an approval, answered in the signoff hub.

From the checkout, in a virtual environment (``uv venv && . .venv/bin/activate``), after
``uv pip install '.[hub,flyte]'``, type each line as written; a line ending in ``&`` keeps
running (or give it a terminal of its own, without the ``&``):

    $ signoff serve --port 8765 --db hub.db &
    $ export SIGNOFF_URL=http://127.0.0.1:8765 \
        SIGNOFF_TOKEN=$(signoff token create --user publisher --role workflow --db hub.db)
    $ python examples/flyte_publish.py

The hub prints a one-time login link on its first start: open it and answer the two questions
in the inbox (or ``signoff list``, then ``signoff respond EVENT_ID "Q3 report"``). The run's
log shows each question's inbox page
(``signoff: waiting for an answer in the inbox: http://127.0.0.1:8765/events/...``).

Run locally (as above, or ``pyflyte run examples/flyte_publish.py publish --data '[1, 2, 3]'``)
each step waits on the hub: nothing is asked on stdin. Registered on a cluster, each step
becomes a small registration task and Flyte's own gate node, which the hub's Flyte resumer
answers through flyteadmin (``SIGNOFF_FLYTE_MODE=task`` makes them waiting tasks instead).
"""

from datetime import timedelta

from flytekit import task, workflow

from signoff.adapters.flyte import approve, ask


@task
def create_report(data: list[float]) -> dict:
    return {"rows": len(data), "mean": sum(data) / len(data)}


@task
def send_report(report: dict, title: str) -> str:
    return f"sent {title!r}: {report['rows']} rows, mean {report['mean']:.2f}"


@workflow
def publish(data: list[float]) -> str:
    report = create_report(data=data)
    title = ask("Title for the report?", input=str, name="title", timeout=timedelta(hours=1),
                upstream=report)
    ok = approve(report, "Publish it?", name="publish", assignees=["group:editors"],
                 timeout=timedelta(hours=8), context={"channel": "#reports"})
    return send_report(report=ok, title=title)


if __name__ == "__main__":
    print(publish(data=[1.0, 2.0, 4.5]))
