"""``signoff serve``: bind the port, open the store, greet a fresh install, and run uvicorn.

The socket is bound here, before anything else happens, so a taken port is a one-line error
(and no store is created for a hub that cannot start), and "serving on" is printed only once
the hub holds its port.
"""

from __future__ import annotations

import errno
import resource
import socket
import sys
from typing import Any

import uvicorn

from .._rules import Identity
from ..store import open_store
from .app import create_app
from .settings import load_settings

__all__ = ["PortUnavailable", "bind", "main"]


class PortUnavailable(SystemExit):
    """The hub's port could not be bound; the message says which and how to pick another."""


def _raise_open_files() -> None:
    # every parked long-poll holds a socket: allow as many as the system lets us
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def bind(host: str, port: int, backlog: int = 4096) -> socket.socket:
    """A listening socket on ``host:port``; :class:`PortUnavailable` if it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what uvicorn does too
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            why = f"port {port} on {host} is already in use"
        else:
            why = f"cannot listen on {host}:{port} ({exc.strerror or exc})"
        raise PortUnavailable(
            f"signoff: {why}; choose another with --port PORT or SIGNOFF_PORT=PORT") from None
    return sock


def main(config: str | None = None, **overrides: Any) -> None:
    """Run the hub until interrupted."""
    settings = load_settings(config, **overrides)
    sock = bind(settings.host, settings.port)
    if settings.port == 0:  # the system picked one: links must carry it
        settings = settings.model_copy(update={"port": sock.getsockname()[1]})
    try:
        store = open_store(settings.database)
    except BaseException:
        sock.close()
        raise
    if store.count_tokens() == 0:
        # The Jupyter convention: a fresh store gets an admin token, shown once as a login URL.
        token = store.create_token(Identity(user="admin", role="admin"))
        print("signoff: a new hub. Open the inbox with this URL (it logs you in as admin;"
              " it is shown only this once):", flush=True)
        print(f"    {settings.base_url}/?token={token}", flush=True)
    print(f"signoff: serving on {settings.base_url} (database {settings.database})",
          file=sys.stderr, flush=True)
    _raise_open_files()
    config_ = uvicorn.Config(
        create_app(settings, store), log_level="warning", access_log=False, backlog=4096,
        timeout_keep_alive=75,
        proxy_headers=False)  # identity is the token; no X-Forwarded-* is trusted
    uvicorn.Server(config_).run(sockets=[sock])

