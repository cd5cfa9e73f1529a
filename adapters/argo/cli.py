"""``signoff argo``: gates for Argo users who write YAML, not Python.

```
signoff argo render --name approve --prompt "Release?" --kind approval --timeout 3600 \
    --hub-url http://signoff.signoff.svc:8765
signoff argo wrap workflow.yaml --before release --hub-url http://signoff.signoff.svc:8765 \
    > wrapped.yaml
signoff argo validate wrapped.yaml
```
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import click

from signoff import SignoffError
from signoff.adapters.argo._common import ArgoExtraMissing

try:
    import yaml
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ArgoExtraMissing("PyYAML") from exc

from signoff.adapters.argo._manifest import dump_yaml, render, validate, wrap
from signoff.adapters.argo._templates import ArgoGate, HubConnection, input_step

__all__ = ["argo"]

_KINDS = ["approval", "bool", "int", "float", "text", "choice", "multichoice", "form"]


@click.group()
def argo() -> None:
    """Argo Workflows: render gate templates, wrap a workflow, validate manifests."""


def _gate_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that describe a gate, shared by ``render`` and ``wrap``."""
    options = [
        click.option("--prompt", help="The question (Argo tags allowed)."),
        click.option("--timeout", type=float, help="Seconds until the hub's deadline."),
        click.option("--on-timeout", type=click.Choice(["default", "reject", "fail"]),
                     default="reject", show_default=True),
        click.option("--on-reject", type=click.Choice(["fail", "continue"]), default="fail",
                     show_default=True, help="Fail the node on a rejection, or continue "
                                             "with value=false."),
        click.option("--grace", type=float, default=60.0, show_default=True,
                     help="Seconds Argo waits past the deadline before resuming on its own."),
        click.option("--assignee", "assignees", multiple=True,
                     help="A user or group:NAME (repeat)."),
        click.option("--priority", type=click.Choice(["low", "normal", "high", "urgent"]),
                     default="normal", show_default=True),
        click.option("--impact", type=click.Choice(["low", "medium", "high", "critical"]),
                     help="What is at stake; the hub's policies key on it (a high-impact "
                          "gate is never decided in a batch)."),
        click.option("--context", "context_json", help="A JSON object shown to reviewers."),
        click.option("--label", "labels", multiple=True, help="KEY=VALUE (repeat)."),
        click.option("--parameter", "parameters", multiple=True,
                     help="An extra gate input NAME or NAME=DEFAULT (repeat)."),
        click.option("--hub-url", required=True,
                     help="The hub's URL as seen from the cluster, e.g. "
                          "http://signoff.signoff.svc:8765 (no default)."),
        click.option("--token-secret", default=HubConnection.token_secret, show_default=True,
                     help="The Secret holding 'Bearer <token>'."),
        click.option("--token-key", default=HubConnection.token_key, show_default=True),
        click.option("--registration", type=click.Choice(["http", "container"]),
                     default="http", show_default=True,
                     help="An http template (Argo agent) or a curl container."),
        click.option("--image", default=HubConnection.image, show_default=True,
                     help="Image of the container registration."),
        click.option("--auth", type=click.Choice(["secret", "workload"]), default="secret",
                     show_default=True,
                     help="The token from --token-secret, or a projected service-account "
                          "token (workload identity, no Secret; needs --registration "
                          "container)."),
        click.option("--audience", default=HubConnection.audience, show_default=True,
                     help="The projected token's audience (--auth workload)."),
        click.option("--verify/--no-verify", default=True, show_default=True,
                     help="Check the node's value against the hub's signed decision before "
                          "the gate succeeds."),
        click.option("--verify-image", default=HubConnection.verify_image, show_default=True,
                     help="Image of the verify step (it runs `signoff verify-decision`)."),
        click.option("--keys", "keys_file", type=click.File("r"),
                     help="Pin the hub's public keys (a file of `signoff keys` output); "
                          "default: the verify step fetches them from the hub."),
        click.option("--argo-ui-url", help="The Argo UI's URL, to link runs from the inbox."),
        click.option("--hub-public-url",
                     help="The hub's URL as reviewers open it (default --hub-url); the "
                          "waiting node shows its inbox page."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _gate(name: str, kind: str, spec_extra: dict[str, Any], prompt: str | None,
          **options: Any) -> ArgoGate:
    hub = HubConnection(url=options.pop("hub_url"), token_secret=options.pop("token_secret"),
                        token_key=options.pop("token_key"),
                        registration=options.pop("registration"), image=options.pop("image"),
                        argo_ui_url=options.pop("argo_ui_url"),
                        public_url=options.pop("hub_public_url"), auth=options.pop("auth"),
                        audience=options.pop("audience"), verify=options.pop("verify"),
                        verify_image=options.pop("verify_image"), keys=_keys(options))
    context = json.loads(options.pop("context_json") or "{}")
    if not isinstance(context, dict):
        raise click.BadParameter(f"expected a JSON object, got {context!r}",
                                 param_hint="--context")
    labels = dict(_pair(text, "--label") for text in options.pop("labels"))
    parameters: dict[str, str | None] = {}
    for text in options.pop("parameters"):
        key, _, default = text.partition("=")
        parameters[key] = default if "=" in text else None
    return input_step(name, prompt or "Continue workflow {{workflow.name}}?",
                      input={"kind": kind, **spec_extra}, hub=hub, context=context,
                      labels=labels, parameters=parameters,
                      assignees=list(options.pop("assignees")), **options)


def _keys(options: dict[str, Any]) -> str | None:
    stream = options.pop("keys_file")
    return None if stream is None else str(stream.read())


def _pair(text: str, hint: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise click.BadParameter(f"expected KEY=VALUE, got {text!r}", param_hint=hint)
    return key, value


def _errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Show a refused field as a one-line error, not a traceback."""
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ValueError, TypeError, SignoffError) as exc:
            raise click.ClickException(str(exc)) from exc
    return run


@argo.command("render")
@click.option("--name", required=True, help="The gate's template and step name.")
@click.option("--kind", type=click.Choice(_KINDS), default="approval", show_default=True)
@click.option("--option", "choices", multiple=True, help="A choice (repeat).")
@click.option("--default", "default_text", help="The default answer, as typed.")
@click.option("--min", "minimum", type=float, help="Lowest number allowed.")
@click.option("--max", "maximum", type=float, help="Highest number allowed.")
@click.option("--max-length", type=int, help="Longest text allowed.")
@click.option("--pattern", help="A regular expression the text must match.")
@click.option("--schema", "schema_json", help="The JSON schema of a form.")
@click.option("--workflow", is_flag=True, help="Print a complete Workflow around the gate.")
@_gate_options
@_errors
def render_command(name: str, kind: str, choices: tuple[str, ...], default_text: str | None,
                   minimum: float | None, maximum: float | None, max_length: int | None,
                   pattern: str | None, schema_json: str | None, workflow: bool,
                   prompt: str | None, **options: Any) -> None:
    """Print the YAML templates of a gate (and, as comments, the step that calls it)."""
    from signoff import input_spec, parse_text

    extra: dict[str, Any] = {}
    if choices:
        extra["options"] = list(choices)
    for option, key, value in (("--min", "min", minimum), ("--max", "max", maximum)):
        if kind not in ("int", "float") or value is None:
            continue
        if kind == "int":  # the spec's int bounds take integers only
            if not value.is_integer():
                raise ValueError(f"{option}: expected a whole number for an int gate, "
                                 f"got {value:g}")
            value = int(value)
        extra[key] = value
    if kind == "text":
        extra.update({k: v for k, v in (("max_length", max_length), ("pattern", pattern))
                      if v is not None})
    if kind == "form":
        extra["schema"] = json.loads(schema_json or '{"type": "object"}')
    if default_text is not None:
        extra["default"] = parse_text(input_spec({"kind": kind, **extra}), default_text,
                                      field="--default")
    gate = _gate(name, kind, extra, prompt, **options)
    click.echo(render(gate, workflow=workflow), nl=False)


@argo.command("wrap")
@click.argument("manifest", type=click.File("r"))
@click.option("--before", required=True, help="The step or task to guard with an approval.")
@click.option("--name", help="The gate's name (default approve-<before>).")
@click.option("--template", help="The steps or dag template holding the step, if several do.")
@click.option("--output", "-o", type=click.File("w"), default="-", help="Where to write.")
@_gate_options
@_errors
def wrap_command(manifest: Any, before: str, name: str | None, template: str | None,
                 output: Any, prompt: str | None, **options: Any) -> None:
    """Insert an approval before a step of a workflow manifest (YAML in, YAML out)."""
    loaded = _load(manifest)
    gate = _gate(name or f"approve-{before}".lower()[:54].rstrip("-"), "approval", {},
                 prompt or f"Run step '{before}' of workflow {{{{workflow.name}}}}?", **options)
    output.write(dump_yaml(wrap(loaded, before, gate=gate, template=template)))


@argo.command("validate")
@click.argument("manifest", type=click.File("r"))
@_errors
def validate_command(manifest: Any) -> None:
    """Check a Workflow (or template, cron workflow) manifest against hera's Argo models."""
    loaded = _load(manifest)
    validate(loaded)
    meta = loaded.get("metadata") or {}
    click.echo(f"{loaded['kind']} {meta.get('name') or meta.get('generateName', '')}: valid")


def _load(stream: Any) -> dict[str, Any]:
    try:
        documents = [d for d in yaml.safe_load_all(stream) if d is not None]
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{stream.name}: not YAML: {exc}") from exc
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise click.ClickException(f"{stream.name}: expected one manifest (a YAML mapping), "
                                   f"got {len(documents)} documents")
    found: dict[str, Any] = documents[0]
    return found
