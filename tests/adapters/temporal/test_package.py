"""The package's surface: imports, the missing extra, the sandbox, the exceptions, the keys."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timezone

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import signoff
import signoff.adapters.temporal as adapter
from signoff import Decision

from .harness import LoopThread
from .workflows import AskOnce


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_import_signoff_loads_no_temporal() -> None:
    done = python("import sys, signoff; print(sorted(m for m in sys.modules "
                  "if m.split('.')[0] in ('temporalio', 'google')))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["signoff.adapters.temporal",
                                    "signoff.adapters.temporal.resumer"])
def test_missing_extra_is_named(module: str) -> None:
    done = python(f"import sys; sys.modules['temporalio'] = None\n"
                  f"try:\n    import {module}\n"
                  f"except ImportError as exc:\n"
                  f"    print(type(exc).__name__, isinstance(exc, ImportError), exc)\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MissingExtra True ")
    assert "pip install 'signoff[temporal]'" in done.stdout


def test_all_is_honest() -> None:
    assert sorted(adapter.__all__) == sorted(adapter._WHERE)
    assert all(getattr(adapter, name) is not None for name in adapter.__all__)
    assert set(adapter.__all__) <= set(dir(adapter))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        adapter.nothing  # noqa: B018


def test_the_hub_imports_the_resumer_without_temporalio() -> None:
    """The hub loads the resumer when it decides an event: temporalio (seconds to import) waits
    for the first delivery, in a thread, so the hub keeps answering meanwhile."""
    done = python("import sys, signoff.adapters.temporal.resumer\n"
                  "print(sorted(m for m in sys.modules if m.startswith('temporalio')))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_event_key_and_signal() -> None:
    assert adapter.event_key("default", "wf", "run", "approve") == \
        "temporal:default:wf:run:approve"
    long = adapter.event_key("default", "w" * 1000, "run", "approve")
    assert long.startswith("temporal:sha256:") and len(long) == len("temporal:sha256:") + 64
    assert adapter.signal_name("approve-2") == "signoff:approve-2"


def test_exceptions_are_signoffs_and_fail_the_workflow() -> None:
    decision = Decision(value=False, outcome="rejected", by="bob", comment="no",
                        at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    for cls, base in ((adapter.Rejected, signoff.Rejected), (adapter.Expired, signoff.Expired),
                      (adapter.Cancelled, signoff.Cancelled)):
        error = cls("rejected by bob: no", decision)
        assert isinstance(error, base) and isinstance(error, signoff.DecisionError)
        assert isinstance(error, ApplicationError)
        assert error.type == f"signoff.{cls.__name__}"
        assert error.non_retryable
        assert error.decision is decision
        assert error.details == (decision.model_dump(mode="json"),)
        assert error.message == "rejected by bob: no"


def test_sandbox_runner_passes_signoff_through() -> None:
    made = adapter.sandbox_runner()
    assert isinstance(made, SandboxedWorkflowRunner)
    assert {"signoff", "jsonschema"} <= made.restrictions.passthrough_modules
    custom = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("mine"))
    kept = adapter.sandbox_runner(custom)
    assert isinstance(kept, SandboxedWorkflowRunner)
    assert {"mine", "signoff"} <= kept.restrictions.passthrough_modules
    unsandboxed = UnsandboxedWorkflowRunner()
    assert adapter.sandbox_runner(unsandboxed) is unsandboxed


def test_without_the_passthrough_the_sandbox_refuses_signoff(
        loop: LoopThread, dev_server: WorkflowEnvironment,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the plugin opens the sandbox: ``signoff`` imports httpx, which it refuses."""

    async def build(**options: object) -> Worker:
        return Worker(dev_server.client, task_queue=f"validate-{uuid.uuid4().hex}",
                      workflows=[AskOnce], **options)  # type: ignore[arg-type]

    with pytest.raises(RuntimeError, match="Failed validating workflow AskOnce") as refused:
        loop.run(build())
    assert "urllib.request" in repr(refused.value.__cause__)
    monkeypatch.setenv("SIGNOFF_URL", "http://127.0.0.1:9")  # the plugin needs a hub named
    assert loop.run(build(plugins=[adapter.SignoffPlugin()])) is not None
    assert loop.run(build(workflow_runner=adapter.sandbox_runner(),
                          activities=adapter.activities())) is not None
