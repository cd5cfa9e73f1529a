"""The ``signoff`` command.

``serve`` and ``token`` work on the hub's own database; the other commands talk to a running
hub through :class:`signoff.Client` (``--url``/``--token`` or ``SIGNOFF_URL``/``SIGNOFF_TOKEN``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ._client import Client
from ._errors import SignoffError
from ._inputs import parse_text
from ._model import Event
from ._rules import Identity

__all__ = ["main"]


class _Commands(click.Group):
    """The built-in commands plus those adapters add (``signoff.commands`` entry points),
    loaded only when used, so ``signoff list`` never imports an orchestrator SDK.
    """

    def _extra(self) -> dict[str, Any]:
        from importlib.metadata import entry_points

        return {e.name: e for e in entry_points(group="signoff.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._extra()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        entry = self._extra().get(name)
        if entry is None:
            return None
        try:
            loaded: click.Command = entry.load()
        except ImportError as exc:
            reason = str(exc)

            def unavailable() -> None:
                raise click.ClickException(f"signoff {name}: {reason}")

            return click.Command(name, callback=unavailable,
                                 help=f"(unavailable: {reason})", short_help="(unavailable)")
        return loaded


def _client(ctx: click.Context) -> Client:
    obj = ctx.find_root().obj or {}
    return Client(obj.get("url"), obj.get("token"), channel="cli", retry_for=5.0)


@click.group(cls=_Commands)
@click.option("--url", envvar="SIGNOFF_URL", help="The hub's URL (default http://127.0.0.1:8765).")
@click.option("--token", envvar="SIGNOFF_TOKEN", help="An API token.")
@click.pass_context
def main(ctx: click.Context, url: str | None, token: str | None) -> None:
    """signoff: human approval and input steps for workflows, with one inbox."""
    ctx.obj = {"url": url, "token": token}


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to bind (default 8765).")
@click.option("--db", "database", default=None, help="SQLite file (default ./signoff.db).")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              envvar="SIGNOFF_CONFIG", help="A TOML settings file.")
def serve(host: str | None, port: int | None, database: str | None, config: str | None) -> None:
    """Run the hub: the JSON API, the web inbox, the sweeper and the dispatcher."""
    from .hub import serve as run

    run.main(config=config, host=host, port=port, database=database)


@main.group()
def token() -> None:
    """API tokens (written straight into the hub's database)."""


@token.command("create")
@click.option("--user", required=True, help="The identity the token stands for.")
@click.option("--group", "groups", multiple=True, help="A group (repeat for more).")
@click.option("--role", type=click.Choice(["workflow", "reviewer", "admin"]), default="reviewer",
              show_default=True)
@click.option("--db", "database", default=None, help="SQLite file (default ./signoff.db).")
@click.option("--config", type=click.Path(dir_okay=False), default=None, envvar="SIGNOFF_CONFIG")
def token_create(user: str, groups: tuple[str, ...], role: str, database: str | None,
                 config: str | None) -> None:
    """Mint a token; it is printed once, alone on the last line, and stored hashed."""
    from .hub.settings import load_settings
    from .store import open_store

    settings = load_settings(config, database=database)
    store = open_store(settings.database)
    try:
        minted = store.create_token(Identity(user=user, groups=groups, role=role))  # type: ignore[arg-type]
    finally:
        store.close()
    click.echo(f"token for {user} ({role}{', groups ' + ', '.join(groups) if groups else ''}):",
               err=True)
    click.echo(minted)


@main.command("list")
@click.option("--status", type=click.Choice(["pending", "decided", "cancelled"]), default=None)
@click.option("--assignee", default=None)
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line.")
@click.pass_context
def list_(ctx: click.Context, status: str | None, assignee: str | None, as_json: bool) -> None:
    """List events, highest priority and oldest first."""
    with _client(ctx) as client:
        for event in client.iter_events(status=status, assignee=assignee):
            if as_json:
                click.echo(event.model_dump_json(by_alias=True))
            else:
                outcome = event.decision.outcome.value if event.decision else event.status
                click.echo(f"{event.id}  {event.priority.value:<6}  {outcome:<9}  "
                           f"{event.created_at:%Y-%m-%d %H:%M}  {event.prompt[:60]}")


@main.command()
@click.argument("event_id")
@click.pass_context
def show(ctx: click.Context, event_id: str) -> None:
    """Show one event as JSON."""
    with _client(ctx) as client:
        click.echo(json.dumps(client.get(event_id).model_dump(mode="json", by_alias=True),
                              indent=2))


@main.command()
@click.argument("event_id")
@click.argument("value")
@click.option("--comment", default=None)
@click.option("--json", "as_json", is_flag=True, help="VALUE is JSON, sent as it is.")
@click.pass_context
def respond(ctx: click.Context, event_id: str, value: str, comment: str | None,
            as_json: bool) -> None:
    """Answer an event (VALUE is read by its input kind: yes/no, a number, a choice...)."""
    with _client(ctx) as client:
        event = client.get(event_id)
        answer: Any = json.loads(value) if as_json else parse_text(event.input, value)
        decided = client.respond(event_id, answer, comment)
        _say_decided(decided)


def _say_decided(event: Event) -> None:
    if event.decision is not None:
        click.echo(f"{event.id}: {event.decision.outcome.value} by {event.decision.by} "
                   f"(value {json.dumps(event.decision.value)})")
    else:
        click.echo(f"{event.id}: {event.status}")


@main.command()
@click.argument("event_id")
@click.option("--comment", default=None)
@click.pass_context
def cancel(ctx: click.Context, event_id: str, comment: str | None) -> None:
    """Cancel a pending event."""
    with _client(ctx) as client:
        _say_decided(client.cancel(event_id, comment))


@main.command()
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl",
              show_default=True)
@click.pass_context
def export(ctx: click.Context, fmt: str) -> None:
    """Decided events as labelled data: context, recommendation, decision, responder."""
    with _client(ctx) as client:
        for event in client.iter_events(status="decided", page_size=200):
            assert event.decision is not None
            row = {
                "id": event.id, "name": event.name, "prompt": event.prompt,
                "input": event.input.model_dump(mode="json", by_alias=True),
                "context": event.context, "labels": event.labels, "source":
                event.source.model_dump(mode="json", exclude={"params"}),
                "recommendation": event.recommendation, "confidence": event.confidence,
                "value": event.decision.value, "outcome": event.decision.outcome.value,
                "by": event.decision.by, "comment": event.decision.comment,
                "channel": event.decision.channel,
                "created_at": event.created_at.isoformat(),
                "decided_at": event.decision.at.isoformat(),
            }
            click.echo(json.dumps(row, sort_keys=True))


@main.group()
def audit() -> None:
    """The audit log."""


@audit.command("show")
@click.argument("event_id")
@click.pass_context
def audit_show(ctx: click.Context, event_id: str) -> None:
    """One event's audit trail."""
    with _client(ctx) as client:
        for entry in client.audit(event_id):
            click.echo(f"{entry['at']}  {entry['action']:<16} {entry['actor']:<16} "
                       f"via {entry['channel']}")


@audit.command("verify")
@click.option("--db", "database", default=None, help="SQLite file (default ./signoff.db).")
@click.option("--config", type=click.Path(dir_okay=False), default=None, envvar="SIGNOFF_CONFIG")
def audit_verify(database: str | None, config: str | None) -> None:
    """Check the audit log's hash chain; exit 1 if any line was changed or removed."""
    from .hub.settings import load_settings
    from .store import open_store

    store = open_store(load_settings(config, database=database).database)
    try:
        report = store.verify_audit()
    finally:
        store.close()
    if report.ok:
        click.echo(f"audit log intact: {report.entries} entries")
        return
    click.echo(f"audit log broken at entry {report.first_bad_seq} "
               f"(after {report.entries} good entries)", err=True)
    sys.exit(1)


@main.group()
def deliveries() -> None:
    """Resume deliveries: list them, send a failed one again.

    With ``--db`` (or ``--config``) the command works on the hub's database directly;
    otherwise it asks the running hub (``--url``/``--token``, an admin token).
    """


def _delivery_line(d: dict[str, Any]) -> str:
    error = f"  {d['last_error']}" if d.get("last_error") else ""
    return (f"{d['id']}  {d['state']:<9}  {d['resumer']:<10}  event {d['event_id']}  "
            f"attempts {d['attempts']}{error}")


@deliveries.command("list")
@click.option("--state", type=click.Choice(["pending", "delivered", "failed"]), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON delivery per line.")
@click.option("--db", "database", default=None, help="Work on this SQLite file directly.")
@click.option("--config", type=click.Path(dir_okay=False), default=None)
@click.pass_context
def deliveries_list(ctx: click.Context, state: str | None, limit: int, as_json: bool,
                    database: str | None, config: str | None) -> None:
    """Deliveries, most recently changed first."""
    if database is not None or config is not None:
        from dataclasses import asdict

        from .hub.settings import load_settings
        from .store import open_store

        store = open_store(load_settings(config, database=database).database)
        try:
            found = [{k: v.isoformat() if hasattr(v, "isoformat") else v
                      for k, v in asdict(d).items()}
                     for d in store.list_deliveries(state=state, limit=limit)]
        finally:
            store.close()
    else:
        with _client(ctx) as client:
            answer = client._request("GET", "/api/v1/deliveries", idempotent=True,
                                     params={"state": state, "limit": limit} if state
                                     else {"limit": limit})
            found = answer.json()["deliveries"]
    for d in found:
        click.echo(json.dumps(d, sort_keys=True) if as_json else _delivery_line(d))


@deliveries.command("retry")
@click.argument("delivery_id")
@click.option("--db", "database", default=None, help="Work on this SQLite file directly.")
@click.option("--config", type=click.Path(dir_okay=False), default=None)
@click.pass_context
def deliveries_retry(ctx: click.Context, delivery_id: str, database: str | None,
                     config: str | None) -> None:
    """Send a failed delivery again: it becomes pending, due now.

    On the database, a running hub picks it up within ``sweep_interval``.
    """
    if database is not None or config is not None:
        from .hub.settings import load_settings
        from .store import open_store

        store = open_store(load_settings(config, database=database).database)
        try:
            record = store.retry_delivery(delivery_id, actor="admin", channel="cli")
        finally:
            store.close()
        click.echo(f"{record.id}: {record.state} again (event {record.event_id})")
        return
    with _client(ctx) as client:
        retried = client._request("POST", f"/api/v1/deliveries/{delivery_id}/retry").json()
    click.echo(f"{retried['id']}: {retried['state']} again (event {retried['event_id']})")


@main.group()
def policy() -> None:
    """The hub's policy file (``[[policies]]`` in signoff.toml)."""


@policy.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def policy_check(file: str) -> None:
    """Validate a policy file; exit 1 naming each field that is wrong."""
    from pydantic import ValidationError

    from ._policy import PolicyFile

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    try:
        with open(file, "rb") as handle:
            data = tomllib.load(handle)
        checked = PolicyFile.model_validate({"policies": data.get("policies", [])})
    except tomllib.TOMLDecodeError as exc:
        click.echo(f"{file}: not TOML: {exc}", err=True)
        sys.exit(1)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            click.echo(f"{file}: {where}: {error['msg']} (got {error.get('input')!r})", err=True)
        sys.exit(1)
    click.echo(f"{file}: {len(checked.policies)} policy rule(s), all valid")


def run() -> None:
    """Entry point with errors from the hub printed plainly."""
    try:
        main(standalone_mode=True)
    except SignoffError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
