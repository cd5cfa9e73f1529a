"""Issue 23 for Argo: gates with no signoff Secret, authenticated by workload identity.

The register and verify steps are containers that mount a projected service-account token
(audience ``signoff``); the fake controller plays the kubelet, getting each token from the test
OpenID provider process (:mod:`tests.identity.provider`) acting as the cluster's issuer, and
the real hub checks it against that issuer's JWKS (``[[workload_issuers]]``). The fake Argo
Server holds no Secret at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from signoff.adapters.argo import HubConnection, approval, standalone_workflow, validate
from signoff.cli import main
from signoff.testing import HubProcess
from tests.adapters.scenarios import find_event
from tests.identity.conftest import Provider

from .conftest import NAMESPACE, hub_env
from .fake_argo import FakeArgoServer
from .fake_controller import FakeController
from .helpers import answer, outputs

ACCOUNT = "release-bot"


def _workload(**options: Any) -> HubConnection:
    return HubConnection(url="http://signoff.signoff.svc:8765", auth="workload",
                         registration="container", **options)


def test_workload_gate_renders_without_a_secret_and_validates() -> None:
    manifest = standalone_workflow(approval("approve", "Release?", hub=_workload()))
    validate(manifest)
    text = json.dumps(manifest)
    assert "secretKeyRef" not in text and "SIGNOFF_AUTHORIZATION" not in text
    templates = {t["name"]: t for t in manifest["spec"]["templates"]}
    for name in ("approve-register", "approve-verify"):
        (volume,) = templates[name]["volumes"]
        assert volume["projected"]["sources"] == [{"serviceAccountToken": {
            "audience": "signoff", "expirationSeconds": 3600, "path": "token"}}]
        body = templates[name].get("script") or templates[name]["container"]
        assert body["volumeMounts"] == [{"name": "signoff-token",
                                         "mountPath": "/var/run/secrets/signoff",
                                         "readOnly": True}]
    assert {"name": "SIGNOFF_TOKEN_FILE", "value": "/var/run/secrets/signoff/token"} in \
        templates["approve-verify"]["container"]["env"]
    assert "$(cat /var/run/secrets/signoff/token)" in templates["approve-register"]["script"][
        "source"]


def test_the_cli_renders_a_workload_gate_that_validates() -> None:
    runner = CliRunner()
    made = runner.invoke(main, ["argo", "render", "--name", "approve", "--auth", "workload",
                                "--registration", "container", "--audience", "signoff-prod",
                                "--workflow", "--hub-url", "http://signoff.signoff.svc:8765"],
                         catch_exceptions=False)
    assert made.exit_code == 0, made.output
    assert "serviceAccountToken" in made.output and "secretKeyRef" not in made.output
    checked = runner.invoke(main, ["argo", "validate", "-"], input=made.output)
    assert (checked.exit_code, checked.output) == (0, "Workflow approve-: valid\n")
    refused = runner.invoke(main, ["argo", "render", "--name", "approve", "--auth", "workload",
                                   "--hub-url", "http://signoff.signoff.svc:8765"])
    assert refused.exit_code == 1
    assert "registration: auth='workload' needs 'container'" in refused.output


@pytest.mark.parametrize(("options", "message"), [
    ({"auth": "workload"}, "registration: auth='workload' needs 'container'"),
    ({"auth": "oauth"}, "auth: expected 'secret' or 'workload', got 'oauth'"),
    ({"auth": "workload", "registration": "container", "token_expiration": 60},
     "token_expiration: expected seconds from 600"),
    ({"keys": '{"keys": "no"}'}, "keys: expected the hub's public keys"),
])
def test_bad_connection_fields_are_refused_naming_them(options: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        HubConnection(url="http://signoff.signoff.svc:8765", **options)


class WorkloadWorld:
    def __init__(self, argo: FakeArgoServer, hub: HubProcess, provider: Provider) -> None:
        self.argo, self.hub, self.provider = argo, hub, provider
        self.minted: list[dict[str, Any]] = []
        self.controller = FakeController(argo, service_account_token=self.token)

    def token(self, namespace: str, account: str, audience: str, expiration: int) -> str:
        """What the kubelet gets from the API server's TokenRequest for a projected volume."""
        now = int(time.time())
        claims = {"iss": self.provider.issuer, "aud": [audience], "iat": now, "nbf": now,
                  "exp": now + expiration, "sub": f"system:serviceaccount:{namespace}:{account}",
                  "kubernetes.io": {"namespace": namespace,
                                    "pod": {"name": f"{account}-pod", "uid": "p1"},
                                    "serviceaccount": {"name": account, "uid": "s1"}}}
        self.minted.append(claims)
        token: str = self.provider.control("sign", {"claims": claims})["token"]
        return token


@pytest.fixture(scope="module")
def workload_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkloadWorld]:
    where = tmp_path_factory.mktemp("argo-workload")
    provider = Provider(where / "provider.log")
    issuers = [{"issuer": provider.issuer, "audience": "signoff", "jwks_min_refresh": 0,
                "rules": [{"match": {"kubernetes.io.namespace": NAMESPACE,
                                     "kubernetes.io.serviceaccount.name": "*"},
                           "workflow": "{kubernetes.io.namespace}/"
                                       "{kubernetes.io.serviceaccount.name}"}]}]
    try:
        with FakeArgoServer() as argo:
            env = hub_env(argo) | {"SIGNOFF_WORKLOAD_ISSUERS": json.dumps(issuers),
                                   "SIGNOFF_EGRESS_ALLOW_PRIVATE": json.dumps(["127.0.0.1/32"])}
            with HubProcess(Path(where) / "hub.db", env=env) as hub:
                yield WorkloadWorld(argo, hub, provider)
    finally:
        provider.stop()


def _manifest(world: WorkloadWorld, **options: Any) -> dict[str, Any]:
    hub = HubConnection(url=world.hub.url, auth="workload", registration="container",
                        **options)
    manifest = standalone_workflow(approval("approve", "Release?", hub=hub))
    manifest["spec"]["serviceAccountName"] = ACCOUNT
    return manifest


def test_a_gate_runs_on_its_projected_token_alone(workload_world: WorkloadWorld) -> None:
    world = workload_world
    assert world.argo.secrets == {}
    workflow = world.argo.submit(_manifest(world), NAMESPACE)
    run = world.controller.start_gate(workflow, "approve")
    event = find_event(world.hub, run.key, timeout=30)
    # the register script sent the token file: the hub knows the workflow as its account
    assert event["requested_by"] == f"{NAMESPACE}/{ACCOUNT}"
    reviewer = world.hub.token("rita", role="reviewer")
    answer(world, run, True, "go", token=reviewer)  # type: ignore[arg-type]  # uses .hub
    assert outputs(run.finished(20)) == {"value": "true", "outcome": "approved"}
    # the verify step read the token file too (SIGNOFF_TOKEN_FILE) to read its event
    checked = run.verify_node()
    assert checked["phase"] == "Succeeded", checked["message"]
    assert "value 'true' verified" in checked["message"]
    assert {c["aud"][0] for c in world.minted} == {"signoff"}
    assert len(world.minted) >= 2  # one projected volume per pod: register and verify


def test_a_token_for_another_audience_is_refused(workload_world: WorkloadWorld) -> None:
    world = workload_world
    workflow = world.argo.submit(_manifest(world, audience="someone-else"), NAMESPACE)
    run = world.controller.start_gate(workflow, "approve")
    with pytest.raises(AssertionError, match="registration failed"):
        run.wait_node(60)
    assert run.register_error is not None and "401" in run.register_error
    assert "workload token refused" in run.register_error
