"""Issue 23, trusted proxy mode through a real ``signoff serve``: the identity headers count
only on connections from the configured proxy addresses.

The hub listens on 127.0.0.1; the "proxy" connects from 127.0.0.2 (all of 127/8 is loopback on
Linux, so a client can pick that source address), and everything else from 127.0.0.1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from signoff.testing import HubProcess, until

from ..conftest import hub_process

PROXY = {"addresses": ["127.0.0.2/32"], "admin_groups": ["platform"],
         "logout_url": "/oauth2/sign_out"}


@pytest.fixture
def proxied_hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HubProcess]:
    with hub_process(request, tmp_path, {"SIGNOFF_TRUSTED_PROXY": json.dumps(PROXY),
                                         "SIGNOFF_LOG_FORMAT": "text"}) as process:
        yield process


def _from(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address))


def _as(user: str, groups: str = "") -> dict[str, str]:
    return {"X-Forwarded-User": user, "X-Forwarded-Groups": groups}


def test_the_proxy_names_the_reviewer_and_groups_decide(proxied_hub: HubProcess) -> None:
    flow = proxied_hub.token("release-flow", role="workflow")
    made = httpx.post(f"{proxied_hub.url}/api/v1/events", headers=proxied_hub.headers(flow),
                      json={"name": "release", "prompt": "Ship the ops release?",
                            "assignees": ["group:ops"]})
    assert made.status_code == 201, made.text
    event = made.json()
    with _from("127.0.0.2") as proxy:
        me = proxy.get(f"{proxied_hub.url}/api/v1/me", headers=_as("carol", "ops, sre"))
        assert me.json() == {"user": "carol", "groups": ["ops", "sre"], "role": "reviewer"}
        admin = proxy.get(f"{proxied_hub.url}/api/v1/me", headers=_as("pat", "platform"))
        assert admin.json()["role"] == "admin"

        # dave (finance) sees nothing and may not answer
        dave = proxy.get(f"{proxied_hub.url}/", headers=_as("dave", "finance"))
        assert "Ship the ops release?" not in dave.text
        assert proxy.get(f"{proxied_hub.url}/events/{event['id']}",
                         headers=_as("dave", "finance")).status_code in (403, 404)

        # carol (ops) answers from the page, with the page's CSRF token
        page = proxy.get(f"{proxied_hub.url}/events/{event['id']}", headers=_as("carol", "ops"))
        assert page.status_code == 200 and "Signed in as <strong>carol</strong>" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        answered = proxy.post(f"{proxied_hub.url}/events/{event['id']}/respond",
                              headers=_as("carol", "ops"),
                              data={"csrf": csrf.group(1), "choice": "approve"})
        assert answered.status_code == 303, answered.text
        # another user's CSRF token is no good for carol
        forged = proxy.post(f"{proxied_hub.url}/logout", headers=_as("pat", "platform"),
                            data={"csrf": csrf.group(1)})
        assert forged.status_code == 403
        out = proxy.post(f"{proxied_hub.url}/logout", headers=_as("carol", "ops"),
                         data={"csrf": csrf.group(1)})
        assert (out.status_code, out.headers["location"]) == (303, "/oauth2/sign_out")
    decision = httpx.get(f"{proxied_hub.url}/api/v1/events/{event['id']}",
                         headers=proxied_hub.headers()).json()["decision"]
    assert (decision["by"], decision["channel"]) == ("carol", "web")


def test_proxy_headers_from_another_address_are_refused_and_logged(
        proxied_hub: HubProcess) -> None:
    with _from("127.0.0.1") as elsewhere:
        for path in ("/api/v1/me", "/", "/api/v1/events"):
            refused = elsewhere.get(f"{proxied_hub.url}{path}", headers=_as("pat", "platform"))
            assert refused.status_code == 403, path
            assert "only accepted from the configured proxy addresses" in refused.text
        # even beside a valid token: the header is refused, not ignored
        both = elsewhere.get(f"{proxied_hub.url}/api/v1/me",
                             headers={**_as("pat", "platform"), **proxied_hub.headers()})
        assert both.status_code == 403
        # without the header the address is an ordinary client
        plain = elsewhere.get(f"{proxied_hub.url}/api/v1/me", headers=proxied_hub.headers())
        assert plain.json()["user"] == "admin"
        assert elsewhere.get(f"{proxied_hub.url}/api/v1/me").status_code == 401
    until(lambda: "X-Forwarded-User header from untrusted address 127.0.0.1 refused"
          in proxied_hub.log_path.read_text(), timeout=5, what="the refusal in the log")


def test_bad_proxy_header_values_are_refused_naming_the_header(
        proxied_hub: HubProcess) -> None:
    with _from("127.0.0.2") as proxy:
        long = proxy.get(f"{proxied_hub.url}/api/v1/me", headers=_as("x" * 300))
        assert long.status_code == 422
        assert long.json()["error"]["field"] == "X-Forwarded-User"
        many = proxy.get(f"{proxied_hub.url}/api/v1/me",
                         headers=_as("carol", ",".join(f"g{i}" for i in range(600))))
        assert many.status_code == 422
        assert many.json()["error"]["field"] == "X-Forwarded-Groups"
