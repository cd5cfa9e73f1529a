"""``signoff delegate``: out of office from the command line, through a running hub.

``signoff delegate add --to bob --until 2w``, ``signoff delegate list``, ``signoff delegate end
ID``; the rules are the hub's (see :mod:`signoff.hub.delegation`).
"""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["delegate"]


def _line(d: dict[str, Any]) -> str:
    state = "active" if d["active"] else ("ended" if d["ended_at"] else "not in force")
    reason = f"  ({d['reason']})" if d.get("reason") else ""
    return (f"{d['id']}  {d['delegator']} -> {d['delegate']}  {d['starts_at']} .. "
            f"{d['ends_at']}  {state}{reason}")


@click.group()
def delegate() -> None:
    """Delegate your events to someone else for a while (out of office)."""


@delegate.command("add")
@click.option("--to", "to", required=True, help="A user name or group:NAME.")
@click.option("--until", required=True, metavar="WHEN",
              help="When it ends: a span (12h, 10d, 2w) or a date (2027-01-10).")
@click.option("--from", "starts", default=None, metavar="WHEN",
              help="When it starts (default: now), same forms.")
@click.option("--for", "delegator", default=None,
              help="Whose events (admins only; default: yours).")
@click.option("--reason", default=None, help="Shown in lists (e.g. 'on leave').")
@click.pass_context
def delegate_add(ctx: click.Context, to: str, until: str, starts: str | None,
                 delegator: str | None, reason: str | None) -> None:
    """Delegate: new events assigned to you are assigned to --to as well."""
    from .cli import _client

    made = _client(ctx).delegate(to, until, starts=starts, delegator=delegator, reason=reason)
    click.echo(_line(made))


@delegate.command("list")
@click.option("--all", "all_", is_flag=True, help="Also the delegations that are over.")
@click.option("--json", "as_json", is_flag=True, help="One JSON delegation per line.")
@click.pass_context
def delegate_list(ctx: click.Context, all_: bool, as_json: bool) -> None:
    """Your delegations and those to you (admins: everyone's)."""
    from .cli import _client

    for d in _client(ctx).delegations(all=all_):
        click.echo(json.dumps(d) if as_json else _line(d))


@delegate.command("end")
@click.argument("delegation_id")
@click.pass_context
def delegate_end(ctx: click.Context, delegation_id: str) -> None:
    """End a delegation now; events already assigned keep their delegate."""
    from .cli import _client

    click.echo(_line(_client(ctx).end_delegation(delegation_id)))
