"""``signoff flyte2 bridge``: Flyte 2's native conditions in the inbox, run beside the hub.

```
export SIGNOFF_URL=http://signoff:8765 SIGNOFF_TOKEN=...          # a workflow token
export SIGNOFF_FLYTE2_TOKEN=...                                   # or --token-file
signoff flyte2 bridge --endpoint https://flyte.example.com --project ml/production
```

Tokens come from the environment or files, never from the command line (where ``ps`` shows
them). The hub answers the conditions with its own ``[resumers.flyte2]`` settings.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import click

__all__ = ["flyte2"]


def _project(_: Any, __: Any, values: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        project, _, domain = value.partition("/")
        if not project or not domain or "/" in domain:
            raise click.BadParameter(f"expected PROJECT/DOMAIN, got {value!r}")
        pairs.append((project, domain))
    return pairs


@click.group()
def flyte2() -> None:
    """Flyte 2: answer native conditions (flyte.new_condition) from the inbox."""


@flyte2.command()
@click.option("--endpoint", required=True,
              help="Flyte's control plane: https://host, or host:port.")
@click.option("--project", "projects", multiple=True, required=True, callback=_project,
              help="PROJECT/DOMAIN to watch (repeat).")
@click.option("--insecure", is_flag=True, help="Plain HTTP to the control plane.")
@click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False),
              help="A PEM file of roots to trust for TLS.")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False),
              help="A file holding Flyte's bearer token (default: SIGNOFF_FLYTE2_TOKEN).")
@click.option("--org", default="", help="The Flyte organization, where it has one.")
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=5.0, show_default=True,
              help="Seconds between looks.")
@click.option("--assignee", "assignees", multiple=True, help="A user or group:NAME (repeat).")
@click.option("--priority", type=click.Choice(["low", "normal", "high", "urgent"]),
              default="normal", show_default=True)
@click.option("--console", help="The Flyte console's URL, to link each event to its run.")
def bridge(endpoint: str, projects: list[tuple[str, str]], insecure: bool,
           ca_cert: str | None, token_file: str | None, org: str, interval: float,
           assignees: tuple[str, ...], priority: str, console: str | None) -> None:
    """Raise an event for each waiting condition; close it when Flyte resolves it first."""
    from ._common import MissingExtra, require
    from ._condition_bridge import ConditionBridge

    try:  # at once, not at the first round: the bridge needs Flyte's generated client
        require("flyteidl2", "flyte2")
        require("connectrpc", "flyte2")
    except MissingExtra as exc:
        raise click.ClickException(str(exc)) from None

    settings: dict[str, Any] = {"endpoint": endpoint, "insecure": insecure, "org": org}
    if ca_cert:
        settings["ca_cert"] = ca_cert
    if token_file:
        settings["token_file"] = token_file
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    made = ConditionBridge(settings, projects, interval=interval, assignees=assignees,
                           priority=priority, console=console)
    click.echo(f"signoff flyte2 bridge: watching {', '.join(f'{p}/{d}' for p, d in projects)} "
               f"on {made.flyte.endpoint} for {made.hub.url}", err=True)

    async def main() -> None:
        try:
            await made.run()
        finally:
            await made.aclose()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
