"""Issue 23, workload identity through a real ``signoff serve``: a workflow authenticates with
a JWT shaped like a Kubernetes projected service-account token, signed by the test provider
process (:mod:`.provider`) acting as the cluster's issuer, and is refused for any other
issuer, audience, an expired token, a bad signature or a subject no rule maps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff.testing import HubProcess, until

from ..conftest import hub_process
from .conftest import Provider


def _issuers(provider: Provider) -> list[dict[str, Any]]:
    return [{"issuer": provider.issuer, "audience": "signoff", "jwks_min_refresh": 0,
             "rules": [{"match": {"kubernetes.io.namespace": "ml",
                                  "kubernetes.io.serviceaccount.name": "*"},
                        "workflow": "{kubernetes.io.namespace}/"
                                    "{kubernetes.io.serviceaccount.name}"}]}]


@pytest.fixture
def workload_hub(request: pytest.FixtureRequest, tmp_path: Path,
                 provider: Provider) -> Iterator[HubProcess]:
    env = {"SIGNOFF_WORKLOAD_ISSUERS": json.dumps(_issuers(provider)),
           "SIGNOFF_EGRESS_ALLOW_PRIVATE": json.dumps(["127.0.0.1/32"]),
           "SIGNOFF_LOG_FORMAT": "text"}
    with hub_process(request, tmp_path, env) as process:
        yield process


def _service_account(provider: Provider, *, namespace: str = "ml", name: str = "trainer",
                     forged: bool = False, **changes: Any) -> str:
    """A token shaped like a projected service-account token of namespace/name; a change to
    ``None`` leaves that claim out.
    """
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": provider.issuer, "aud": ["signoff"], "iat": now, "nbf": now, "exp": now + 600,
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "kubernetes.io": {"namespace": namespace, "pod": {"name": f"{name}-7d9f", "uid": "p1"},
                          "serviceaccount": {"name": name, "uid": "s1"}}}
    claims = {k: v for k, v in {**claims, **changes}.items() if v is not None}
    token: str = provider.control("sign", {"claims": claims, "forged": forged})["token"]
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_workload_token_of_the_right_issuer_and_audience_is_a_workflow(
        workload_hub: HubProcess, provider: Provider) -> None:
    token = _service_account(provider)
    me = httpx.get(f"{workload_hub.url}/api/v1/me", headers=_bearer(token))
    assert me.json() == {"user": "ml/trainer", "groups": [], "role": "workflow"}
    made = httpx.post(f"{workload_hub.url}/api/v1/events", headers=_bearer(token),
                      json={"name": "retrain", "prompt": "Promote the retrained model?"})
    assert made.status_code == 201, made.text
    event = made.json()
    assert event["requested_by"] == "ml/trainer"
    # it waits on its own event; another service account of the namespace may not read it
    assert httpx.get(f"{workload_hub.url}/api/v1/events/{event['id']}",
                     headers=_bearer(token)).status_code == 200
    other = _service_account(provider, name="scorer")
    assert httpx.get(f"{workload_hub.url}/api/v1/events/{event['id']}",
                     headers=_bearer(other)).status_code in (403, 404)
    # a key rotation at the issuer: the next token names a new kid, the hub reads the keys again
    provider.control("rotate")
    rotated = _service_account(provider)
    assert httpx.get(f"{workload_hub.url}/api/v1/me",
                     headers=_bearer(rotated)).json()["user"] == "ml/trainer"


@pytest.mark.parametrize(("spoil", "reason"), [
    ({"aud": ["another-app"]}, "aud"),
    ({"iss": "https://issuer.elsewhere.example"}, "not a configured workload issuer"),
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200,
      "nbf": int(time.time()) - 7200}, "expired"),
    ({"forged": True}, "signature does not check out"),
    ({"namespace": "web"}, "no rule of issuer"),
    ({"exp": None}, "exp"),
])
def test_a_workload_token_is_refused_otherwise(workload_hub: HubProcess, provider: Provider,
                                               spoil: dict[str, Any], reason: str) -> None:
    token = _service_account(provider, **spoil)
    refused = httpx.post(f"{workload_hub.url}/api/v1/events", headers=_bearer(token),
                         json={"name": "retrain", "prompt": "Promote?"})
    assert refused.status_code == 401, refused.text
    assert reason in refused.json()["error"]["message"]
    listed = httpx.get(f"{workload_hub.url}/api/v1/events", headers=workload_hub.headers())
    assert listed.json()["events"] == []
    until(lambda: "workload token refused" in workload_hub.log_path.read_text(), timeout=5,
          what="the refusal in the log")


def test_the_client_reads_a_rotated_token_file_at_every_request(
        workload_hub: HubProcess, provider: Provider, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from signoff import Client, SignoffError

    mounted = tmp_path / "token"  # what a projected volume holds; the kubelet rewrites it
    mounted.write_text(_service_account(provider) + "\n")
    monkeypatch.delenv("SIGNOFF_TOKEN", raising=False)
    monkeypatch.setenv("SIGNOFF_TOKEN_FILE", str(mounted))
    with Client(workload_hub.url, retry_for=0) as client:
        event = client.create(name="retrain", prompt="Promote the retrained model?")
        assert event.requested_by == "ml/trainer"
        mounted.write_text(_service_account(provider))  # a fresh token, same workload
        assert client.get(event.id).id == event.id
        mounted.write_text(_service_account(provider, namespace="web"))  # unmapped
        with pytest.raises(SignoffError, match="no rule of issuer"):
            client.get(event.id)
        mounted.unlink()
        with pytest.raises(SignoffError, match="SIGNOFF_TOKEN_FILE"):
            client.get(event.id)
