"""Egress is default-deny, through a real `signoff serve`: webhook targets outside the
allowlist, internal addresses (literal, or behind a name that resolves to one), redirects,
the fan-out cap, named notification channels, and failure reasons that never carry what the
remote answered. Receivers are real HTTP servers on loopback.

The webhook tests that expect deliveries to arrive (an explicitly allowed loopback receiver)
are in test_reliability.py, whose hub allows ``http://127.0.0.1:*`` and ``127.0.0.1/32``.
"""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff import Client, Policy, Tier
from signoff.hub import load_settings
from signoff.testing import HubProcess, free_port, until

MARKER = "REMOTE-BODY-7f3a91"
"""Every receiver here answers with this in its body; no record of the hub may contain it."""


class Remote:
    """A real HTTP server: answers each path with a canned (status, body, headers)."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None,
                 routes: dict[str, tuple[int, bytes, dict[str, str]]] | None = None) -> None:
        self.host, self.port = host, port or free_port()
        self.routes = routes or {}
        self.calls: list[tuple[str, str, bytes]] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Remote:
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                remote.calls.append((self.command, self.path, self.rfile.read(size)))
                status, body, headers = remote.routes.get(
                    self.path, (200, b'{"value": true}', {}))
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = _answer  # noqa: N815 - the stdlib's names

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _hub(tmp_path: Path, name: str, config: str) -> HubProcess:
    path = tmp_path / f"{name}.toml"
    path.write_text("sweep_interval = 0.2\ndelivery_backoff = 0.2\ndelivery_backoff_max = 0.5\n"
                    + textwrap.dedent(config))
    return HubProcess(tmp_path / f"{name}.db", config=path)



def _until(check: Any, timeout: float = 15) -> Any:
    return until(check, timeout)


def _create(hub: HubProcess, token: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{hub.url}/api/v1/events", json={"name": "hooked", "prompt": "p", **body},
                      headers=hub.headers(token), timeout=10)


def _webhook(url: str) -> dict[str, Any]:
    return {"source": {"orchestrator": "webhook", "params": {"url": url}}}


def _decided_delivery(hub: HubProcess, flow: str, url: str) -> tuple[str, Any]:
    """Create a webhook event to ``url``, approve it, wait for its delivery to settle."""
    made = _create(hub, flow, _webhook(url))
    assert made.status_code == 201, made.text
    event_id = made.json()["id"]
    Client(hub.url, hub.admin_token).respond(event_id, True)
    client = Client(hub.url, flow)
    delivery = _until(lambda: next((d for d in client.get(event_id).deliveries
                                    if d.state != "pending"), None))
    return event_id, delivery


@pytest.fixture
def receiver() -> Iterator[Remote]:
    remote = Remote().start()
    yield remote
    remote.stop()


# webhook targets -------------------------------------------------------------------------
def test_webhook_host_not_in_the_allowlist_is_refused_at_creation(tmp_path: Path) -> None:
    with _hub(tmp_path, "allow", 'egress_allow = ["https://hooks.example.com"]') as hub:
        flow = hub.token("flow", role="workflow")
        for url in ("https://evil.example.net/hook", "http://hooks.example.com/hook",
                    "https://hooks.example.com:8443/hook", "https://hooks.example.com.evil.net/",
                    "file:///etc/passwd"):
            refused = _create(hub, flow, _webhook(url))
            assert refused.status_code == 422, (url, refused.text)
            error = refused.json()["error"]
            assert error["field"] == "source.params.url" and error["got"] == url
            assert "egress_allow" in error["expected"]
        assert _create(hub, flow, _webhook("https://hooks.example.com/hook")).status_code == 201
        # nothing was stored for the refused ones
        assert len(Client(hub.url, flow).list().events) == 1


def test_literal_internal_addresses_are_refused_without_an_explicit_allow(
        tmp_path: Path, receiver: Remote) -> None:
    with _hub(tmp_path, "any", 'egress_allow = ["http://*:*"]') as hub:
        flow = hub.token("flow", role="workflow")
        for url, why in [(f"http://127.0.0.1:{receiver.port}/", "127.0.0.1 is a loopback"),
                         ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
                         ("http://metadata.google.internal/", "cloud metadata"),
                         (f"http://[::1]:{receiver.port}/", "::1 is a loopback"),
                         (f"http://[::ffff:127.0.0.1]:{receiver.port}/", "loopback"),
                         ("http://10.20.30.40/", "10.20.30.40 is a private"),
                         ("http://0.0.0.0/", "unspecified")]:
            refused = _create(hub, flow, _webhook(url))
            assert refused.status_code == 422, (url, refused.text)
            assert refused.json()["error"]["field"] == "source.params.url"
            assert why in refused.json()["error"]["message"]
        assert Client(hub.url, flow).list().events == []
    assert receiver.calls == []


def test_a_name_that_resolves_to_loopback_is_refused_when_connecting(
        tmp_path: Path, receiver: Remote) -> None:
    """`localhost` passes the allowlist, so the URL check lets it through; the address it
    resolves to is checked when the connection is made, and refused."""
    with _hub(tmp_path, "name", 'egress_allow = ["http://localhost:*"]') as hub:
        flow = hub.token("flow", role="workflow")
        event_id, delivery = _decided_delivery(hub, flow, f"http://localhost:{receiver.port}/")
        assert delivery.state == "failed" and delivery.attempts == 1
        assert "refused:" in delivery.last_error and "is a loopback address" in delivery.last_error
        trail = Client(hub.url, flow).audit(event_id)
        assert trail[-1]["action"] == "delivery_failed"
    assert receiver.calls == []


def test_an_allow_entry_removed_since_creation_is_refused_at_delivery(
        tmp_path: Path, receiver: Remote) -> None:
    allowed = f'egress_allow = ["http://127.0.0.1:{receiver.port}"]\n'
    hub = _hub(tmp_path, "later", allowed + 'egress_allow_private = ["127.0.0.1/32"]')
    with hub:
        flow = hub.token("flow", role="workflow")
        made = _create(hub, flow, _webhook(f"http://127.0.0.1:{receiver.port}/"))
        assert made.status_code == 201
        hub.stop()
        assert hub.config is not None
        Path(hub.config).write_text(allowed)  # the operator takes the private allow back
        hub.start()
        Client(hub.url, hub.admin_token).respond(made.json()["id"], True)
        client = Client(hub.url, flow)
        delivery = _until(lambda: next((d for d in client.get(made.json()["id"]).deliveries
                                        if d.state != "pending"), None))
        assert delivery.state == "failed"
        assert delivery.last_error == "refused: 127.0.0.1 is a loopback address"
    assert receiver.calls == []


def test_a_redirect_to_a_private_address_is_not_followed(tmp_path: Path) -> None:
    inner = Remote(host="127.0.0.2").start()  # loopback too, but not in the allowed network
    outer = Remote(routes={"/hook": (307, b"", {"Location": f"http://127.0.0.2:{inner.port}/"})})
    outer.start()
    try:
        config = f"""
            egress_allow = ["http://127.0.0.1:{outer.port}", "http://127.0.0.2:{inner.port}"]
            egress_allow_private = ["127.0.0.1/32"]
        """
        with _hub(tmp_path, "redirect", config) as hub:
            flow = hub.token("flow", role="workflow")
            _, delivery = _decided_delivery(hub, flow, f"http://127.0.0.1:{outer.port}/hook")
            assert delivery.state == "failed"
            assert delivery.last_error == (f"http://127.0.0.1:{outer.port} answered 307 "
                                           "(redirects are not followed)")
        assert [c[1] for c in outer.calls] == ["/hook"] and inner.calls == []
    finally:
        inner.stop()
        outer.stop()


# notification channels and the fan-out cap ------------------------------------------------
def test_events_name_notification_channels_and_never_carry_urls(tmp_path: Path,
                                                                receiver: Remote) -> None:
    config = f"""
        [notify_channels]
        ops = ["json://127.0.0.1:{receiver.port}/ops"]
    """
    with _hub(tmp_path, "channels", config) as hub:
        flow = hub.token("flow", role="workflow")
        for policy, field in [
                ({"notify": [f"json://127.0.0.1:{receiver.port}/evil"]}, "policy.notify.0"),
                ({"notify": ["ops", "nope"]}, "policy.notify.1"),
                ({"escalate": [{"after": 60, "notify": ["http://169.254.169.254/"]}]},
                 "policy.escalate.0.notify.0"),
                ({"escalate": [{"after": 60, "notify": ["nope"]}]},
                 "policy.escalate.0.notify.0")]:
            refused = _create(hub, flow, {"policy": policy})
            assert refused.status_code == 422, (policy, refused.text)
            assert refused.json()["error"]["field"] == field
        assert "ops" in refused.json()["error"]["expected"]  # the channels that exist
        assert Client(hub.url, flow).list().events == []
        made = _create(hub, flow, {"policy": {"notify": ["ops"]}})
        assert made.status_code == 201
        _until(lambda: receiver.calls)
    assert [c[1] for c in receiver.calls] == ["/ops"]


def test_a_policy_file_naming_an_unknown_channel_stops_the_hub(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"policies.0.notify: no notification channel 'ops'"):
        load_settings(policies=[{"notify": ["ops"]}])
    with pytest.raises(ValueError, match="not a URL"):
        load_settings(policies=[{"notify": ["mailto://a@example.com"]}],
                      notify_channels={"ops": ["json://x"]})
    assert load_settings(policies=[{"notify": ["ops"]}],
                         notify_channels={"ops": ["json://x"]}).policies[0].notify == ["ops"]


def test_fan_out_per_event_is_capped(tmp_path: Path) -> None:
    channels = "\n".join(f'c{i} = ["json://127.0.0.1:9/c{i}"]' for i in range(6))
    config = f"""
        max_fanout = 3
        egress_allow = ["https://hooks.example.com"]
        [notify_channels]
        {channels}
    """
    with _hub(tmp_path, "fanout", config) as hub:
        flow = hub.token("flow", role="workflow")
        hook = _webhook("https://hooks.example.com/h")
        cases = [
            ({"policy": {"notify": ["c0", "c1", "c2", "c3"]}}, "policy.notify.3"),
            ({**hook, "policy": {"notify": ["c0", "c1", "c2"]}}, "policy.notify.2"),
            ({"policy": {"notify": ["c0", "c1"],
                         "escalate": [{"after": 60, "notify": ["c1", "c2"]},
                                      {"after": 120, "notify": ["c3"]}]}},
             "policy.escalate.1.notify.0"),
        ]
        for body, field in cases:
            refused = _create(hub, flow, body)
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["field"] == field
            assert "at most 3 outbound targets" in refused.json()["error"]["expected"]
        assert Client(hub.url, flow).list().events == []
        # at the cap is fine, and a channel named twice counts once
        at_cap = {**hook, "policy": {"notify": ["c0", "c1"],
                                     "escalate": [{"after": 60, "notify": ["c0", "c1"]}]}}
        assert _create(hub, flow, at_cap).status_code == 201


# failures are recorded in a few words ------------------------------------------------------
def test_recorded_failures_never_carry_the_remote_body(tmp_path: Path) -> None:
    body = f"<html>{MARKER} stack trace, secrets</html>".encode()
    remote = Remote(routes={
        "/hook": (410, body, {}),                                      # a webhook receiver
        "/retry": (503, body, {}),
        "/d500": (500, body, {}),                                      # deciders
        "/dshape": (200, json.dumps({"nope": MARKER}).encode(), {}),
        "/dvalue": (200, json.dumps({"value": MARKER}).encode(), {}),
        "/dnotjson": (200, body, {}),
        "/notify": (500, body, {}),                                    # a notification
    }).start()
    elsewhere = Remote().start()
    base = f"http://127.0.0.1:{remote.port}"
    config = f"""
        egress_allow = ["{base}", "http://169.254.169.254"]
        egress_allow_private = ["127.0.0.1/32"]
        [notify_channels]
        ops = ["json://127.0.0.1:{remote.port}/notify"]
        [deciders.d500]
        url = "{base}/d500"
        [deciders.dshape]
        url = "{base}/dshape"
        [deciders.dvalue]
        url = "{base}/dvalue"
        [deciders.dnotjson]
        url = "{base}/dnotjson"
        [deciders.unlisted]
        url = "http://127.0.0.1:{elsewhere.port}/"
        [deciders.metadata]
        url = "http://169.254.169.254/latest/meta-data/"
    """
    try:
        with _hub(tmp_path, "quiet", config) as hub:
            flow = hub.token("flow", role="workflow")
            client = Client(hub.url, flow)
            gone, delivery = _decided_delivery(hub, flow, f"{base}/hook")
            assert (delivery.state, delivery.last_error) == ("failed", f"{base} answered 410")
            retried = _create(hub, flow, _webhook(f"{base}/retry")).json()["id"]
            Client(hub.url, hub.admin_token).respond(retried, True)
            _until(lambda: client.get(retried).deliveries[0].attempts >= 2)
            assert client.get(retried).deliveries[0].last_error == f"{base} answered 503"

            expected = {"d500": f"decider {base} answered 500",
                        "dshape": "the answer is not a verdict",
                        "dvalue": "its value does not fit the input",
                        "dnotjson": "the answer is not a verdict",
                        "unlisted": "is not in egress_allow",
                        "metadata": "169.254.169.254 is a cloud metadata address"}
            events = {}
            for name in expected:
                made = client.create(name=f"fallback-{name}", prompt="p",
                                     policy=Policy(notify=["ops"], escalate=[
                                         Tier(after=timedelta(seconds=0.3), fallback=name)]))
                events[name] = made.id
            for name, event_id in events.items():
                last = _until(lambda event_id=event_id: next(
                    (e for e in client.audit(event_id) if e["action"] == "escalated"), None))
                assert expected[name] in last["data"]["error"], (name, last)
                assert client.get(event_id).status == "pending"  # left to the humans
            _until(lambda: all(any(e["action"] == "notified" for e in client.audit(i))
                               for i in events.values()))
            notified = [e for e in client.audit(events["d500"]) if e["action"] == "notified"]
            assert notified[0]["data"]["ok"] is False

            # nothing the hub shows or keeps quotes what the remotes answered
            for event_id in [gone, retried, *events.values()]:
                shown = httpx.get(f"{hub.url}/api/v1/events/{event_id}",
                                  headers=hub.headers()).text
                trail = httpx.get(f"{hub.url}/api/v1/events/{event_id}/audit",
                                  headers=hub.headers()).text
                assert MARKER not in shown and MARKER not in trail
            assert [c[1] for c in remote.calls].count("/d500") == 1
        assert elsewhere.calls == []
    finally:
        remote.stop()
        elsewhere.stop()
