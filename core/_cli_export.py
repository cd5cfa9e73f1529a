"""``signoff export``: decided events as labelled data, for the seeds' retraining loop.

Filters (``--since``, ``--name`` glob, ``--source`` orchestrator, ``--outcome``), formats JSONL
(default), CSV and Parquet (when pyarrow is installed), and per row beside the event: the
recommendation and its confidence, the decision (value, outcome, who, how), whether the person
overrode the recommendation, which fields of a form they amended, the time to decide, and
what a shadow policy rule would have done and whether the decision agreed with it.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from ._errors import InvalidInput
from ._evidence import export_record
from ._model import Event
from ._shadow import agreed

__all__ = ["export", "export_row"]

_SPAN = re.compile(r"([1-9][0-9]{0,4})([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
_OUTCOMES = ("approved", "rejected", "answered", "timed_out", "expired")
COLUMNS = ("id", "key", "name", "prompt", "input", "context", "labels", "source",
           "recommendation", "confidence", "impact", "value", "outcome", "by", "comment",
           "channel", "rule", "verified", "overridden", "amended", "amended_fields",
           "created_at", "decided_at", "seconds_to_decide", "shadow_rule", "shadow_outcome",
           "shadow_agreed", "digest", "kid", "signature")


def export_row(event: Event) -> dict[str, Any]:
    """One labelled row: the event, the recommendation, the decision and how they differ, and
    the decision's evidence (digest, key id, signature), and what a shadow policy rule would
    have decided (``shadow_*``, see :mod:`signoff._shadow`).
    """
    decision = event.decision
    assert decision is not None
    recommended = event.recommendation
    overridden = None if recommended is None else decision.value != recommended
    amended_fields = None
    if isinstance(recommended, dict) and isinstance(decision.value, dict):
        amended_fields = sorted(k for k in {*recommended, *decision.value}
                                if recommended.get(k) != decision.value.get(k))
    return {
        "id": event.id, "name": event.name, "prompt": event.prompt,
        "input": event.input.model_dump(mode="json", by_alias=True),
        "context": event.context, "labels": event.labels,
        "source": event.source.model_dump(mode="json", exclude={"params"}),
        "recommendation": recommended, "confidence": event.confidence,
        "value": decision.value, "outcome": decision.outcome.value, "by": decision.by,
        "comment": decision.comment, "channel": decision.channel, "rule": decision.rule,
        "impact": event.impact, "overridden": overridden, "amended": decision.amended,
        "amended_fields": amended_fields, "created_at": event.created_at.isoformat(),
        "seconds_to_decide": round((decision.at - event.created_at).total_seconds(), 3),
        # policy shadow mode: what a shadow rule would have done, and whether this agreed
        "shadow_rule": event.shadow.rule if event.shadow else None,
        "shadow_outcome": event.shadow.outcome if event.shadow else None,
        "shadow_agreed": agreed(event),
        # the key, digest, signature and the decision they cover: `signoff verify` checks
        # each row offline with the hub's public keys
        **export_record(event),
    }


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """A row for CSV and Parquet: nested values as JSON text."""
    return {k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
            for k, v in row.items()}


@click.command()
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]),
              default="jsonl", show_default=True)
@click.option("--since", default=None, metavar="SPAN", help="Only events created in the last "
              "12h, 30d, 8w...")
@click.option("--name", default=None, help="Only events whose name matches this glob.")
@click.option("--source", default=None, help="Only events from this orchestrator.")
@click.option("--outcome", type=click.Choice(_OUTCOMES), default=None)
@click.option("--output", "-o", default=None, type=click.Path(dir_okay=False),
              help="Write here (needed for parquet); default: standard output.")
@click.pass_context
def export(ctx: click.Context, fmt: str, since: str | None, name: str | None,
           source: str | None, outcome: str | None, output: str | None) -> None:
    """Decided events as labelled data: context, recommendation, decision, responder."""
    from .cli import _client

    cutoff = None
    if since is not None:
        span = _SPAN.fullmatch(since.strip())
        if span is None:
            raise InvalidInput("--since", "a span like 12h, 30d or 8w", since)
        cutoff = datetime.now(timezone.utc) - timedelta(
            **{_UNITS[span.group(2)]: int(span.group(1))})
    if fmt == "parquet":
        if output is None:
            raise InvalidInput("--output", "a file to write Parquet to", None)
        try:
            import pyarrow as pa  # type: ignore[import-not-found, unused-ignore]
            import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise InvalidInput("--format", "jsonl or csv (parquet needs pyarrow: "
                               "pip install pyarrow)", "parquet") from None
    rows = []
    with _client(ctx) as client:
        for event in client.iter_events(status="decided", page_size=200):
            if ((cutoff is not None and event.created_at < cutoff)
                    or (name is not None and not fnmatch.fnmatchcase(event.name, name))
                    or (source is not None and event.source.orchestrator != source)
                    or (outcome is not None and event.decision is not None
                        and event.decision.outcome.value != outcome)):
                continue
            rows.append(export_row(event))
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist([_flat(r) for r in rows]), output)
        return
    out = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        if fmt == "csv":
            writer = csv.DictWriter(out, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(_flat(r) for r in rows)
        else:
            for row in rows:
                out.write(json.dumps(row, sort_keys=True) + "\n")
    finally:
        if output:
            out.close()
