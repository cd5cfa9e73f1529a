"""Plain-text views of events for the ``signoff`` command: an aligned table and a tree.

No I/O here: each function returns lines, and :mod:`signoff.cli` prints them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from ._model import Event

__all__ = ["LIST_HEADER", "age", "event_lines", "list_row", "table", "tree"]

_PROMPT_WIDTH = 60


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Rows under a header, each column as wide as its widest cell; the last is not padded."""
    body = [list(row) for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *body, strict=True)]
    lines = []
    for row in [list(header), *body]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths[:-1], strict=True)]
        lines.append("  ".join([*cells, row[-1]]))
    return lines


def age(since: datetime, now: datetime | None = None) -> str:
    """How long ago, in the largest whole unit: ``45s``, ``12m``, ``3h``, ``2d``."""
    seconds = max(0, int(((now or datetime.now(timezone.utc)) - since).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def list_row(event: Event, now: datetime | None = None) -> list[str]:
    """One event as a row of :data:`LIST_HEADER`."""
    status = event.decision.outcome.value if event.decision else event.status
    prompt = " ".join(event.prompt.split())
    if len(prompt) > _PROMPT_WIDTH:
        prompt = prompt[: _PROMPT_WIDTH - 1] + "…"
    return [event.id, event.priority.value, status, age(event.created_at, now),
            ", ".join(event.assignees) or "-", prompt]


LIST_HEADER = ("ID", "PRIORITY", "STATUS", "AGE", "ASSIGNEES", "PROMPT")


def tree(value: Any, indent: str = "  ") -> list[str]:
    """A JSON value as an indented tree: ``key: value`` lines, lists as ``- item``."""
    lines: list[str] = []

    def scalar(item: Any) -> str:
        if isinstance(item, str) and item and "\n" not in item and item.strip() == item:
            return item
        return json.dumps(item, ensure_ascii=False)

    def walk(item: Any, depth: int) -> None:
        pad = indent * depth
        if isinstance(item, dict):
            if not item:
                lines.append(f"{pad}(empty)")
            for key, sub in item.items():
                if isinstance(sub, (dict, list)) and sub:
                    lines.append(f"{pad}{key}:")
                    walk(sub, depth + 1)
                else:
                    lines.append(f"{pad}{key}: {scalar(sub)}")
        elif isinstance(item, list):
            for sub in item:
                if isinstance(sub, (dict, list)) and sub:
                    lines.append(f"{pad}-")
                    walk(sub, depth + 1)
                else:
                    lines.append(f"{pad}- {scalar(sub)}")
        else:
            lines.append(f"{pad}{scalar(item)}")

    walk(value, 0)
    return lines


def event_lines(event: Event) -> list[str]:
    """What ``signoff show`` prints: the facts, the context as a tree, the answers so far."""
    spec = event.input.model_dump(mode="json", by_alias=True, exclude_none=True)
    kind = spec.pop("kind", "?")
    facts = [
        ("event", f"{event.id} ({event.name})"),
        ("prompt", event.prompt),
        ("status", event.decision.outcome.value if event.decision else event.status),
        ("input", kind + (f" {json.dumps(spec, ensure_ascii=False)}" if spec else "")),
        ("priority", event.priority.value),
        ("assignees", ", ".join(event.assignees) or "anyone"),
        ("requested by", event.requested_by),
        ("source", " / ".join(p for p in (event.source.orchestrator, event.source.run,
                                          event.source.step) if p)),
        ("created", f"{event.created_at:%Y-%m-%d %H:%M:%S %Z}".strip()),
    ]
    if event.deadline is not None:
        facts.append(("deadline", f"{event.deadline:%Y-%m-%d %H:%M:%S %Z} "
                                  f"(then {event.on_timeout})".strip()))
    if event.recommendation is not None:
        facts.append(("recommendation", json.dumps(event.recommendation)
                      + (f" (confidence {event.confidence})" if event.confidence is not None
                         else "")))
    if event.labels:
        facts.append(("labels", ", ".join(f"{k}={v}" for k, v in event.labels.items())))
    width = max(len(name) for name, _ in facts) + 1
    lines = [f"{name + ':':<{width}} {text}" for name, text in facts]
    lines.append("context:")
    lines += ["  " + line for line in tree(event.context)]
    if event.responses:
        lines.append("responses:")
        for response in event.responses:
            comment = f" — {response.comment}" if response.comment else ""
            lines.append(f"  {response.at:%Y-%m-%d %H:%M} {response.by} via {response.channel}: "
                         f"{json.dumps(response.value, ensure_ascii=False)}{comment}")
    if event.decision is not None:
        d = event.decision
        comment = f" — {d.comment}" if d.comment else ""
        rule = f" (rule {d.rule})" if d.rule else ""
        lines.append(f"decision: {d.outcome.value} by {d.by} via {d.channel}{rule}, value "
                     f"{json.dumps(d.value, ensure_ascii=False)}{comment}")
    return lines
