"""Workflows the Flyte tests compile and run (the issue's example, in both modes)."""

from __future__ import annotations

from datetime import timedelta

from flytekit import task, workflow

from signoff.adapters.flyte import approve, ask


@task
def create_report(data: list[float]) -> dict:
    return {"rows": len(data), "mean": sum(data) / len(data)}


@task
def send_report(report: dict, title: str) -> dict:
    return {"title": title, **report}


@workflow
def publish(data: list[float]) -> dict:
    report = create_report(data=data)
    title = ask("Title for the report?", input=str, name="title", timeout=timedelta(hours=1),
                upstream=report)
    ok = approve(report, "Publish it?", name="publish", assignees=["group:editors"],
                 timeout=timedelta(hours=8))
    return send_report(report=ok, title=title)


@workflow
def publish_tasks(data: list[float]) -> dict:
    report = create_report(data=data)
    title = ask("Title for the report?", input=str, name="title", upstream=report, mode="task")
    ok = approve(report, "Publish it?", name="publish", mode="task")
    return send_report(report=ok, title=title)


@workflow
def count_gate() -> int:
    return ask("How many?", input={"kind": "int", "min": 1, "max": 10}, name="how-many")
