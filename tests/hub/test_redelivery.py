"""Issue 14, nothing stays stuck: failed deliveries are sent again (by an operator, over the API
or the CLI, and by the hub itself once a missing resumer can load), and a hub whose configured
resumer cannot load refuses to start, saying why. Each against a real ``signoff serve``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff import Client
from signoff.testing import HubProcess

from .stall_cases import Server, _until

CLI = [sys.executable, "-c", "from signoff.cli import run; run()"]

# the receivers here are on loopback, which egress refuses unless allowed
LOOPBACK = {"SIGNOFF_EGRESS_ALLOW": '["http://127.0.0.1:*"]',
            "SIGNOFF_EGRESS_ALLOW_PRIVATE": '["127.0.0.1/32"]'}


class Refusing(Server):
    """A webhook receiver that answers 400 (a delivery that fails for good) until told not to."""

    def __init__(self) -> None:
        super().__init__(answer={})
        self.refuse = True

    def start(self) -> Refusing:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.calls += 1
                self.send_response(400 if outer.refuse else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self


def _failed_delivery(hub: HubProcess, receiver: Refusing) -> tuple[Client, str, str]:
    admin = Client(hub.url, hub.admin_token)
    event = admin.create(name="hooked", prompt="p", source={
        "orchestrator": "webhook", "params": {"url": f"{receiver.url}/hook"}})
    admin.respond(event.id, True)
    failed = _until(lambda: [d for d in admin.get(event.id).deliveries if d.state == "failed"],
                    20, "the delivery failing")
    assert "answered 400" in (failed[0].last_error or "")
    return admin, event.id, failed[0].id


def test_retry_a_failed_delivery_over_the_api(tmp_path: Path) -> None:
    receiver = Refusing().start()
    try:
        with HubProcess(tmp_path / "api.db", env={"SIGNOFF_SWEEP_INTERVAL": "0.2", **LOOPBACK}) as hub:
            admin, event_id, delivery_id = _failed_delivery(hub, receiver)
            listed = httpx.get(f"{hub.url}/api/v1/deliveries", params={"state": "failed"},
                               headers=hub.headers()).json()["deliveries"]
            assert [d["id"] for d in listed] == [delivery_id]
            assert listed[0]["event_id"] == event_id and "400" in listed[0]["last_error"]

            reviewer = hub.token("rita")
            refused = httpx.post(f"{hub.url}/api/v1/deliveries/{delivery_id}/retry",
                                 headers=hub.headers(reviewer))
            assert refused.status_code == 403
            assert httpx.get(f"{hub.url}/api/v1/deliveries",
                             headers=hub.headers(reviewer)).status_code == 403
            missing = httpx.post(f"{hub.url}/api/v1/deliveries/dl_nope/retry",
                                 headers=hub.headers())
            assert missing.status_code == 404

            receiver.refuse = False  # the cause is fixed
            retried = httpx.post(f"{hub.url}/api/v1/deliveries/{delivery_id}/retry",
                                 headers=hub.headers())
            assert retried.status_code == 200 and retried.json()["state"] == "pending"
            _until(lambda: admin.get(event_id).deliveries[0].state == "delivered", 20,
                   "the redelivery")
            again = httpx.post(f"{hub.url}/api/v1/deliveries/{delivery_id}/retry",
                               headers=hub.headers())
            assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
            trail = [(e["action"], e["actor"]) for e in admin.audit(event_id)]
            assert ("delivery_failed", "hub") in trail
            assert trail[-2:] == [("delivery_retried", "admin"), ("delivery_delivered", "hub")]
    finally:
        receiver.stop()


def test_retry_a_failed_delivery_with_the_cli(tmp_path: Path) -> None:
    receiver = Refusing().start()
    try:
        with HubProcess(tmp_path / "cli.db", env={"SIGNOFF_SWEEP_INTERVAL": "0.2", **LOOPBACK}) as hub:
            admin, event_id, delivery_id = _failed_delivery(hub, receiver)
            on_db = subprocess.run([*CLI, "deliveries", "list", "--state", "failed",
                                    "--db", hub.database], capture_output=True, text=True)
            assert on_db.returncode == 0, on_db.stderr
            assert delivery_id in on_db.stdout and "answered 400" in on_db.stdout
            api = [*CLI, "--url", hub.url, "--token", str(hub.admin_token), "deliveries"]
            listed = subprocess.run([*api, "list", "--state", "failed", "--json"],
                                    capture_output=True, text=True)
            assert listed.returncode == 0, listed.stderr
            assert delivery_id in listed.stdout

            receiver.refuse = False
            retried = subprocess.run([*api, "retry", delivery_id], capture_output=True,
                                     text=True)
            assert retried.returncode == 0, retried.stderr
            assert f"{delivery_id}: pending again" in retried.stdout
            _until(lambda: admin.get(event_id).deliveries[0].state == "delivered", 20,
                   "the redelivery asked through the API")

            # on the database, while the hub runs: it picks the delivery up by itself
            receiver.refuse = True
            _, second_event, second = _failed_delivery(hub, receiver)
            receiver.refuse = False
            direct = subprocess.run([*CLI, "deliveries", "retry", second, "--db", hub.database],
                                    capture_output=True, text=True)
            assert direct.returncode == 0, direct.stderr
            _until(lambda: admin.get(second_event).deliveries[0].state == "delivered", 20,
                   "the redelivery written to the database")
            twice = subprocess.run([*api, "retry", second], capture_output=True, text=True)
            assert twice.returncode == 1 and "not failed" in twice.stderr
    finally:
        receiver.stop()


def _plugin(root: Path, installed: bool) -> None:
    """A third-party resumer ``flaky`` registered by entry point; its module exists only once
    ``installed`` (before that, loading it fails as a missing extra does)."""
    dist = root / "flaky_resumer-1.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: flaky-resumer\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[signoff.resumers]\nflaky = flaky_resumer:Flaky\n")
    module = root / "flaky_resumer.py"
    if installed:
        module.write_text(textwrap.dedent("""
            from signoff._egress import EgressGuard
            from signoff.resumers.webhook import WebhookResumer

            class Flaky(WebhookResumer):  # a third party's: it brings its own egress rule
                def __init__(self, settings):
                    guard = EgressGuard(["http://127.0.0.1:*"], ["127.0.0.1/32"])
                    super().__init__({**settings, "egress": guard})
        """))
    elif module.exists():
        module.unlink()


def test_failed_for_want_of_a_resumer_is_retried_after_a_restart(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    _plugin(plugins, installed=False)
    receiver = Server(answer={}).start()
    hub = HubProcess(tmp_path / "flaky.db", env={"PYTHONPATH": str(plugins),
                                                 "SIGNOFF_SWEEP_INTERVAL": "0.2"})
    try:
        hub.start()
        admin = Client(hub.url, hub.admin_token)
        event = admin.create(name="flaky", prompt="p", source={
            "orchestrator": "flaky", "params": {"url": f"{receiver.url}/flaky"}})
        admin.respond(event.id, True)
        [failed] = _until(lambda: [d for d in admin.get(event.id).deliveries
                                   if d.state == "failed"], 20, "the delivery failing")
        assert "resumer unavailable: 'flaky' could not be loaded" in (failed.last_error or "")
        _until(lambda: "could not be loaded" in hub.log_path.read_text(), 5,
               "the hub saying so in its log")

        hub.stop()
        _plugin(plugins, installed=True)  # the extra is installed
        hub.start()
        _until(lambda: admin.get(event.id).deliveries[0].state == "delivered", 20,
               "the delivery after the restart")
        assert receiver.calls == 1
        actions = [(e["action"], e["actor"]) for e in admin.audit(event.id)]
        assert actions[-2:] == [("delivery_retried", "hub"), ("delivery_delivered", "hub")]
        admin.close()
    finally:
        hub.stop()
        receiver.stop()


@pytest.mark.parametrize("installed", [False, True], ids=["unknown", "broken"])
def test_a_configured_resumer_that_cannot_load_stops_the_start(tmp_path: Path,
                                                               installed: bool) -> None:
    plugins = tmp_path / "plugins"
    if installed:  # registered, but its module raises on import
        _plugin(plugins, installed=True)
        (plugins / "flaky_resumer.py").write_text("raise ImportError('needs flaky-sdk')\n")
        name, reason = "flaky", "needs flaky-sdk"
    else:
        plugins.mkdir()
        name, reason = "nosuch", "no resumer named 'nosuch' is installed"
    config = tmp_path / "signoff.toml"
    config.write_text(f'[resumers.{name}]\nurl = "http://127.0.0.1:1"\n')
    hub = HubProcess(tmp_path / "refuse.db", config=config, env={"PYTHONPATH": str(plugins)})
    with pytest.raises(RuntimeError, match="hub exited"):
        hub.start()
    said = hub.log_path.read_text()
    assert f"refusing to start: [resumers.{name}] is configured but" in said
    assert reason in said and f"signoff[{name}]" in said
