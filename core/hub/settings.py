"""The hub's settings: one frozen object, read once from the environment and a TOML file.

Precedence, highest first: arguments given to :func:`load_settings` (the CLI's flags), the
environment (``SIGNOFF_<FIELD>``; nested with ``__``, e.g. ``SIGNOFF_RESUMERS__WEBHOOK__SECRET``),
the TOML file (``--config`` or ``SIGNOFF_CONFIG``), then the defaults below.

```toml
# signoff.toml
host = "0.0.0.0"
port = 8765
database = "/var/lib/signoff/signoff.db"
public_url = "https://signoff.example.com"

[resumers.webhook]
secret = "shared-with-the-receivers"
```
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .._policy import PolicyFileRule

__all__ = ["Settings", "load_settings"]

_config_file: ContextVar[Path | None] = ContextVar("signoff_config_file", default=None)


class Settings(BaseSettings):
    """Everything the hub can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="SIGNOFF_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    host: str = "127.0.0.1"
    """Address to bind."""

    port: int = Field(default=8765, ge=0, le=65535)
    """Port to bind (0 picks a free one)."""

    database: str = "signoff.db"
    """The store: a SQLite path or ``sqlite:///path``."""

    public_url: str | None = None
    """The URL reviewers reach the hub at, for links; default ``http://HOST:PORT``."""

    resumers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-resumer settings, by orchestrator name (``[resumers.webhook] secret = ...``)."""

    deciders: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Automated deciders for escalation fallbacks (``[deciders.NAME] url = ...``)."""

    default_decider: str | None = None
    """The decider a tier's ``fallback = "auto"`` means."""

    notify: dict[str, list[str]] = Field(default_factory=dict)
    """Apprise URLs by assignee (``"group:ops" = [...]``), ``"*"`` for every event."""

    policies: list[PolicyFileRule] = Field(default_factory=list)
    """The platform's policy file: rules that tighten what workflows ask (``[[policies]]``)."""

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest request body accepted; larger ones get 413."""

    sweep_interval: float = Field(default=1.0, gt=0)
    """Longest the deadline sweeper sleeps between looks at the store (seconds)."""

    delivery_backoff: float = Field(default=0.5, gt=0)
    """First retry delay of a failed delivery; doubles each time (seconds)."""

    delivery_backoff_max: float = Field(default=60.0, gt=0)
    """Longest delay between two delivery attempts (seconds)."""

    delivery_give_up_after: float = Field(default=86_400.0, gt=0)
    """A delivery still failing this long after the decision is marked failed (seconds)."""

    token_cache_seconds: float = Field(default=5.0, ge=0)
    """How long a checked token is remembered before the store is asked again."""

    secure_cookies: bool = False
    """Mark the session cookie Secure (turn on behind HTTPS)."""

    # issue 14, the hub never stalls: timeouts and bounds of outside calls, loop lag ------
    decider_timeout: float = Field(default=30.0, gt=0)
    """Longest a decider may take to answer; then the tier is spent and the event stays with
    the humans (seconds)."""

    decider_concurrency: int = Field(default=4, ge=1)
    """Calls in flight to one decider at most; the others wait their turn (in their own tasks)."""

    notify_timeout: float = Field(default=30.0, gt=0)
    """Longest one notification (every target of it) may take before it is recorded as failed
    (seconds)."""

    notify_concurrency: int = Field(default=2, ge=1)
    """Notifications being sent at once at most, each in a worker thread. More wait on slow
    remote targets in parallel; but apprise costs ~3 ms of CPU per send, and busy threads
    compete with the event loop and the sweeper for the GIL (1,000 sends at once on loopback:
    4 threads made another event's tier up to 2 s late, 2 threads 0.4 s)."""

    delivery_timeout: float = Field(default=30.0, gt=0)
    """Longest one delivery attempt may take; then it is retried with backoff (seconds)."""

    delivery_concurrency: int = Field(default=16, ge=1)
    """Delivery attempts in flight through one resumer at most."""

    loop_lag_warning: float = Field(default=0.25, gt=0)
    """Log a warning when the event loop runs this late (seconds); ``/healthz`` shows the lag."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then environment, then the TOML file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file.get() or os.environ.get("SIGNOFF_CONFIG")
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)

    @property
    def base_url(self) -> str:
        """The URL links are built from."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the settings; ``config`` names a TOML file, ``overrides`` win over everything."""
    if config is not None and not Path(config).is_file():
        raise FileNotFoundError(f"config: no such file {config}")
    token = _config_file.set(None if config is None else Path(config))
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _config_file.reset(token)
