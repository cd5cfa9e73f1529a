"""The settings of one Airflow deployment the Airflow HITL bridge watches (``[airflow_hitl.NAME]``).

```toml
[airflow_hitl.prod]
url = "https://airflow.example.com"      # the api-server; must be allowed by egress_allow
username = "signoff"                     # an Airflow user that may answer HITL actions
password_file = "/run/secrets/airflow-signoff-password"
poll_interval = 5
assignees = ["group:data-owners"]        # for actions that name no assigned_users
```

Credentials never come from the command line: a password (``password`` from the TOML file or
``SIGNOFF_AIRFLOW_HITL__PROD__PASSWORD``, or ``password_file``) is exchanged for a JWT at
``POST /auth/token``, again when Airflow answers 401; or a ready token (``token``, or
``token_file``, read again at every login so a rotated file is picked up).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, model_validator

from ..._policy import Policy

__all__ = ["AirflowDeployment", "DEPLOYMENT_NAME"]

DEPLOYMENT_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"
"""What a deployment's name (the key under ``[airflow_hitl]``) may be."""

_Assignee = Annotated[str, StringConstraints(pattern=r"^(group:)?[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")]


class AirflowDeployment(BaseModel):
    """One Airflow 3.3+ deployment whose pending HITL actions show in the inbox."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$", max_length=500)
    """The Airflow api-server (REST API v2 under ``/api/v2``); it must pass the hub's
    ``egress_allow`` (and ``egress_allow_private`` for a private address)."""

    ui_url: str | None = Field(default=None, pattern=r"^https?://[^\s?#]+$", max_length=500)
    """Where reviewers open Airflow's UI, for the link back to each task (default ``url``)."""

    username: str | None = Field(default=None, min_length=1, max_length=200)
    """The Airflow user the bridge logs in and answers as (with ``password`` or
    ``password_file``). With assigned users on an action, Airflow lets only them answer: name
    this user among them, or answers for that action fail with Airflow's 403."""

    password: SecretStr | None = None
    """That user's password (TOML file or environment only)."""

    password_file: Path | None = None
    """A file holding that user's password, read at each login."""

    token: SecretStr | None = None
    """A ready Airflow JWT, instead of a user and password (TOML file or environment only)."""

    token_file: Path | None = None
    """A file holding a ready Airflow JWT, read again whenever Airflow answers 401."""

    poll_interval: float = Field(default=5.0, ge=0.2, le=3600)
    """Seconds between two looks at Airflow's pending actions (an answer given in signoff is
    sent at once; this is how soon a new action, or one answered in Airflow, is seen)."""

    timeout: float = Field(default=10.0, gt=0, le=300)
    """Longest one call to Airflow may take (seconds)."""

    concurrency: int = Field(default=4, ge=1, le=64)
    """Calls in flight to this deployment at most (polling and answering together)."""

    settle_seconds: float = Field(default=10.0, ge=0, le=20)
    """An answer is sent no sooner than this long after the event was created (which is after
    the task parked). Airflow 3.3.2's scheduler fails a task answered before it has processed
    the exit of the worker that parked it ("finished with state success, but the task
    instance's state attribute is queued"): 1.2 s after the park here, 6.1 s with the machine
    loaded. An answer given later waits for nothing; a policy's instant decision waits it out
    (holding one of the hub's ``delivery_concurrency`` places meanwhile)."""

    max_actions: int = Field(default=500, ge=1, le=10_000)
    """Pending actions read per look at most (in pages of 100); more wait for a later look."""

    dag_id_prefix: str | None = Field(default=None, min_length=1, max_length=250)
    """Only the actions of DAGs whose id starts with this."""

    assignees: list[_Assignee] = Field(default_factory=list, max_length=100)
    """Assignees of the actions that name no ``assigned_users`` (empty: anyone may answer)."""

    users: dict[str, _Assignee] = Field(default_factory=dict, max_length=10_000)
    """Airflow user id to signoff assignee, for ``assigned_users`` (``{"7" = "alice"}``);
    an id not listed is assigned by the user's Airflow name."""

    labels: dict[str, str] = Field(default_factory=dict, max_length=20)
    """Labels added to every event of this deployment, for the policy file's rules (beside
    ``airflow_deployment``, ``airflow_dag`` and ``airflow_task``, always set)."""

    policy: Policy | None = None
    """The policy of every event of this deployment (quorum, escalation, routing); the hub's
    policy file tightens it as for any event. A quorum above 1 applies to approvals only."""

    @model_validator(mode="after")
    def _one_credential(self) -> AirflowDeployment:
        by_password = self.password is not None or self.password_file is not None
        by_token = self.token is not None or self.token_file is not None
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if self.token is not None and self.token_file is not None:
            raise ValueError("give token or token_file, not both")
        if by_password == by_token:
            raise ValueError("expected one credential: username with password or "
                             "password_file, or token or token_file")
        if by_password and self.username is None:
            raise ValueError("a password needs the username it belongs to")
        return self

    @property
    def ui(self) -> str:
        """The UI's base URL, without a trailing slash."""
        return (self.ui_url or self.url).rstrip("/")
