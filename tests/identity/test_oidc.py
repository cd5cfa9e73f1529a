"""Issue 23, OpenID Connect sign-in over plain HTTP (the browser tests are in
``test_oidc_browser``): the flow is bound to the browser that started it, the operator's
allowed groups and domains and admin groups apply, the provider is called only as egress
allows, and bad settings are refused naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from signoff.hub.oidc import claim_at, groups_from
from signoff.hub.settings import load_settings
from signoff.testing import HubProcess

from ..conftest import hub_process
from .conftest import Provider, http_sign_in, oidc_env


@pytest.fixture
def gated_hub(request: pytest.FixtureRequest, tmp_path: Path,
              provider: Provider) -> Iterator[HubProcess]:
    """Only ops and finance may sign in, only from example.com; finance are admins."""
    env = oidc_env(provider, allowed_groups=["ops", "finance"], admin_groups=["finance"],
                   allowed_domains=["example.com"])
    with hub_process(request, tmp_path, env) as process:
        yield process


def test_a_callback_only_finishes_the_sign_in_this_browser_started(
        gated_hub: HubProcess, provider: Provider) -> None:
    with httpx.Client() as victim, httpx.Client() as attacker:
        # the attacker gets a code for their own account, then sends the victim the callback
        start = attacker.get(f"{gated_hub.url}/login/oidc")
        asked = dict(httpx.URL(start.headers["location"]).params)
        back = attacker.post(f"{provider.issuer}/authorize", data={**asked, "username": "bob"})
        callback = back.headers["location"]
        victim.get(f"{gated_hub.url}/login/oidc")  # the victim has a flow of their own
        landed = victim.get(callback)
        assert landed.status_code == 401
        assert "not started in this browser" in landed.text
        assert "signoff_session" not in victim.cookies
        # and a callback with no flow at all
        bare = httpx.get(f"{gated_hub.url}/login/oidc/callback?code=x&state=y")
        assert bare.status_code == 401


def test_allowed_groups_domains_and_admin_groups_apply(gated_hub: HubProcess) -> None:
    with httpx.Client() as eve:
        refused = http_sign_in(eve, gated_hub.url, "eve")
        assert refused.status_code == 403
        assert "eve may not sign in here" in refused.text
        assert "signoff_session" not in eve.cookies
    with httpx.Client() as bob:
        signed = http_sign_in(bob, gated_hub.url, "bob")
        assert (signed.status_code, signed.headers["location"]) == (303, "/")
        inbox = bob.get(f"{gated_hub.url}/")
        assert inbox.status_code == 200
        assert '<span class="role">admin</span>' in inbox.text
    with httpx.Client() as alice:
        assert http_sign_in(alice, gated_hub.url, "alice").status_code == 303
        assert '<span class="role">reviewer</span>' in alice.get(f"{gated_hub.url}/").text


def test_the_provider_is_called_only_where_egress_allows(
        request: pytest.FixtureRequest, tmp_path: Path, provider: Provider) -> None:
    env = oidc_env(provider)
    del env["SIGNOFF_EGRESS_ALLOW_PRIVATE"]  # the issuer is on loopback: not allowed by default
    before = provider.control("stats")["jwks_reads"]
    with hub_process(request, tmp_path, env) as hub:
        answer = httpx.get(f"{hub.url}/login/oidc")
        assert answer.status_code == 503
        assert "127.0.0.1 is a loopback address" in answer.text
    assert provider.control("stats")["jwks_reads"] == before


@pytest.mark.parametrize(("given", "field"), [
    ({"oidc": {"issuer": "ftp://idp.example", "client_id": "x"}}, "oidc.issuer"),
    ({"oidc": {"issuer": "https://idp.example"}}, "oidc.client_id"),
    ({"oidc": {"issuer": "https://idp.example", "client_id": "x", "groups_claim": "a b"}},
     "oidc.groups_claim"),
    ({"trusted_proxy": {"addresses": ["10.0.0.0/33"]}}, "trusted_proxy.addresses"),
    ({"trusted_proxy": {"addresses": []}}, "trusted_proxy.addresses"),
    ({"trusted_proxy": {"addresses": ["10.0.0.0/8"], "user_header": "X User"}},
     "trusted_proxy.user_header"),
    ({"workload_issuers": [{"issuer": "https://k8s.example", "audience": "signoff",
                            "rules": []}]}, "workload_issuers.0.rules"),
    ({"workload_issuers": [{"issuer": "https://k8s.example", "audience": "signoff",
                            "rules": [{"match": {}, "workflow": "x"}]}]},
     "workload_issuers.0.rules.0.match"),
])
def test_bad_identity_settings_are_refused_naming_the_field(given: dict[str, Any],
                                                            field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        load_settings(**given)
    assert field in str(refused.value)


def test_claims_are_found_at_dotted_paths_and_groups_bounded() -> None:
    claims = {"realm_access": {"roles": ["ops", "ops", "sre"]}, "kubernetes.io": {
        "namespace": "ml", "serviceaccount": {"name": "trainer"}}, "group": "solo"}
    assert claim_at(claims, "kubernetes.io.serviceaccount.name") == "trainer"
    assert claim_at(claims, "kubernetes.io.pod.name") is None
    assert groups_from(claims, "realm_access.roles") == ("ops", "sre")
    assert groups_from(claims, "group") == ("solo",)
    assert groups_from(claims, "missing") == ()
    with pytest.raises(Exception, match="printable group names"):
        groups_from({"groups": [{"name": "ops"}]}, "groups")
