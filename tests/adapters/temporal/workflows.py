"""Workflows the Temporal adapter's tests run (a module of its own: the sandbox re-imports it)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow

from signoff.adapters.temporal import Rejected, approve, ask


class Shipping(BaseModel):
    carrier: str
    days: int


def _options(args: dict[str, Any]) -> dict[str, Any]:
    options = dict(args.get("options", {}))
    for name in ("timeout", "timeout_grace"):
        if name in options and options[name] is not None:
            options[name] = timedelta(seconds=options[name])
    return options


@workflow.defn
class AskOnce:
    """One step: ``approve`` for an approval spec, ``ask`` for anything else."""

    @workflow.run
    async def run(self, args: dict[str, Any]) -> dict[str, Any]:
        spec = args["input"]
        options = _options(args)
        if spec.get("kind") == "approval":
            value: Any = await approve(args["prompt"], default=spec.get("default"), **options)
        else:
            value = await ask(args["prompt"], spec, **options)
        # workflow.now() is the start of the workflow task that continued: the bench's clock
        return {"value": value, "continued_at": workflow.now().timestamp()}


@workflow.defn
class TwoSteps:
    """Approve, then a typed answer with a pydantic model; the same default names twice."""

    @workflow.run
    async def run(self, title: str) -> dict[str, Any]:
        first = await approve(f"Publish {title}?")
        second = await approve(f"Really publish {title}?")
        shipping = await ask(f"How to ship {title}?", Shipping)
        assert isinstance(shipping, Shipping)
        return {"first": first, "second": second, "shipping": shipping.model_dump()}


@workflow.defn
class CatchRejected:
    """Catches ``signoff.Rejected`` from ``ask`` like any exception, in workflow code."""

    @workflow.run
    async def run(self, timeout: float) -> str:
        import signoff

        try:
            await ask("A number?", int, timeout=timedelta(seconds=timeout))
        except signoff.Rejected as exc:
            assert isinstance(exc, Rejected)
            return f"caught: {exc.decision.by}"
        return "not rejected"


@workflow.defn
class Parallel:
    """Two questions at once, in one run: two events, two signals."""

    @workflow.run
    async def run(self) -> list[Any]:
        return list(await asyncio.gather(approve("Left?", name="side"),
                                         approve("Right?", name="side")))
