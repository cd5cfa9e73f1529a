"""``signoff policy replay FILE --since 30d``: a candidate routing policy tried on history.

Reads the decided events of the last ``--since`` through the hub's API (an admin token sees
them all) and prints, per rule of the candidate, what it would have auto-approved or blocked and
how often the people who decided went the other way (see :mod:`signoff._replay`).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta, timezone

import click

__all__ = ["replay_command"]

_SPAN = re.compile(r"([1-9][0-9]{0,4})([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


@click.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--since", default="30d", show_default=True, metavar="SPAN",
              help="How far back: 12h, 30d, 8w.")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@click.pass_context
def replay_command(ctx: click.Context, file: str, since: str, as_json: bool) -> None:
    """Try a candidate routing policy ([[route]] tables) on the decisions people made."""
    from pydantic import ValidationError

    from ._errors import InvalidInput
    from ._replay import Candidate, replay
    from .cli import _client

    span = _SPAN.fullmatch(since.strip())
    if span is None:
        raise InvalidInput("--since", "a span like 12h, 30d or 8w", since)
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with open(file, "rb") as handle:
            candidate = Candidate.model_validate({"route": tomllib.load(handle).get("route", [])})
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        click.echo(f"{file}: not a candidate policy ([[route]] when/then/match): {exc}",
                   err=True)
        sys.exit(1)
    client = _client(ctx)
    events = list(client.iter_events(status="decided"))
    cutoff = datetime.now(timezone.utc) - timedelta(**{_UNITS[span.group(2)]:
                                                        int(span.group(1))})
    events = [e for e in events if e.created_at >= cutoff]
    report = replay(candidate, events)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    click.echo(f"{file}: tried on {report.events} event(s) people decided in the last {since} "
               f"({report.skipped} decided otherwise, not tried)")
    click.echo(f"{'rule':<60} {'matched':>7} {'approve':>7} {'false':>5} {'block':>5} "
               f"{'false':>5}")
    for t in report.rules:
        click.echo(f"{t.rule[:60]:<60} {t.matched:>7} {t.approved:>7} {t.false_approvals:>5} "
                   f"{t.blocked:>5} {t.false_blocks:>5}")
    approved = sum(t.approved for t in report.rules)
    false = sum(t.false_approvals for t in report.rules)
    click.echo(f"would auto-approve {approved}, of which people rejected or answered otherwise "
               f"{false}; would block {sum(t.blocked for t in report.rules)}, of which people "
               f"approved {sum(t.false_blocks for t in report.rules)}")
