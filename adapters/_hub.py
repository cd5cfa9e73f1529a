"""What every adapter says about its hub: which one it uses, and where a waiting event is.

An engineer watching a run looks at the engine's own log, not at signoff's; so each adapter
writes one line there per wait, :data:`WAITING` with the event's inbox URL. And a worker
started with no hub URL fails at the first step with :class:`signoff.HubNotConfigured`
naming the setting to fix, instead of retrying forever against a default address.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from signoff import HubNotConfigured

__all__ = ["URL_ENV", "WAITING", "hub_url", "inbox_url", "waiting_line"]

URL_ENV = "SIGNOFF_URL"
WAITING = "signoff: waiting for an answer in the inbox: %s"
"""The line logged once per wait, with the event's inbox URL (``%s``)."""


def hub_url(url: str | None, setting: str) -> str:
    """The hub URL given, else ``SIGNOFF_URL``; with neither, fail naming ``setting``.

    Args:
        url: the URL the adapter was given in code, if any.
        setting: how the user sets it for this adapter, e.g. ``"SIGNOFF_URL or approve(hub_url=)"``.

    Raises:
        HubNotConfigured: no URL was given and ``SIGNOFF_URL`` is not set.
    """
    found = url or os.environ.get(URL_ENV)
    if not found:
        raise HubNotConfigured(f"no signoff hub configured: set {setting} to the hub's URL "
                               f"(e.g. http://127.0.0.1:8765)")
    return found.rstrip("/")


def inbox_url(url: str, event_id: str) -> str:
    """The event's page in the inbox of the hub at ``url`` (the address the adapter uses)."""
    return f"{url.rstrip('/')}/events/{quote(event_id, safe='')}"


def waiting_line(url: str, event_id: str) -> str:
    """:data:`WAITING` filled in, for loggers that take a finished string."""
    return WAITING % inbox_url(url, event_id)
