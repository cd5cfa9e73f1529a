"""``signoff verify-decision``: the step after an Argo gate's suspend node, checking what it got.

Anyone who may call Argo's ``resume`` or ``set`` on a workflow (``argo node set``, the Argo
UI) can give a suspend node any output: a suspend node takes what it is told. So a gate's
wrapper runs this command after the node, in a container, before the gate succeeds: it reads
the event from the hub, checks the decision's Ed25519 signature (with the keys pinned in the
workflow, or the hub's ``/api/v1/keys``) and payload digest (:meth:`signoff.Client.verified`),
and checks that the node's ``value`` and ``outcome`` are exactly what the hub signed, encoded
as the resumer encodes them. Anything else exits 1, the gate fails, and nothing after it runs;
the refusal is reported to the hub (logged, and audited on the event).

One outcome needs no signature: ``unanswered`` with the gate's default value is what Argo
itself gives the node when its ``duration`` runs out (and what a bare ``argo resume`` gives
it), the same value the gate would continue with on Argo's own timeout — for an approval,
``false``.

The token: ``SIGNOFF_TOKEN_FILE`` (a projected service-account token, workload identity) or
``SIGNOFF_AUTHORIZATION`` (``Bearer <token>``, from the gate's Secret) or ``SIGNOFF_TOKEN``.
This module needs only the core (no hera): it runs in the hub's image.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from signoff import Client, DecisionUnverified, SignoffError
from signoff.adapters.argo._common import UNANSWERED, argo_value, default_value

__all__ = ["check_node", "verify_decision"]

_MAX_ARG = 1_000_000  # an Argo parameter is at most this long in practice; refuse more


def check_node(client: Client, event_id: str, key: str, value: str, outcome: str) -> str:
    """What the node may continue with, once its ``value``/``outcome`` match the hub's signed
    decision for event ``event_id`` (whose key must be ``key``: this node's event).

    Raises:
        DecisionUnverified: not signed, not this node's event, or another value or outcome;
            reported to the hub first.
    """
    event = client.get(event_id)
    if event.key != key:
        why = f"the event's key is {event.key!r}, not this node's {key!r}"
        client.refuse(event_id, why)
        raise DecisionUnverified(event_id, why)
    decision = client.verified(event_id)  # signature and digest; reports a refusal itself
    signed_value = (argo_value(decision.value) if decision.value is not None
                    else default_value(event.input))
    if (value, outcome) != (signed_value, decision.outcome.value):
        why = (f"the node got value {value[:200]!r} and outcome {outcome[:40]!r}, but the hub "
               f"signed value {signed_value[:200]!r} and outcome {decision.outcome.value!r}: "
               "the node was set outside signoff")
        client.refuse(event_id, why)
        raise DecisionUnverified(event_id, why)
    return (f"event {event_id}: {decision.outcome.value} by {decision.by}, signed by "
            f"{decision.kid}; value {signed_value[:200]!r} verified")


def _token() -> str | None:
    """The token from ``SIGNOFF_AUTHORIZATION`` (a Secret's ``Bearer <token>``), if set; the
    client reads ``SIGNOFF_TOKEN_FILE`` and ``SIGNOFF_TOKEN`` by itself.
    """
    header = os.environ.get("SIGNOFF_AUTHORIZATION", "").strip()
    if not header:
        return None
    return header[7:].strip() if header.lower().startswith("bearer ") else header


def _keys(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        keys = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"expected the JSON `signoff keys` prints, got {text[:80]!r} "
                                 f"({exc.msg})", param_hint="--keys") from None
    if not isinstance(keys, dict):
        raise click.BadParameter(f"expected a JSON object, got {type(keys).__name__}",
                                 param_hint="--keys")
    return keys


@click.command("verify-decision")
@click.option("--hub", "hub_url", required=True, help="The hub's URL as seen from the step.")
@click.option("--event", "event_id", required=True, help="The event the gate registered.")
@click.option("--key", required=True, help="The gate's key, argo:<workflow uid>:<node>.")
@click.option("--value", required=True, help="The suspend node's value output.")
@click.option("--outcome", required=True, help="The suspend node's outcome output.")
@click.option("--default", "default", required=True,
              help="The gate's default value (what Argo's own timeout leaves).")
@click.option("--keys", "keys_json",
              help="The hub's public keys, pinned (the JSON `signoff keys` prints); default: "
                   "fetched from the hub's /api/v1/keys.")
def verify_decision(hub_url: str, event_id: str, key: str, value: str, outcome: str,
                    default: str, keys_json: str | None) -> None:
    """Exit 0 only if an Argo gate's node holds the hub's signed decision (see the module)."""
    for name, given in (("--event", event_id), ("--key", key), ("--value", value),
                        ("--outcome", outcome), ("--default", default)):
        if len(given) > _MAX_ARG:
            raise click.BadParameter(f"expected at most {_MAX_ARG} characters, got "
                                     f"{len(given)}", param_hint=name)
    if outcome == UNANSWERED:
        if value != default:
            raise click.ClickException(
                f"event {event_id}: the node is {UNANSWERED} (no signed decision) but its value "
                f"is {value[:200]!r}, not the gate's default {default[:200]!r}: refused")
        click.echo(f"event {event_id}: no decision reached the node (Argo's own timeout or a "
                   f"bare resume); continuing with the default {default[:200]!r}")
        return
    with Client(hub_url, _token(), keys=_keys(keys_json), retry_for=60) as client:
        try:
            click.echo(check_node(client, event_id, key, value, outcome))
        except DecisionUnverified as refused:
            raise click.ClickException(str(refused)) from None
        except SignoffError as failed:
            raise click.ClickException(f"event {event_id}: cannot verify: {failed}") from None
