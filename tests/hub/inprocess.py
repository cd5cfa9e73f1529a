"""A real uvicorn server in this process, with a clock the test moves (for escalation tiers
measured in hours). Restartable on the same store file, like a real hub."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from signoff import Identity
from signoff.hub import create_app, load_settings
from signoff.store import open_store
from signoff.testing import free_port


class FakeClock:
    """The hub's clock, moved by the test."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class InProcessHub:
    """`create_app` served by uvicorn in a thread, on loopback."""

    def __init__(self, database: Path, clock: FakeClock, **settings: Any) -> None:
        self.database = str(database)
        self.clock = clock
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = load_settings(database=self.database, port=self.port,
                                      sweep_interval=0.05, **settings)
        store = open_store(self.database)
        self.admin_token = store.create_token(Identity(user="admin", role="admin"))
        store.close()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def token(self, user: str, role: str = "reviewer", groups: tuple[str, ...] = ()) -> str:
        store = open_store(self.database)
        try:
            return store.create_token(Identity(user=user, role=role, groups=groups))  # type: ignore[arg-type]
        finally:
            store.close()

    def start(self) -> InProcessHub:
        app = create_app(self.settings, clock=self.clock)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()),  # type: ignore[union-attr]
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("in-process hub did not start")

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(20)
        self.server = self.thread = None

    def settle(self, until: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Wait until the sweeper (every 0.05 s) has acted on the moved clock: ``until()``
        returns something true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = until()
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"the hub did not get there within {timeout} s")
