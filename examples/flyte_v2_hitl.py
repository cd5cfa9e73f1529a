"""Flyte 2's human-in-the-loop example, ported to signoff by changing the import.

The code is Flyte's own ``flyteplugins-hitl`` example (analyze -> request review -> branch).
Three lines differ: the import (``signoff.adapters.flyte.v2`` instead of
``flyteplugins.hitl``), the image's package (``signoff[flyte2]`` instead of
``flyteplugins-hitl``), and ``__main__``, which runs locally (the original submits to a cluster).
The review waits in the signoff hub (``SIGNOFF_URL``, ``SIGNOFF_TOKEN``): answer it in the inbox,
or ``signoff respond EVENT_ID true``.

From the checkout, in a virtual environment (``uv venv && . .venv/bin/activate``), after
``uv pip install '.[hub,flyte2]'``, type each line as written; a line ending in ``&`` keeps
running (or give it a terminal of its own, without the ``&``):

    $ signoff serve --port 8765 --db hub.db &
    $ export SIGNOFF_URL=http://127.0.0.1:8765 \
        SIGNOFF_TOKEN=$(signoff token create --user hitl-workflow --role workflow --db hub.db)
    $ python examples/flyte_v2_hitl.py

The hub prints a one-time login link on its first start: open it to answer in the inbox.
"""

import flyte

import signoff.adapters.flyte.v2 as hitl

# The task environment must declare hitl.env as a dependency.
# This makes the HITL web app available during task execution.
env = flyte.TaskEnvironment(
    name="hitl-workflow",
    image=flyte.Image.from_debian_base(name="hitl").with_pip_packages(
        "signoff[flyte2]",
        "fastapi",
        "uvicorn",
        "python-multipart",
    ),
    resources=flyte.Resources(cpu="1", memory="512Mi"),
    depends_on=[hitl.env],
)


@env.task(report=True)
async def analyze_data(dataset: str) -> dict:
    """Automated task that produces a result requiring human review."""
    # Simulate analysis
    result = {
        "dataset": dataset,
        "row_count": 142857,
        "anomalies_detected": 3,
        "confidence": 0.87,
    }
    await flyte.report.replace.aio(
        f"Analysis complete: {result['anomalies_detected']} anomalies detected "
        f"(confidence: {result['confidence']:.0%})"
    )
    await flyte.report.flush.aio()
    return result


@env.task(report=True)
async def request_human_review(analysis: dict) -> bool:
    """Pause and ask a human whether to proceed with the flagged records."""
    event = await hitl.new_event.aio(
        "review_decision",
        data_type=bool,
        scope="run",
        prompt=(
            f"Analysis found {analysis['anomalies_detected']} anomalies "
            f"with {analysis['confidence']:.0%} confidence. "
            "Approve for downstream processing? (true/false)"
        ),
    )
    approved: bool = await event.wait.aio()
    return approved


@env.task(report=True)
async def main(dataset: str = "s3://my-bucket/data.parquet") -> str:
    analysis = await analyze_data(dataset=dataset)

    approved = await request_human_review(analysis=analysis)

    if approved:
        return "Processing approved — continuing pipeline."
    else:
        return "Processing rejected by reviewer — pipeline halted."


if __name__ == "__main__":
    flyte.init()
    r = flyte.with_runcontext(mode="local").run(main)
    print(r.name)
    print(r.outputs())
