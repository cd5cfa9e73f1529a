"""``signoff serve``: bind the port, open the store, greet a fresh install, and run uvicorn.

The socket is bound here, before anything else happens, so a taken port is a one-line error
(and no store is created for a hub that cannot start), and "serving on" is printed only once
the hub holds its port.
"""

from __future__ import annotations

import errno
import gc
import logging
import resource
import socket
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI

from .._rules import Identity
from ..store import AuditKeyError, has_password, shown, token_id
from .access import login_link
from .app import create_app
from .audit_key import open_hub_store
from .logs import configure as configure_logging
from .settings import load_settings
from .signing import SigningKeyError, hub_signing_keys

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


def _log_to_stderr() -> None:
    # the hub says on stderr when an integration is ready, slow, failing or lagging
    logger = logging.getLogger("signoff")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _database_argument(database: str, database_file: object) -> str:
    """How a command run later names this hub's database: ``--db`` when the URL may be shown
    and typed (``--db`` refuses a password, and conflicts with a ``database_file``), else the
    hub's own settings.
    """
    if database_file is not None or has_password(database):
        return " (run where this hub's database settings are: SIGNOFF_DB or SIGNOFF_DATABASE_FILE)"
    return f" --db {database}"


def main(config: str | None = None, **overrides: Any) -> None:
    """Run the hub until interrupted."""
    _log_to_stderr()
    # Worker threads (apprise sends, store reads, SDK calls) hold the GIL for up to the switch
    # interval each time the event loop wants it back: 5 ms by default, 1 ms here, so a busy
    # thread pool adds little to an answer's latency.
    sys.setswitchinterval(0.001)
    settings = load_settings(config, **overrides)
    sock = bind(settings.host, settings.port)
    if settings.port == 0:  # the system picked one: links must carry it
        settings = settings.model_copy(update={"port": sock.getsockname()[1]})
    try:
        store, key = open_hub_store(settings)  # and checks the key against the log
        signing = hub_signing_keys(settings, create=True)
    except (AuditKeyError, SigningKeyError) as exc:
        sock.close()
        print(f"signoff: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    except BaseException:
        sock.close()
        raise
    if key.created:
        print(f"signoff: made a new audit key in {key.source} (keep a copy apart from the"
              " database's backups: `signoff audit verify` needs it)", file=sys.stderr,
              flush=True)
    else:
        print(f"signoff: the audit log is keyed with {key.source}", file=sys.stderr, flush=True)
    store.signer = signing.keyring
    made = "made a new signing keyring in" if signing.created else "decisions are signed with"
    print(f"signoff: {made} {signing.source} (key {signing.keyring.signer_kid})",
          file=sys.stderr, flush=True)
    # A fresh store gets an admin token, whose secret nobody ever sees: the admin signs in
    # with a one-time link instead (the token never travels in a URL). Of several replicas
    # starting on a new database, exactly one mints it and prints the link.
    token = store.create_first_token(Identity(user="admin", role="admin"), name="first admin")
    if token is not None:
        minutes = settings.login_link_seconds / 60
        print(f"signoff: a new hub. Open the inbox with this one-time link (it signs you in as"
              f" admin; it works once, within {minutes:g} min):", flush=True)
        print(f"    {login_link(settings, store, token_id(token))}", flush=True)
        print(f"signoff: a fresh link later: signoff token create --user admin --role admin"
              f" --login-link{_database_argument(settings.database, settings.database_file)}",
              file=sys.stderr, flush=True)
    print(f"signoff: serving on {settings.base_url} (database {shown(settings.database)})",
          file=sys.stderr, flush=True)
    _raise_open_files()
    stop_logging = configure_logging(settings)
    app = create_app(settings, store)
    config_ = uvicorn.Config(
        app, log_level="warning", access_log=False, backlog=4096,
        timeout_keep_alive=75,
        proxy_headers=False)  # identity is the token; no X-Forwarded-* is trusted
    try:
        _Server(config_, app).run(sockets=[sock])
    finally:
        stop_logging()  # every queued line written before the process ends


class _Server(uvicorn.Server):
    """uvicorn's server; once the hub has started, what it loaded is frozen for the collector,
    and when it stops, the hub's long-polls and live streams end first.
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn waits for every request in flight before it stops: a parked long-poll would
        # hold a SIGTERM for its whole wait (minutes), and Kubernetes would SIGKILL the pod
        hub = getattr(self.app.state, "hub", None)
        if hub is not None:
            hub.closing()
        await super().shutdown(sockets=sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # What is loaded by now (modules, the app, its routes and models, the store, the hub)
        # lives as long as the process: out of the collector's sight, a full collection walks
        # only what the hub makes while serving. It walked all of it before: 100-300 ms with
        # the loop stopped, measured under 1,000 escalations at once (issue 14).
        gc.collect()
        gc.freeze()
        # A request allocates some hundreds of objects (pydantic models, dicts, frames): at
        # Python's default of a young collection every 700 allocations, the collector ran
        # several times per decision. Every 20,000, it costs 8% less CPU per decision
        # (bench/hub_throughput.py, 3 runs each: 0.96-0.97 ms against 1.02-1.06 ms).
        gc.set_threshold(20_000, 50, 100)
