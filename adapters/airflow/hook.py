"""The ``signoff`` connection type: where the hub is and which token to use.

An Airflow connection (``signoff_default`` unless a sensor names another) holds the hub's URL in
*host* and a workflow token in *password*::

    AIRFLOW_CONN_SIGNOFF_DEFAULT='{"conn_type": "signoff", "host": "https://signoff.example.com",
                                   "password": "..."}'

When that connection is not defined, ``SIGNOFF_URL`` and ``SIGNOFF_TOKEN`` are read instead,
as :class:`signoff.Client` does everywhere else. A host without a scheme (``host:port``, as an
``signoff://:TOKEN@host:8765`` URI gives) gets ``http``, or the ``scheme`` in the extras.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from signoff import Client
from signoff.adapters.airflow.exceptions import SignoffNotConfigured

__all__ = ["HubCredentials", "SignoffHook"]

TOKEN_ENV = "SIGNOFF_TOKEN"
URL_ENV = "SIGNOFF_URL"


@dataclass(frozen=True)
class HubCredentials:
    """The hub's base URL and token, and where they were found.

    Attributes:
        url: the hub's base URL, without a trailing slash.
        token: the API token, or ``None`` when none is configured.
        origin: ``connection 'ID'`` or ``environment``, for error messages.
        token_env: the environment variable the token came from, if it came from one.
    """

    url: str
    token: str | None
    origin: str
    token_env: str | None = None

    def __repr__(self) -> str:
        # never show the token, in logs or tracebacks
        return f"HubCredentials(url={self.url!r}, origin={self.origin!r})"


class SignoffHook(BaseHook):
    """Reads the ``signoff`` connection and gives a :class:`signoff.Client` for it.

    Args:
        signoff_conn_id: the Airflow connection to read (default ``signoff_default``).
        env_fallback: read ``SIGNOFF_URL``/``SIGNOFF_TOKEN`` when the connection is not defined.
    """

    conn_name_attr = "signoff_conn_id"
    default_conn_name = "signoff_default"
    conn_type = "signoff"
    hook_name = "signoff hub"

    def __init__(self, signoff_conn_id: str = default_conn_name, *,
                 env_fallback: bool = True) -> None:
        super().__init__()
        self.signoff_conn_id = signoff_conn_id
        self.env_fallback = env_fallback

    def credentials(self) -> HubCredentials:
        """The hub URL and token, from the connection or else the environment.

        Raises:
            SignoffNotConfigured: the connection is not defined and ``env_fallback`` is off
                (or no ``SIGNOFF_URL`` is set either); the task fails without retries.
        """
        try:
            conn = self.get_connection(self.signoff_conn_id)
        except AirflowNotFoundException:
            url = os.environ.get(URL_ENV)
            if not self.env_fallback or not url:
                raise SignoffNotConfigured(self._not_configured()) from None
            token = os.environ.get(TOKEN_ENV) or None
            return HubCredentials(url.rstrip("/"), token, "environment",
                                  TOKEN_ENV if token else None)
        extra = conn.extra_dejson if conn.extra else {}
        return HubCredentials(hub_url(conn.host, conn.port, extra.get("scheme")),
                              conn.password or None, f"connection {self.signoff_conn_id!r}")

    def _not_configured(self) -> str:
        conn_id = self.signoff_conn_id
        message = (f"no signoff hub configured: the Airflow connection {conn_id!r} is not "
                   f"defined; create it with `airflow connections add {conn_id} --conn-type "
                   f"signoff --conn-host http://HUB:8765 --conn-password WORKFLOW_TOKEN` (or "
                   f"AIRFLOW_CONN_{conn_id.upper()}='{{\"conn_type\": \"signoff\", "
                   f"\"host\": ..., \"password\": ...}}')")
        if self.env_fallback:
            message += f", or set {URL_ENV} and {TOKEN_ENV} for the task"
        return message

    def get_conn(self) -> Client:
        """A synchronous client for the hub (close it when done)."""
        creds = self.credentials()
        return Client(creds.url, creds.token)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """How the connection form looks (also described in the provider info)."""
        return {
            "hidden_fields": ["login", "schema"],
            "relabeling": {"host": "Hub URL", "password": "API token"},
            "placeholders": {"host": "https://signoff.example.com",
                             "password": "a workflow token: signoff token create --role workflow"},
        }


def hub_url(host: str | None, port: int | None, scheme: str | None = None) -> str:
    """The hub's base URL from a connection's host, port and optional scheme.

    Raises:
        ValueError: the host is empty, or the scheme is not http or https.
    """
    if not host:
        raise ValueError("the signoff connection has no host: expected the hub URL, "
                         "e.g. https://signoff.example.com")
    if "://" not in host:
        host = f"{scheme or 'http'}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the signoff connection's host must be an http(s) URL, got {host!r}")
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path}".rstrip("/")
