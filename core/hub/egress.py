"""What an event may make the hub call, checked when it is created (nothing is stored on refusal).

An event names its outbound targets: a webhook URL (``source.params.url`` with the ``webhook``
orchestrator) and notification channels by name (``policy.notify``,
``policy.escalate[i].notify``). The URL must pass the hub's ``egress_allow`` (and, for an IP
literal, ``egress_allow_private``); each channel must be configured in ``notify_channels``; and
together they may be at most ``max_fanout``. Names are resolved, and their addresses checked,
again when each connection is made (:mod:`signoff._egress`).
"""

from __future__ import annotations

from .._egress import EgressGuard, EgressRefused
from .._errors import InvalidInput
from .._model import EventCreate
from .settings import Settings

__all__ = ["check_event_egress"]


def check_event_egress(settings: Settings, guard: EgressGuard, body: EventCreate) -> None:
    """Refuse an event whose outbound targets the hub's settings do not allow.

    Raises:
        InvalidInput: naming the field (``source.params.url``, ``policy.notify.0``, ...).
    """
    targets = 0
    if body.source.orchestrator == "webhook":
        url = body.source.params.get("url")
        if not isinstance(url, str):
            raise InvalidInput("source.params.url", "an http(s) URL for the webhook resumer",
                               url)
        try:
            guard.check_url(url)
        except EgressRefused as exc:
            raise InvalidInput("source.params.url",
                               "a URL the hub's egress_allow permits, to a public address "
                               "unless egress_allow_private covers it", url,
                               message=f"source.params.url: {exc}") from exc
        targets += 1
    named: dict[str, str] = {}
    if body.policy is not None:
        fields = [("policy.notify", body.policy.notify)] + [
            (f"policy.escalate.{i}.notify", tier.notify)
            for i, tier in enumerate(body.policy.escalate)]
        for field, channels in fields:
            for index, name in enumerate(channels):
                if name not in settings.notify_channels:
                    known = ", ".join(sorted(settings.notify_channels)) or "none configured"
                    raise InvalidInput(f"{field}.{index}",
                                       f"a notification channel configured in the hub ({known})",
                                       name)
                named.setdefault(name, f"{field}.{index}")
                if targets + len(named) > settings.max_fanout:
                    raise InvalidInput(f"{field}.{index}",
                                       f"at most {settings.max_fanout} outbound targets per "
                                       "event (its webhook and distinct notification channels)",
                                       name)
