"""Channels are facts, not claims: which channel an answer is recorded under, and who may claim it.

The hub records the channel an answer, a creation or a cancel came through. Some channels it
sets itself (``web`` for the inbox; ``policy``, ``timeout``, ``sweeper``, ``fallback`` for its
own decisions); the others a caller names with the ``X-Signoff-Channel`` header, and may claim
only what this table allows its token:

| channel          | kind    | who may claim it over the API |
| ---------------- | ------- | ----------------------------- |
| ``api``          | human   | any token not bound to a channel (the default) |
| ``cli``          | human   | any token not bound to a channel (``signoff`` CLI) |
| ``web``          | human   | nobody: only the inbox records it |
| ``link``         | human   | nobody: only a signed one-click link's confirm page records it |
| ``slack``        | human   | nobody: only the hub's Slack endpoint records it, for a signed request |
| ``policy``, ``timeout``, ``sweeper``, ``fallback``, ``hub`` | hub | nobody: the hub's own |
| ``decider:NAME`` | decider | tokens bound to it (``channel_bindings`` in the hub's settings) |
| any other name   | engine  | a workflow token, on its own event whose ``source.orchestrator`` is that name (e.g. ``prefect``, ``airflow``, ``flyte``, ``argo``, ``temporal``); tokens bound to it |

A token bound to channels answers only through them (its ``api`` default becomes its first
bound channel). An answer on an engine channel is a *relay*: an engine passes on an answer a
person gave in the engine's own UI or CLI. It is recorded as given by the person the engine
names (``by="airflow:alice"``) or, when the engine names nobody, ``by="prefect:unverified"``;
never in the name of the relaying token, and always ``verified=False`` (signoff did not
authenticate that person).

Pure functions without I/O, like :mod:`signoff._rules`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Literal

from ._errors import Forbidden, InvalidInput

__all__ = [
    "ChannelRefused",
    "ENGINES",
    "HUB_CHANNELS",
    "HUMAN_CHANNELS",
    "RelayRefused",
    "channel_kind",
    "check_claim",
    "claim_channel",
    "is_automated",
    "relay_by",
]

HUMAN_CHANNELS = frozenset({"api", "cli", "web", "link", "slack"})
"""Channels a person answers through with their own token or session."""

HUB_CHANNELS = frozenset({"policy", "timeout", "sweeper", "fallback", "hub"})
"""Channels only the hub itself records (routing, deadlines, escalation fallbacks)."""

ENGINES = ("prefect", "airflow", "flyte", "argo", "temporal")
"""The built-in engines; an orchestrator a third-party resumer serves is an engine too."""

_LEGACY = {"prefect-ui": "prefect", "temporal-ui": "temporal", "flyte-ui": "flyte"}
"""Relay channels adapters named before channels became facts: read as the engine's name."""

_RECORDED_BY_HUB_PAGES = {"web": "the inbox", "link": "a signed one-click link's confirm page",
                          "slack": "the hub's Slack endpoint, for a request Slack signed"}
"""Human channels only the hub's own pages record: a caller can never claim them."""

_SYNTAX = re.compile(r"^(?:[a-z][a-z0-9_-]{0,31}|decider:[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")
_ACTOR = re.compile(r"^[^\x00-\x1f\x7f:][^\x00-\x1f\x7f]{0,127}$")

Kind = Literal["human", "hub", "decider", "engine"]


class ChannelRefused(Forbidden):
    """The caller may not claim this channel (403): the message names it and says why."""


class RelayRefused(Forbidden):
    """An engine-relayed answer the relay policy refuses (403); the hub audits it."""

    def __init__(self, reason: str, *, engine: str, by: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.engine = engine
        self.by = by


def channel_kind(channel: str) -> Kind:
    """Which row of the table ``channel`` falls in."""
    if channel in HUMAN_CHANNELS:
        return "human"
    if channel in HUB_CHANNELS:
        return "hub"
    if channel.startswith("decider:"):
        return "decider"
    return "engine"


def is_automated(channel: str) -> bool:
    """True for answers an automated decider gave (the hub's fallback or a bound decider)."""
    return channel == "fallback" or channel.startswith("decider:")


def check_claim(claim: str | None) -> str | None:
    """The channel named in ``X-Signoff-Channel``, checked for form and for the channels nobody
    may claim over the API; ``None`` when absent. Legacy relay names (``prefect-ui``) read as
    their engine.

    Raises:
        InvalidInput: not a channel name (422).
        ChannelRefused: ``web`` or one of the hub's own channels (403).
    """
    if claim is None or claim == "":
        return None
    if not _SYNTAX.match(claim):
        raise InvalidInput("X-Signoff-Channel",
                           "1-32 lower-case letters, digits, - or _ starting with a letter, "
                           "or decider:NAME", claim)
    if claim in _RECORDED_BY_HUB_PAGES:
        raise ChannelRefused(f"channel {claim!r} is recorded by {_RECORDED_BY_HUB_PAGES[claim]} "
                             "only; it cannot be claimed over the API")
    if claim in HUB_CHANNELS:
        raise ChannelRefused(f"channel {claim!r} is reserved for the hub's own decisions")
    return _LEGACY.get(claim, claim)


def claim_channel(role: str, user: str, claim: str | None, *, bound: Collection[str],
                  orchestrator: str, owner: str | None) -> str:
    """The channel to record for a caller's claim (already :func:`check_claim`-ed).

    Args:
        role: the caller's role (``workflow``, ``reviewer``, ``admin``).
        user: the caller's user name, for messages.
        claim: the checked claim, ``None`` when the caller named none.
        bound: the channels the caller's token is bound to (may be empty).
        orchestrator: ``source.orchestrator`` of the event concerned.
        owner: who requested the event concerned (the caller, when creating).

    Raises:
        ChannelRefused: the caller may not claim this channel here; the message says why.
    """
    if bound:
        if claim is None or claim == "api":
            return next(iter(bound))
        if claim in bound:
            return claim
        raise ChannelRefused(f"channel {claim!r} refused: {user}'s token is bound to "
                             f"{', '.join(sorted(bound))} and answers only through it")
    if claim is None:
        return "api"
    kind = channel_kind(claim)
    if kind == "human":
        return claim
    if kind == "decider":
        raise ChannelRefused(f"channel {claim!r} refused: a decider channel belongs to tokens "
                             f"bound to it (channel_bindings), and {user}'s token is not")
    if role != "workflow":
        raise ChannelRefused(f"channel {claim!r} refused: an engine channel is for a workflow "
                             f"relaying an answer given in that engine, not for {role} tokens")
    if owner != user:
        raise ChannelRefused(f"channel {claim!r} refused: a workflow may relay answers only "
                             f"on its own events")
    if claim != orchestrator:
        raise ChannelRefused(f"channel {claim!r} refused: this event comes from "
                             f"{orchestrator!r}, so only an answer given in {orchestrator!r} "
                             "can be relayed for it")
    return claim


def relay_by(engine: str, actor: str | None) -> str:
    """The ``by`` of a relayed answer: ``engine:actor``, or ``engine:unverified`` when the
    engine names nobody.

    Raises:
        InvalidInput: ``actor`` is not a plausible name (422).
    """
    if actor is None or actor == "":
        return f"{engine}:unverified"
    if not _ACTOR.match(actor):
        raise InvalidInput("relayed_by", "the name the engine gives the person who answered "
                           "(1-128 printable characters, not starting with ':')", actor)
    return f"{engine}:{actor}"
