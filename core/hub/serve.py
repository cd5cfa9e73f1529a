"""``signoff serve``: open the store, greet a fresh install, and run uvicorn."""

from __future__ import annotations

import resource
import sys
from typing import Any

import uvicorn

from .._rules import Identity
from ..store import AuditKeyError, token_id
from .access import login_link
from .app import create_app
from .audit_key import open_hub_store
from .settings import load_settings

__all__ = ["main"]


def _raise_open_files() -> None:
    # every parked long-poll holds a socket: allow as many as the system lets us
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(config: str | None = None, **overrides: Any) -> None:
    """Run the hub until interrupted."""
    settings = load_settings(config, **overrides)
    try:
        store, key = open_hub_store(settings)  # and checks the key against the log
    except AuditKeyError as exc:
        print(f"signoff: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    if key.created:
        print(f"signoff: made a new audit key in {key.source} (keep a copy apart from the"
              " database's backups: `signoff audit verify` needs it)", file=sys.stderr,
              flush=True)
    else:
        print(f"signoff: the audit log is keyed with {key.source}", file=sys.stderr, flush=True)
    if store.count_tokens() == 0:
        # A fresh store gets an admin token, whose secret nobody ever sees: the admin signs in
        # with a one-time link instead (the token never travels in a URL).
        token = store.create_token(Identity(user="admin", role="admin"), name="first admin",
                                   actor="hub", channel="serve")
        minutes = settings.login_link_seconds / 60
        print(f"signoff: a new hub. Open the inbox with this one-time link (it signs you in as"
              f" admin; it works once, within {minutes:g} min):", flush=True)
        print(f"    {login_link(settings, store, token_id(token))}", flush=True)
        print(f"signoff: a fresh link later: signoff token create --user admin --role admin"
              f" --login-link --db {settings.database}", file=sys.stderr, flush=True)
    print(f"signoff: serving on {settings.base_url} (database {settings.database})",
          file=sys.stderr, flush=True)
    _raise_open_files()
    uvicorn.run(create_app(settings, store), host=settings.host, port=settings.port,
                log_level="warning", access_log=False, backlog=4096, timeout_keep_alive=75,
                proxy_headers=False)  # identity is the token; no X-Forwarded-* is trusted
