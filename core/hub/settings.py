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
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from .._channels import channel_kind, check_claim
from .._egress import EgressGuard
from .._errors import HubError, SignoffError
from .._policy import CHANNEL_NAME, Impact, PolicyFileRule, RelayPolicy
from .bridges.airflow_config import DEPLOYMENT_NAME, AirflowDeployment
from .identity_settings import OidcSettings, TrustedProxySettings, WorkloadIssuer

__all__ = ["Settings", "SlackSettings", "load_settings"]

_HIGH_IMPACTS: list[Impact] = ["high", "critical"]
_GroupName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")]
_Member = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")]

_config_file: ContextVar[Path | None] = ContextVar("signoff_config_file", default=None)


class SlackSettings(BaseModel):
    """A Slack app that posts approvals with buttons and sends the clicks back (``[slack]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bot_token: SecretStr
    """The app's bot token (``xoxb-...``; scopes ``chat:write``, and ``users:read.email`` for
    ``email_lookup``)."""

    signing_secret: SecretStr
    """The app's signing secret: every interaction request must carry its signature."""

    channel: str = Field(pattern=r"^[A-Za-z0-9_-]{1,80}$")
    """The channel (its id, e.g. ``C0123ABCD``) approvals are posted in."""

    api_url: str = "https://slack.com/api"
    """Slack's Web API; it must be allowed by ``egress_allow``."""

    users: dict[str, str] = Field(default_factory=dict)
    """Slack user id to signoff user name (``U0123ABCD = "alice"``)."""

    email_lookup: bool = False
    """For a Slack user not in ``users``: ask Slack for their e-mail address, and answer as the
    signoff user of that name (a user with an active token named like ``alice@example.com``)."""

    labels: dict[str, str] = Field(default_factory=dict)
    """Post only approvals carrying these labels (``{team = "ml"}``); empty: every approval."""

    max_age: int = Field(default=300, ge=10, le=300)
    """Oldest a signed request may be (seconds; Slack's documented limit is five minutes)."""


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
    """The store (``SIGNOFF_DATABASE`` or ``SIGNOFF_DB``): a SQLite path or ``sqlite:///path``,
    or a PostgreSQL URL ``postgresql://user@host:port/database`` (the ``postgres`` extra; its
    password in ``PGPASSWORD`` or a ``PGPASSFILE``, or the whole URL in the environment or this
    file, never on a command line: ``--db`` refuses one; the audit key with ``audit_key`` or
    ``audit_key_file``)."""

    database_file: Path | None = None
    """A file holding the database URL, password and all (``SIGNOFF_DATABASE_FILE``, e.g. a
    mounted Kubernetes or Docker secret), instead of ``database``: its text, stripped, one line
    of at most 4 KiB. Given with ``database`` (or ``--db``, ``SIGNOFF_DB``), it is an error."""

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

    # part 1 (keys+audit): the audit log's key, kept out of the database -----------------
    audit_key: SecretStr | None = None
    """The audit chain's HMAC key itself, at least 16 characters (``SIGNOFF_AUDIT_KEY``, e.g.
    from a Kubernetes Secret). With neither this nor ``audit_key_file`` the hub makes a random
    key in ``<database>.audit-key`` (mode 0600) on first start and logs where."""

    audit_key_file: Path | None = None
    """A file holding the audit key (``SIGNOFF_AUDIT_KEY_FILE``); its text, stripped. Given with
    ``audit_key``, the two must agree."""

    # issue 22 (evidence): the keys that sign decisions, kept out of the database ----------
    signing_keys: SecretStr | None = None
    """The decision-signing keyring itself (``SIGNOFF_SIGNING_KEYS``, e.g. from a Kubernetes
    Secret): lines ``private <hex>`` / ``public <hex>``, oldest first, the newest private key
    signs (:mod:`signoff.hub.signing`). With neither this nor ``signing_keys_file`` the hub makes
    ``<database>.signing-keys`` (mode 0600) beside a SQLite database on first start."""

    signing_keys_file: Path | None = None
    """A file holding the signing keyring (``SIGNOFF_SIGNING_KEYS_FILE``); ``signoff keys
    rotate`` rotates it."""

    # -- part 3 (channels): reserved channels bound to tokens; unverified relayed answers --
    channel_bindings: dict[str, list[str]] = Field(default_factory=dict)
    """Reserved channels bound to users, e.g. ``"decider:risk" = ["risk-bot"]``: those users'
    tokens may claim the channel, and answer only through it (see :mod:`signoff._channels`).
    Keys are ``decider:NAME`` or an engine's name; ``api``, ``cli``, ``web`` and the hub's own
    channels cannot be bound."""

    relays: RelayPolicy = Field(default_factory=RelayPolicy)
    """What unverified answers relayed from an engine's own UI or CLI may do (``[relays]``):
    by default they do not count towards a quorum above one, are refused where the policy
    forbids self-approval, and are refused for high and critical impact."""

    @field_validator("channel_bindings")
    @classmethod
    def _bindable(cls, bindings: dict[str, list[str]]) -> dict[str, list[str]]:
        for channel in bindings:
            try:
                check_claim(channel)  # the form, and never web or a hub channel
            except HubError as exc:
                raise ValueError(f"channel_bindings: {exc}") from None
            if channel_kind(channel) not in ("decider", "engine"):
                raise ValueError(f"channel_bindings: {channel!r} cannot be bound; expected "
                                 "decider:NAME or an engine's name")
        return bindings

    def bound_channels(self, user: str) -> tuple[str, ...]:
        """The reserved channels ``user``'s tokens are bound to, in the settings' order."""
        return tuple(c for c, users in self.channel_bindings.items() if user in users)

    # --- limits and pages (issue 13, part 6) ---
    create_rate: float = Field(default=50.0, ge=0)
    """Events one token may create per second, sustained; 0 lifts the limit."""

    create_burst: int = Field(default=200, ge=1)
    """Creations one token may make at once before ``create_rate`` applies."""

    answer_rate: float = Field(default=50.0, ge=0)
    """Answers one token may give per second, sustained (API and web); 0 lifts the limit."""

    answer_burst: int = Field(default=200, ge=1)
    """Answers one token may give at once before ``answer_rate`` applies."""

    pending_per_token: int = Field(default=10_000, ge=0)
    """Pending events one token may have at a time; more creations get 429. 0 lifts it."""

    long_polls_per_token: int = Field(default=100, ge=0)
    """Decision long-polls one token may hold parked at once; 0 lifts the limit."""

    api_docs: bool = False
    """Serve the interactive API docs at ``/docs`` (Swagger UI from the ``swagger-ui-bundle``
    package, never a CDN; needs ``pip install 'signoff[docs]'``). ``/openapi.json`` is always
    served."""

    # --- issue 13 part 2: tokens, login links, sessions -----------------------------------
    login_link_seconds: float = Field(default=900.0, gt=0, le=7 * 86_400)
    """How long a one-time login link stays usable (at most 7 days)."""

    session_seconds: float = Field(default=30 * 86_400.0, gt=0, le=365 * 86_400)
    """How long a browser session lasts after sign-in (at most 365 days)."""

    token_touch_seconds: float = Field(default=60.0, ge=1, le=86_400)
    """A token's last-used time is written at most this often per token and hub process
    (seconds), off the request path."""

    # issue 15 (a newcomer's first hour) ------------------------------------------------------
    instance: str | None = Field(default=None, max_length=200)
    """A label ``/healthz`` returns as ``instance``, so whoever started this hub (the
    quickstart, ``signoff.testing.HubProcess``) can tell it is the one answering on its port."""

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
        """Arguments, then environment (``SIGNOFF_DB`` too, the short name of
        ``SIGNOFF_DATABASE``), then the TOML file.
        """
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        short = os.environ.get("SIGNOFF_DB")
        if short:
            long = os.environ.get("SIGNOFF_DATABASE")
            if long and long != short:
                raise SignoffError("settings: database: SIGNOFF_DB and SIGNOFF_DATABASE name "
                                   "two different databases; set one of them")
            sources.append(InitSettingsSource(settings_cls, init_kwargs={"database": short}))
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

    # -- part 4, egress: where the hub may call out ------------------------------------------
    egress_allow: list[str] = Field(default_factory=list)
    """Where webhook resumers and webhook deciders may call: ``scheme://host[:port]`` entries,
    e.g. ``["https://hooks.example.com", "https://*.corp.example", "http://10.1.2.3:8080"]``.
    ``host`` is a name, an IP, ``*.suffix`` or ``*`` (any host); no port means the scheme's
    default, ``:*`` any port. Empty (the default) allows no call: egress is default-deny. A
    webhook URL outside it is refused at creation (422) and at delivery."""

    egress_allow_private: list[str] = Field(default_factory=list)
    """Non-public networks the hub may connect to, in CIDR form (``["127.0.0.1/32"]``).
    Loopback, private, link-local, metadata, unspecified and multicast addresses are refused
    otherwise, checked on the resolved address of every connection (DNS rebinding)."""

    notify_channels: dict[str, list[str]] = Field(default_factory=dict)
    """Named notification channels: apprise URLs by name (``[notify_channels] ops =
    ["slack://..."]``). Policies, tiers and the policy file name channels; they never carry
    URLs."""

    max_fanout: int = Field(default=10, ge=1, le=1000)
    """Most outbound targets one event may name: its webhook plus the distinct notification
    channels of its policy and tiers. More is refused at creation (422)."""

    # -- issue 16, deployment: readiness for a load balancer ---------------------------------
    ready_timeout: float = Field(default=2.0, gt=0, le=60)
    """Seconds ``/readyz`` waits for the store's answer to a trivial query before it says 503
    (keep it under the readiness probe's own ``timeoutSeconds``)."""

    database_timeout: float = Field(default=15.0, gt=0, le=3600)
    """Seconds a request waits for a PostgreSQL database before it answers 503 with
    ``Retry-After``: a server that stops answering without closing its connections (a hung
    host, a frozen process) must not hold a request, nor a replica's shutdown, for ever."""

    ready_retry_after: int = Field(default=5, ge=1, le=3600)
    """The ``Retry-After`` seconds ``/readyz`` sends with its 503."""

    # issue 18: metrics, structured logs ----------------------------------------------------
    metrics: bool = True
    """Serve Prometheus metrics (``GET /metrics``) and keep the counters behind them."""

    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Serve ``/metrics`` on this port of ``host`` instead of the hub's own (e.g. only to the
    cluster's network). The token below applies on either port."""

    metrics_token: SecretStr | None = None
    """When set, ``/metrics`` needs ``Authorization: Bearer <this>`` (Prometheus'
    ``authorization`` scrape option)."""

    metrics_per_reviewer: bool = False
    """Label reviewer throughput by user name (``signoff_reviewer_decisions_total``). Off by
    default: user names in a metrics system are personal data with their own retention."""

    metrics_max_names: int = Field(default=200, ge=1, le=10_000)
    """Distinct event names a replica labels metrics with; later names count as ``other``."""

    sla: dict[str, float] = Field(
        default_factory=lambda: {"urgent": 900.0, "high": 3600.0, "normal": 14400.0,
                                 "low": 86400.0})
    """Decision SLA in seconds by priority (an event's own deadline wins where it has one):
    decided later, or pending longer, counts as an SLA breach."""

    metrics_age_buckets: list[float] = Field(
        default_factory=lambda: [60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0],
        max_length=20)
    """Upper bounds (seconds) of the pending queue's age buckets."""

    metrics_audit_window: float = Field(default=86400.0, gt=0, le=31_536_000)
    """Audit completeness looks at the decisions of this many seconds back."""

    log_format: Literal["auto", "json", "text", "off"] = "auto"
    """Request and state-change logs on stderr: ``json`` (one object a line), ``text``,
    ``auto`` (text on a terminal, JSON otherwise) or ``off`` (warnings and errors only)."""

    @field_validator("sla")
    @classmethod
    def _sla_priorities(cls, sla: dict[str, float]) -> dict[str, float]:
        for name, seconds in sla.items():
            if name not in ("low", "normal", "high", "urgent"):
                raise ValueError(f"sla: {name!r} is not a priority (low, normal, high, urgent)")
            if not 0 < seconds <= 31_536_000:
                raise ValueError(f"sla.{name}: expected seconds in (0, 31536000], got {seconds}")
        return sla

    @field_validator("metrics_age_buckets")
    @classmethod
    def _ascending(cls, ages: list[float]) -> list[float]:
        if any(not prev < cur for prev, cur in zip([0.0, *ages], ages, strict=False)):
            raise ValueError("metrics_age_buckets: expected ascending positive seconds")
        return ages

    # --- issue 19: the reviewer's inbox ---
    live_recheck_seconds: float = Field(default=5.0, ge=0.2, le=300)
    """The live inbox (``/live``, Server-Sent Events) re-reads a reviewer's pending events when
    this hub creates or decides one, and at least this often, so changes made through another
    hub replica arrive too."""

    live_stream_seconds: float = Field(default=300.0, ge=1, le=3600)
    """One live-inbox stream ends after this long; the browser reconnects by itself (and the
    stream is counted against ``long_polls_per_token`` while open)."""

    batch_refused_impacts: list[Impact] = Field(default_factory=lambda: _HIGH_IMPACTS.copy())
    """Events of these impact levels are never decided in a batch from the inbox (each needs
    its own page); the batch result lists them as refused. ``[]`` allows batches for all."""

    batch_max: int = Field(default=50, ge=1, le=500)
    """Most events one batch decision from the inbox may hold (one inbox page is 50)."""

    sensitive_fields: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = \
        Field(default_factory=list, max_length=100)
    """Context paths masked in every event, as shell-style patterns over dotted paths
    (``*.ssn``, ``*.email``, ``customer.*``; a leading ``*.`` matches at the top level too),
    besides the paths each workflow marks in its event's ``sensitive`` (:mod:`.masking`)."""

    reveal_allowed: list[Annotated[str, StringConstraints(
        pattern=r"^(group:)?[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")]] = Field(
        default_factory=list, max_length=100)
    """Who may reveal masked context fields (user names and ``group:NAME``; admins are not
    included unless named). Every reveal is a POST and an audit entry."""

    # issue 23, identity: SSO for reviewers, a trusted proxy, workload JWTs for workflows --
    oidc: OidcSettings | None = None
    """OpenID Connect sign-in for the inbox (``[oidc]``: issuer, client, claims); see
    :class:`~.identity_settings.OidcSettings` and ``docs/identity.md``. API tokens still work."""

    trusted_proxy: TrustedProxySettings | None = None
    """User and groups from a reverse proxy's headers, honoured only from its addresses
    (``[trusted_proxy]``)."""

    workload_issuers: list[WorkloadIssuer] = Field(default_factory=list, max_length=20)
    """Issuers whose JWTs workflows may present as their bearer token
    (``[[workload_issuers]]``: issuer, audience, rules mapping claims to a workflow name)."""

    # --- issue 21: reviewers at work -------------------------------------------------------
    answer_link_seconds: float = Field(default=86_400.0, gt=0, le=7 * 86_400)
    """How long the one-click answer links a notification carries stay usable (at most 7 days;
    a link is refused anyway once its event is decided)."""

    link_key: SecretStr | None = None
    """The key answer links are signed with, at least 16 characters (``SIGNOFF_LINK_KEY``).
    Without it, a key derived from the audit key: changing either voids the links out."""

    reminders: list[float] = Field(default_factory=list, max_length=10)
    """When to remind the assignees who have not answered, as fractions of an event's time
    (its deadline, else its priority's ``sla``), e.g. ``[0.5, 0.9]``; ``[]`` sends none."""

    slack: SlackSettings | None = None
    """Slack interactive approvals (``[slack]``): off unless set."""

    group_members: dict[_GroupName, Annotated[list[_Member], Field(max_length=500)]] = Field(
        default_factory=dict, max_length=200)
    """Who a balanced event of a group may be given to (``[group_members] ops = ["alice",
    "bob", "carol"]``), in turn order; see :mod:`.balance`. Only this list is used to choose
    (the hub cannot know the SSO members that never signed in); the chosen member becomes an
    assignee, and everyone's rights otherwise still come from their tokens or sign-in."""
    # --- issue 20: Airflow 3.3's own HITL actions in the inbox ---------------------------------
    airflow_hitl: dict[Annotated[str, StringConstraints(pattern=DEPLOYMENT_NAME)],
                       AirflowDeployment] = Field(default_factory=dict, max_length=50)
    """Airflow deployments whose pending ``HITLOperator``/``ApprovalOperator`` actions show as
    events and are answered through Airflow's REST API (``[airflow_hitl.NAME]``, see
    :mod:`signoff.hub.bridges.airflow_config`); none by default."""

    @field_validator("link_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value().strip()) < 16:
            raise ValueError("link_key: at least 16 characters expected")
        return key

    @field_validator("group_members")
    @classmethod
    def _distinct_members(cls, groups: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, members in groups.items():
            if len(set(members)) != len(members):
                raise ValueError(f"group_members.{name}: expected distinct user names, got "
                                 f"{members}")
        return groups

    @field_validator("reminders")
    @classmethod
    def _fractions(cls, offsets: list[float]) -> list[float]:
        if any(not 0 < o < 1 for o in offsets) or offsets != sorted(set(offsets)):
            raise ValueError(f"reminders: expected ascending fractions between 0 and 1 "
                             f"(e.g. [0.5, 0.9]), got {offsets}")
        return offsets

    @field_validator("egress_allow", "egress_allow_private")
    @classmethod
    def _egress_parses(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if info.field_name == "egress_allow":
            EgressGuard(allow=value)
        else:
            EgressGuard(allow_private=value)
        return value

    @field_validator("notify_channels")
    @classmethod
    def _channel_names(cls, channels: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in channels:
            if not CHANNEL_NAME.fullmatch(name):
                raise ValueError(f"notify_channels: {name!r} is not a channel name (letters, "
                                 "digits, _ . - ; 1-64, starting with a letter or digit)")
        return channels

    @field_validator("database")
    @classmethod
    def _database_stripped(cls, value: str) -> str:
        """The URL without the newline or spaces an environment variable or a secret often
        carries (a database name never ends in one).
        """
        return value.strip()

    @model_validator(mode="before")
    @classmethod
    def _database_from_file(cls, data: Any) -> Any:
        """``database_file``: the URL it holds becomes ``database`` before the fields are
        checked (a value of the wrong type is left for the field's own check).
        """
        named = data.get("database_file") if isinstance(data, dict) else None
        if not isinstance(named, (str, Path)):
            return data
        if "database" in data:
            raise SignoffError("settings: database_file: expected it alone, but the database is "
                               "also given (database, --db, SIGNOFF_DATABASE or SIGNOFF_DB); "
                               "set one of them")
        return {**data, "database": _read_database_file(Path(named))}

    @model_validator(mode="after")
    def _policy_file_channels_exist(self) -> Settings:
        for index, rule in enumerate(self.policies):
            for name in rule.notify:
                if name not in self.notify_channels:
                    raise ValueError(f"policies.{index}.notify: no notification channel "
                                     f"{name!r} in notify_channels")
        return self

    def egress_guard(self) -> EgressGuard:
        """The guard every outbound call of the hub goes through, built from these settings."""
        return EgressGuard(self.egress_allow, self.egress_allow_private)




_DATABASE_FILE_MAX = 4096


def _read_database_file(path: Path) -> str:
    """The database URL a file holds (never echoed: it may carry the password)."""
    def refused(expected: str, why: str) -> SignoffError:
        return SignoffError(f"settings: database_file: expected {expected}, got {path} ({why})")

    if not path.is_file():  # nor a FIFO or a device, which a read could block on or not end
        raise refused("a file holding the database URL",
                      "not a regular file" if path.exists() else "no such file")
    try:
        with path.open("rb") as handle:
            raw = handle.read(_DATABASE_FILE_MAX + 1)  # bounded, whatever the file claims
    except OSError as exc:
        raise refused("a readable file holding the database URL", type(exc).__name__) from None
    if len(raw) > _DATABASE_FILE_MAX:
        raise refused(f"a database URL of at most {_DATABASE_FILE_MAX} bytes", "longer")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise refused("a UTF-8 file holding the database URL", "not UTF-8") from None
    if not text or any(c in text for c in "\r\n\0"):
        raise refused("one line holding the database URL",
                      "empty" if not text else "several lines or a NUL")
    return text


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the settings; ``config`` names a TOML file, ``overrides`` win over everything."""
    if config is not None and not Path(config).is_file():
        raise FileNotFoundError(f"config: no such file {config}")
    token = _config_file.set(None if config is None else Path(config))
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:  # a complex value in the environment that is not JSON
        cause = exc.__cause__
        why = f": {cause}" if cause is not None else ""
        raise SignoffError(f"settings: {exc}: expected JSON{why}") from None
    finally:
        _config_file.reset(token)
