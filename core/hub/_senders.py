"""The notification sender processes (issue 14): apprise runs in processes of its own.

A send is all Python (apprise parses the URL, builds the plugin, formats, speaks HTTP through
requests): a thousand of them in the hub's worker threads hold the GIL that the event loop and
the store's writer need, and the hub answers its probes late. In separate processes they cost
the hub nothing but the pickling of a title and a body. What runs in a sender is here and
imports nothing of the hub, so a sender starts fast and holds only apprise.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

__all__ = ["prepare", "ready", "send_all"]

_apprise: Any = None


def prepare() -> None:
    """A sender's start: end with the hub (Linux), leave Ctrl-C to the hub, load apprise."""
    global _apprise
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the hub stops its senders itself
    try:  # when the cores are busy, the hub's loop goes first: a message can wait a little
        os.nice(5)
    except OSError:
        pass
    # a hub killed outright leaves no sender behind (PR_SET_PDEATHSIG would not do: it fires
    # when the hub's thread that started the sender ends, not the hub)
    threading.Thread(target=_orphaned, args=(os.getppid(),), name="signoff-sender-watch",
                     daemon=True).start()
    logging.getLogger("apprise").addHandler(logging.NullHandler())
    logging.getLogger("apprise").propagate = False
    try:
        import apprise
    except ImportError:
        return
    apprise.Apprise().add("json://localhost/")  # loads the plugin table
    _apprise = apprise


def _orphaned(hub: int) -> None:
    """End this sender once the hub that started it is gone."""
    while os.getppid() == hub:
        time.sleep(1.0)
    os._exit(0)


def ready() -> str | None:
    """Apprise's version in this sender, or ``None`` when it is not installed."""
    return None if _apprise is None else str(_apprise.__version__)


def send_all(messages: list[tuple[list[str], str, str]]) -> tuple[bool, int]:
    """Each message to its targets; returns (all sent, how many URLs apprise refused)."""
    if _apprise is None:
        return False, 0
    ok, refused = True, 0
    for urls, title, body in messages:
        sender = _apprise.Apprise()
        for url in urls:
            if not sender.add(url):
                refused += 1
        ok = bool(sender.notify(title=title, body=body)) and ok
    return ok and not refused, refused
