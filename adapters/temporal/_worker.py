"""Worker-side registration: one plugin that adds the activities and opens the sandbox.

``Worker(client, task_queue="docs", workflows=[DocumentApproval], plugins=[SignoffPlugin()])``

The plugin does two things a worker needs for ``approve``/``ask``: it registers the activities
(:func:`~signoff.adapters.temporal.activities`), and it passes ``signoff`` through Temporal's
workflow sandbox, so that a workflow file can ``from signoff.adapters.temporal import approve``
(``signoff`` imports httpx, which the sandbox refuses to re-import) and the package is not
re-imported for every run. Workers that build their own runner use :func:`sandbox_runner`.
No signal handler needs declaring: each step registers its own while it waits.
"""

from __future__ import annotations

import dataclasses

# signoff validates form answers with jsonschema, imported lazily; a workflow must see the host's
# copy (passed through), and importing it here keeps that import out of a workflow task
import jsonschema  # noqa: F401
from temporalio.plugin import SimplePlugin
from temporalio.worker import WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from ._activities import SignoffActivities

__all__ = ["PASSTHROUGH", "SignoffPlugin", "sandbox_runner"]

PASSTHROUGH = ("signoff", "jsonschema")
"""Modules the sandbox takes from outside: ``signoff`` (and all under it), and ``jsonschema``,
which signoff imports when it checks a form (an ``ask`` with a pydantic model)."""


def sandbox_runner(runner: WorkflowRunner | None = None) -> WorkflowRunner:
    """``runner`` (default: Temporal's sandbox) with ``signoff`` passed through.

    A runner that is not sandboxed is returned as it is.
    """
    if runner is None:
        return SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH))
    if isinstance(runner, SandboxedWorkflowRunner):
        restrictions = runner.restrictions.with_passthrough_modules(*PASSTHROUGH)
        return dataclasses.replace(runner, restrictions=restrictions)
    return runner


class SignoffPlugin(SimplePlugin):
    """Everything a worker needs for ``approve`` and ``ask``, as a Temporal plugin.

    Args:
        url: the hub's URL (default ``SIGNOFF_URL``).
        token: a workflow token (default ``SIGNOFF_TOKEN``).
        ui_url: the Temporal UI's base URL, for links from the inbox to the workflow.
    """

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 ui_url: str | None = None) -> None:
        self.signoff_activities = SignoffActivities(url, token, ui_url=ui_url)
        super().__init__("signoff", activities=self.signoff_activities.all(),
                         workflow_runner=sandbox_runner)
