"""``signoff serve``: open the store, greet a fresh install, and run uvicorn."""

from __future__ import annotations

import logging
import resource
import sys
from typing import Any

import uvicorn

from .._rules import Identity
from ..store import open_store
from .app import create_app
from .settings import load_settings

__all__ = ["main"]


def _raise_open_files() -> None:
    # every parked long-poll holds a socket: allow as many as the system lets us
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _log_to_stderr() -> None:
    # the hub says on stderr when an integration is ready, slow, failing or lagging
    logger = logging.getLogger("signoff")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(config: str | None = None, **overrides: Any) -> None:
    """Run the hub until interrupted."""
    _log_to_stderr()
    # Worker threads (apprise sends, store reads, SDK calls) hold the GIL for up to the switch
    # interval each time the event loop wants it back: 5 ms by default, 1 ms here, so a busy
    # thread pool adds little to an answer's latency.
    sys.setswitchinterval(0.001)
    settings = load_settings(config, **overrides)
    store = open_store(settings.database)
    if store.count_tokens() == 0:
        # The Jupyter convention: a fresh store gets an admin token, shown once as a login URL.
        token = store.create_token(Identity(user="admin", role="admin"))
        print("signoff: a new hub. Open the inbox with this URL (it logs you in as admin;"
              " it is shown only this once):", flush=True)
        print(f"    {settings.base_url}/?token={token}", flush=True)
    print(f"signoff: serving on {settings.base_url} (database {settings.database})",
          file=sys.stderr, flush=True)
    _raise_open_files()
    uvicorn.run(create_app(settings, store), host=settings.host, port=settings.port,
                log_level="warning", access_log=False, backlog=4096, timeout_keep_alive=75,
                proxy_headers=False)  # identity is the token; no X-Forwarded-* is trusted
