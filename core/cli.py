"""The ``signoff`` command.

``serve``, ``migrate`` and ``token`` work on the hub's own database; the other commands talk to a
running hub through :class:`signoff.Client` (``--url``/``--token`` or ``SIGNOFF_URL``/``SIGNOFF_TOKEN``).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import click
import httpx
from pydantic import ValidationError

from ._cli_db import db_option
from ._cli_delegate import delegate
from ._cli_export import export
from ._cli_replay import replay_command
from ._client import Client
from ._errors import SignoffError
from ._inputs import parse_text
from ._model import Event
from ._render import LIST_HEADER, event_lines, list_row, table
from ._rules import Identity

if TYPE_CHECKING:
    from .hub.settings import Settings
    from .store import Store

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

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an error a user can act on is one line, ``error: ...``, exit 1."""
        try:
            return super().invoke(ctx)
        except (SignoffError, FileNotFoundError) as exc:
            message = str(exc)
        except httpx.HTTPError as exc:  # the client maps most; a stray one still reads well
            message = f"{type(exc).__name__}: {exc}"
        except ValidationError as exc:  # settings from the environment or the config file
            message = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            message = f"settings: {message}"
        click.echo(f"error: {message}", err=True)
        ctx.exit(1)

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
            needs = f"needs signoff[{getattr(exc, 'extra', None) or name}]"

            def unavailable(args: tuple[str, ...]) -> None:
                click.echo(f"error: signoff {name} {needs}: {reason}", err=True)
                click.get_current_context().exit(1)

            return click.Command(
                name, callback=unavailable, help=f"({needs}: {reason})", short_help=f"({needs})",
                params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
                context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                add_help_option=False)
        return loaded


def _client(ctx: click.Context) -> Client:
    obj = ctx.find_root().obj or {}
    return Client(obj.get("url"), obj.get("token"), channel="cli", retry_for=5.0)


_DB_HELP = "SQLite file (default ./signoff.db) or postgresql://user@host/db URL."


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
@db_option(_DB_HELP)
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              envvar="SIGNOFF_CONFIG", help="A TOML settings file.")
def serve(host: str | None, port: int | None, database: str | None, config: str | None) -> None:
    """Run the hub: the JSON API, the web inbox, the sweeper and the dispatcher."""
    try:
        from .hub import serve as run
    except ImportError as exc:  # the hub extra is missing: say which, in one line
        raise SignoffError(str(exc)) from exc

    run.main(config=config, host=host, port=port, database=database)


@main.command()
@db_option(_DB_HELP)
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              envvar="SIGNOFF_CONFIG", help="A TOML settings file.")
def migrate(database: str | None, config: str | None) -> None:
    """Open the hub's store, apply its pending migrations, check the audit key, and exit.

    Run once before the hubs start (a Kubernetes init container or Job), so replicas never
    migrate while serving; the hub itself would migrate on open all the same. Creates the
    store when there is none, as ``serve`` does; the audit key must be the one its log was
    written with (exit 2 otherwise).
    """
    try:
        from .hub.audit_key import open_hub_store
        from .hub.settings import load_settings
    except ImportError as exc:  # the hub extra is missing: say which, in one line
        raise SignoffError(str(exc)) from exc
    from .store import AuditKeyError

    try:
        store, key = open_hub_store(load_settings(config, database=database))
    except AuditKeyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    store.close()
    click.echo(f"signoff: the store is migrated; the audit log is keyed with {key.source}")


@main.group()
def token() -> None:
    """API tokens (written straight into the hub's database)."""


def _token_store(database: str | None, config: str | None) -> tuple[Settings, Store]:
    """The hub's settings and its store, opened straight on the database."""
    from .hub.audit_key import open_hub_store
    from .hub.settings import load_settings
    from .store import AuditKeyError

    settings = load_settings(config, database=database)
    try:  # the audit key the hub uses: token changes are audited under it
        store, _ = open_hub_store(settings, create=False)  # tokens are for an existing hub
    except AuditKeyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    return settings, store


_DB = db_option(_DB_HELP)
_CONFIG = click.option("--config", type=click.Path(dir_okay=False), default=None,
                       envvar="SIGNOFF_CONFIG", help="A TOML settings file.")


@token.command("create")
@click.option("--user", required=True, help="The identity the token stands for.")
@click.option("--group", "groups", multiple=True, help="A group (repeat for more).")
@click.option("--role", type=click.Choice(["workflow", "reviewer", "admin"]), default="reviewer",
              show_default=True)
@click.option("--name", default=None, help="What the token is for (shown in `token list`).")
@click.option("--expires", default=None, metavar="WHEN",
              help="Expiry: a span (90m, 12h, 30d, 2w) or a date (2027-01-01, UTC); at most "
                   "730 days ahead. Default: never.")
@click.option("--login-link", is_flag=True,
              help="Print a one-time login link for a browser instead of the token (reviewer "
                   "and admin tokens; the token's secret is then never shown).")
@_DB
@_CONFIG
def token_create(user: str, groups: tuple[str, ...], role: str, name: str | None,
                 expires: str | None, login_link: bool, database: str | None,
                 config: str | None) -> None:
    """Mint a token; it is printed once, alone on the last line, and stored hashed."""
    from ._errors import InvalidInput
    from .hub.access import login_link as make_link
    from .hub.access import parse_expires
    from .store import token_id

    if login_link and role == "workflow":
        raise click.BadParameter("login links are for reviewer and admin tokens",
                                 param_hint="--login-link")
    try:
        expires_at = parse_expires(expires) if expires is not None else None
    except InvalidInput as exc:
        raise click.BadParameter(exc.message, param_hint="--expires") from None
    settings, store = _token_store(database, config)
    try:
        who = Identity(user=user, groups=groups, role=role)  # type: ignore[arg-type]
        minted = store.create_token(who, name=name, expires_at=expires_at, actor="admin",
                                    channel="cli")
        link = make_link(settings, store, token_id(minted)) if login_link else None
    finally:
        store.close()
    click.echo(f"token {token_id(minted)} for {user} ({role}"
               f"{', groups ' + ', '.join(groups) if groups else ''}"
               f"{', expires ' + _when(expires_at) if expires_at else ''}):", err=True)
    if link is not None:
        minutes = settings.login_link_seconds / 60
        click.echo(f"one-time login link (works once, within {minutes:g} min):", err=True)
        click.echo(link)
    else:
        click.echo(minted)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


@token.command("list")
@_DB
@_CONFIG
def token_list(database: str | None, config: str | None) -> None:
    """Every token (never a secret): id, user, role, groups, created, expires, last used, state.

    Times are UTC.
    """
    _, store = _token_store(database, config)
    try:
        tokens = store.list_tokens()
    finally:
        store.close()
    now = datetime.now(timezone.utc)
    rows = [("ID", "USER", "ROLE", "GROUPS", "NAME", "CREATED", "EXPIRES", "LAST USED", "STATE")]
    rows += [(t.id, t.identity.user, t.identity.role, ",".join(t.identity.groups) or "-",
              t.name or "-", _when(t.created_at), _when(t.expires_at), _when(t.last_used_at),
              t.state(now)) for t in tokens]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                   .rstrip())


@token.command("revoke")
@click.argument("token_id")
@_DB
@_CONFIG
def token_revoke(token_id: str, database: str | None, config: str | None) -> None:
    """Revoke the token TOKEN_ID (see `token list`): it gets 401 from its next request on, also
    on a running hub, and its browser sessions end.
    """
    from ._errors import NotFound

    _, store = _token_store(database, config)
    try:
        info = store.revoke_token(token_id, actor="admin", channel="cli")
    except NotFound:
        raise click.ClickException(f"no token {token_id} (see `signoff token list`)") from None
    finally:
        store.close()
    click.echo(f"token {info.id} of {info.identity.user} revoked at {_when(info.revoked_at)}")


@main.command("list")
@click.option("--status", type=click.Choice(["pending", "decided", "cancelled", "all"]),
              default="pending", show_default=True, help="Which events; `all` for every one.")
@click.option("--assignee", default=None, help="Only events assigned to this (e.g. group:ops).")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line.")
@click.pass_context
def list_(ctx: click.Context, status: str, assignee: str | None, as_json: bool) -> None:
    """List events (pending ones unless --status), highest priority and oldest first."""
    with _client(ctx) as client:
        events = client.iter_events(status=None if status == "all" else status,
                                    assignee=assignee)
        if as_json:
            for event in events:
                click.echo(event.model_dump_json(by_alias=True))
            return
        rows = [list_row(event) for event in events]
    if not rows:
        click.echo(f"no {'' if status == 'all' else status + ' '}events"
                   + (f" for {assignee}" if assignee else ""), err=True)
        return
    for line in table(LIST_HEADER, rows):
        click.echo(line)


@main.command()
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="The whole event as JSON.")
@click.pass_context
def show(ctx: click.Context, event_id: str, as_json: bool) -> None:
    """Show one event: its facts, its context as a tree, its answers."""
    with _client(ctx) as client:
        event = client.get(event_id)
    if as_json:
        click.echo(json.dumps(event.model_dump(mode="json", by_alias=True), indent=2))
        return
    for line in event_lines(event):
        click.echo(line)


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
    """Cancel a pending event: it leaves every inbox and its waiting step stops."""
    with _client(ctx) as client:
        event = client.cancel(event_id, comment)
    by = event.decision.by if event.decision else "you"
    click.echo(f"{event.id} cancelled by {by}: \"{event.prompt[:80]}\" is off every inbox, "
               "and the workflow step waiting on it stops (signoff.Cancelled).")


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


def _audited_store(database: str | None, config: str | None) -> tuple[Store, str]:
    """The hub's store opened with its audit key (never a new key), and where the key is."""
    from .hub.audit_key import open_hub_store
    from .hub.settings import load_settings
    from .store import AuditKeyError

    try:
        store, key = open_hub_store(load_settings(config, database=database), create_key=False,
                                    create=False)
    except AuditKeyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    return store, key.source


@audit.command("verify")
@db_option(_DB_HELP)
@click.option("--config", type=click.Path(dir_okay=False), default=None, envvar="SIGNOFF_CONFIG")
@click.option("--anchor", default=None, metavar="LINE",
              help="An anchor `signoff audit anchor` printed earlier: also check that no "
                   "entry was deleted from the log's end since.")
def audit_verify(database: str | None, config: str | None, anchor: str | None) -> None:
    """Check the audit log with its key: every entry's keyed hash and link, every response and
    decision row against the digest its entry sealed, and the anchor if given. Prints each
    problem (which entry, or which table and row and how) and exits 1 if there is any.
    """
    from .store import AuditAnchor

    try:
        given = None if anchor is None else AuditAnchor.parse(anchor)
    except SignoffError as exc:
        raise click.BadParameter(str(exc), param_hint="--anchor") from None
    store, source = _audited_store(database, config)
    try:
        report = store.verify_audit(given)
    finally:
        store.close()
    legacy = (f", {report.legacy_entries} of them from before the log was keyed (plain "
              "SHA-256, not covered by the key)" if report.legacy_entries else "")
    if report.ok:
        click.echo(f"audit log intact: {report.entries} entries{legacy}; key from {source}")
        if given is not None:
            click.echo(f"anchor at entry {given.seq}: matches")
        return
    for problem in report.problems:
        message = problem.message
        if problem.kind == "key":
            message += f"; the key came from {source}"
        click.echo(f"audit problem ({problem.kind}): {message}", err=True)
    click.echo(f"audit log NOT intact: {len(report.problems)} problem(s) in {report.entries} "
               f"entries", err=True)
    sys.exit(1)


@audit.command("anchor")
@db_option(_DB_HELP)
@click.option("--config", type=click.Path(dir_okay=False), default=None, envvar="SIGNOFF_CONFIG")
def audit_anchor(database: str | None, config: str | None) -> None:
    """Print the audit log's head (entry number and keyed hash) as one line. Keep it where the
    hub cannot write (a ticket, a commit, another system); `audit verify --anchor LINE` then
    notices entries deleted from the log's end.
    """
    from .store import AuditKeyError

    store, _ = _audited_store(database, config)
    try:
        store.check_audit_key()  # an anchor made with the wrong key would anchor nothing
        head = store.audit_head()
    except AuditKeyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    finally:
        store.close()
    if head is None:
        click.echo("error: the audit log is empty: nothing to anchor", err=True)
        sys.exit(1)
    click.echo(str(head))


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
@db_option("Work on this database directly: a SQLite file or a postgresql:// URL.")
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
@db_option("Work on this database directly: a SQLite file or a postgresql:// URL.")
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


from ._cli_evidence import keys, verify  # noqa: E402  (they register on `main`)

main.add_command(keys)
main.add_command(verify)
main.add_command(delegate)
main.add_command(export)
policy.add_command(replay_command)


def run() -> None:
    """Entry point with errors from the hub printed plainly."""
    try:
        main(standalone_mode=True)
    except SignoffError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
