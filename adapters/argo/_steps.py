"""The parts of a gate that depend on how it authenticates, and its verify step.

Two ways to authenticate to the hub (``HubConnection.auth``):

- ``secret``: a workflow token kept in a Kubernetes Secret; the ``http`` register template
  sends it as a header, containers get it as ``SIGNOFF_AUTHORIZATION``.
- ``workload``: no Secret. The register and verify containers mount a projected
  service-account token with the hub's audience at :data:`TOKEN_FILE`; the register script
  sends it, the verify command reads it at every request (``SIGNOFF_TOKEN_FILE``), and the hub
  maps it to a workflow identity (``[[workload_issuers]]``, ``docs/identity.md``). Argo's
  ``http`` templates run in the Argo agent, which has no per-step projected token, so this
  mode needs the container registration.

The verify step (``<name>-verify``) runs ``signoff verify-decision`` (:mod:`.verify`) after
the suspend node: the gate succeeds only if the node holds the hub's signed decision.
"""

from __future__ import annotations

import json
from typing import Any

from signoff.adapters.argo._common import EVENT_PARAM, KEY_PARAM, ArgoExtraMissing

try:
    from hera.workflows import Container, Parameter, RetryStrategy, SecretEnv, models
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ArgoExtraMissing("hera") from exc

from signoff._evidence import Keyring

__all__ = ["TOKEN_DIR", "TOKEN_FILE", "check_auth", "register_auth", "verify_template"]

TOKEN_DIR = "/var/run/secrets/signoff"
"""Where the projected service-account token is mounted (workload identity)."""

TOKEN_FILE = f"{TOKEN_DIR}/token"
_VOLUME = "signoff-token"


def check_auth(hub: Any) -> None:
    """Check a ``HubConnection``'s authentication and verify fields; pinned keys become the
    compact JSON text the verify step is given.

    Raises:
        ValueError: naming the field, what was expected and what came.
    """
    if hub.auth not in ("secret", "workload"):
        raise ValueError(f"auth: expected 'secret' or 'workload', got {hub.auth!r}")
    if hub.auth == "workload" and hub.registration != "container":
        raise ValueError("registration: auth='workload' needs 'container' (an http template "
                         "runs in Argo's agent, which cannot present a pod's projected token), "
                         f"got {hub.registration!r}")
    if not isinstance(hub.audience, str) or not 0 < len(hub.audience) <= 200:
        raise ValueError(f"audience: expected 1 to 200 characters, got {hub.audience!r}")
    if not isinstance(hub.token_expiration, int) or not 600 <= hub.token_expiration <= 86400:
        raise ValueError(f"token_expiration: expected seconds from 600 (Kubernetes' minimum) "
                         f"to 86400, got {hub.token_expiration!r}")
    if hub.keys is not None:
        keys = hub.keys
        try:
            loaded = json.loads(keys) if isinstance(keys, str) else dict(keys)
            Keyring.from_jwks(loaded)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"keys: expected the hub's public keys as `signoff keys` prints "
                             f"them, got {str(keys)[:80]!r} ({exc})") from None
        object.__setattr__(hub, "keys", json.dumps(loaded, separators=(",", ":")))


def _token_volume(hub: Any) -> dict[str, Any]:
    """The projected token's volume and mount, for a container of the gate."""
    projection = models.ServiceAccountTokenProjection(
        audience=hub.audience, expiration_seconds=hub.token_expiration, path="token")
    return {
        "volumes": [models.Volume(name=_VOLUME, projected=models.ProjectedVolumeSource(
            sources=[models.VolumeProjection(service_account_token=projection)]))],
        "volume_mounts": [models.VolumeMount(name=_VOLUME, mount_path=TOKEN_DIR,
                                             read_only=True)],
    }


def register_auth(hub: Any) -> tuple[str, dict[str, Any]]:
    """The container register script's lines that set ``AUTHORIZATION``, and the template's
    env or volumes that feed them.
    """
    if hub.auth == "workload":
        return f'AUTHORIZATION="Bearer $(cat {TOKEN_FILE})"\n', _token_volume(hub)
    return 'AUTHORIZATION="${SIGNOFF_AUTHORIZATION}"\n', {"env": [_secret_env(hub)]}


def _secret_env(hub: Any) -> SecretEnv:
    return SecretEnv(name="SIGNOFF_AUTHORIZATION", secret_name=hub.token_secret,
                     secret_key=hub.token_key)


def verify_template(name: str, hub: Any, default: str) -> Container:
    """``<name>-verify``: ``signoff verify-decision`` on the suspend node's outputs."""
    # ``--name=value``, one argument each: a value set by whoever set the node can never be
    # read as another option
    args = [f"--hub={hub.url}", f"--event={{{{inputs.parameters.{EVENT_PARAM}}}}}",
            f"--key={{{{inputs.parameters.{KEY_PARAM}}}}}",
            "--value={{inputs.parameters.value}}", "--outcome={{inputs.parameters.outcome}}",
            f"--default={default}"]
    if hub.keys is not None:
        args.append(f"--keys={hub.keys}")
    if hub.auth == "workload":
        auth: dict[str, Any] = {"env": [models.EnvVar(name="SIGNOFF_TOKEN_FILE",
                                                      value=TOKEN_FILE)], **_token_volume(hub)}
    else:
        auth = {"env": [_secret_env(hub)]}
    # a refusal is a failure (exit 1), never retried; only an error of the pod itself is
    return Container(
        name=f"{name}-verify",
        inputs=[Parameter(name=EVENT_PARAM), Parameter(name=KEY_PARAM),
                Parameter(name="value"), Parameter(name="outcome")],
        image=hub.verify_image, command=["signoff", "verify-decision"], args=args,
        retry_strategy=RetryStrategy(limit=2, retry_policy="OnError"), **auth)
