"""signoff for Temporal: human approval and input steps as durable signal waits.

```python
from signoff.adapters.temporal import SignoffPlugin, approve

@workflow.defn
class DocumentApproval:
    @workflow.run
    async def run(self, doc: Doc) -> bool:
        return await approve(f"Approve {doc.id}?", assignees=[doc.approver],
                             timeout=timedelta(hours=2))

# the worker: one line more
Worker(client, task_queue="docs", workflows=[DocumentApproval], plugins=[SignoffPlugin()])
```

The hub's ``temporal`` resumer (:mod:`signoff.adapters.temporal.resumer`) signals each decision
to the waiting run. Needs the ``temporal`` extra: ``pip install 'signoff[temporal]'``.

The names below load on first use: the hub imports the resumer from this package and must not
pay for the worker and workflow modules (temporalio takes seconds to import).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from .. import MissingExtra, lazy_exports

if importlib.util.find_spec("temporalio") is None:  # pragma: no cover - the environment
    raise MissingExtra(
        "signoff.adapters.temporal needs the temporal extra: pip install 'signoff[temporal]'",
        name="temporalio")

if TYPE_CHECKING:
    from ._activities import SignoffActivities, activities
    from ._common import event_key, signal_name
    from ._errors import Cancelled, Expired, Rejected
    from ._worker import PASSTHROUGH, SignoffPlugin, sandbox_runner
    from ._workflow import approve, ask

_WHERE = {
    "SignoffActivities": "_activities", "activities": "_activities",
    "event_key": "_common", "signal_name": "_common",
    "Cancelled": "_errors", "Expired": "_errors", "Rejected": "_errors",
    "PASSTHROUGH": "_worker", "SignoffPlugin": "_worker", "sandbox_runner": "_worker",
    "approve": "_workflow", "ask": "_workflow",
}

__all__ = [
    "PASSTHROUGH",
    "Cancelled",
    "Expired",
    "Rejected",
    "SignoffActivities",
    "SignoffPlugin",
    "activities",
    "approve",
    "ask",
    "event_key",
    "sandbox_runner",
    "signal_name",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, public=__all__)
