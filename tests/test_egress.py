"""The egress guard on its own: allowlist entries, address classes, and the transport that
checks the address each connection really goes to (an injected resolver, a fake socket layer)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpcore
import pytest
from pydantic import ValidationError

from signoff._egress import AllowEntry, EgressGuard, EgressRefused
from signoff.hub import load_settings

PUBLIC = "93.184.216.34"


@pytest.mark.parametrize(("entry", "url", "allowed"), [
    ("https://hooks.example.com", "https://hooks.example.com/x?y=1", True),
    ("https://hooks.example.com", "https://HOOKS.example.com./x", True),
    ("https://hooks.example.com", "http://hooks.example.com/", False),       # scheme
    ("https://hooks.example.com", "https://hooks.example.com:8443/", False),  # default port only
    ("https://hooks.example.com:*", "https://hooks.example.com:8443/", True),
    ("https://hooks.example.com", "https://evil.example.net/", False),
    ("https://hooks.example.com", "https://hooks.example.com.evil.net/", False),
    ("https://hooks.example.com", "https://hooks.example.com@evil.net/", False),
    ("https://*.corp.example", "https://a.b.corp.example/", True),
    ("https://*.corp.example", "https://corp.example/", False),
    ("https://*.corp.example", "https://evilcorp.example/", False),
    ("http://10.1.2.3:8080", "http://10.1.2.3:8080/", True),
    ("http://[::1]:8080", "http://[0:0::1]:8080/", True),
    ("https://*", "https://anything.example/", True),
])
def test_allowlist_entries_match_scheme_host_and_port(entry: str, url: str,
                                                      allowed: bool) -> None:
    guard = EgressGuard([entry], ["0.0.0.0/0", "::/0"])  # only the allowlist decides here
    if allowed:
        guard.check_url(url)
    else:
        with pytest.raises(EgressRefused, match="is not in egress_allow"):
            guard.check_url(url)


@pytest.mark.parametrize("entry", ["hooks.example.com", "ftp://x.example", "https://a.*.example",
                                   "https://x.example/path", "https://x.example:70000", ""])
def test_malformed_entries_stop_the_hub_from_starting(entry: str) -> None:
    with pytest.raises(ValueError, match="egress_allow entry"):
        AllowEntry.parse(entry)
    with pytest.raises(ValidationError, match="egress_allow"):
        load_settings(egress_allow=[entry])
    with pytest.raises(ValidationError, match="egress_allow_private"):
        load_settings(egress_allow_private=["not-a-network"])


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.0.0.5", "private"), ("172.16.3.4", "private"), ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
    ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("100.64.0.1", "non-public"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.5", "private"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("2002:7f00:1::1", "loopback"),        # 6to4 of 127.0.0.1
    ("64:ff9b::a00:5", "private"),         # NAT64 of 10.0.0.5
])
def test_non_public_addresses_are_refused_without_an_explicit_allow(address: str,
                                                                    kind: str) -> None:
    with pytest.raises(EgressRefused, match=f"is an? {kind} address"):
        EgressGuard().check_address(address)


def test_public_addresses_pass_and_explicit_networks_open_only_themselves() -> None:
    EgressGuard().check_address(PUBLIC)
    EgressGuard().check_address("2606:4700:4700::1111")
    guard = EgressGuard(allow_private=["127.0.0.1/32"])
    guard.check_address("127.0.0.1")
    guard.check_address("::ffff:127.0.0.1")
    with pytest.raises(EgressRefused, match="127.0.0.2 is a loopback address"):
        guard.check_address("127.0.0.2")
    with pytest.raises(EgressRefused, match="::1 is a loopback address"):
        guard.check_address("::1")


def test_literal_and_metadata_hosts_are_refused_on_the_url() -> None:
    guard = EgressGuard(["http://*:*"])
    for url, why in [("http://127.0.0.1:8080/", "127.0.0.1 is a loopback"),
                     ("http://[::1]/", "::1 is a loopback"),
                     ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
                     ("http://metadata.google.internal/", "cloud metadata"),
                     ("http://10.2.3.4/", "private")]:
        with pytest.raises(EgressRefused, match=why):
            guard.check_url(url)
    guard.check_url("http://a-name.example:8080/")  # a name: checked when it is resolved


# the transport ---------------------------------------------------------------------------------
class FakeStream(httpcore.AsyncNetworkStream):
    """A socket that records what was written and answers one canned response."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.written = b""
        self.server_hostname: str | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        chunk, self.answer = self.answer[:max_bytes], self.answer[max_bytes:]
        return chunk

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.written += buffer

    async def aclose(self) -> None:
        return None

    async def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        self.server_hostname = server_hostname
        return self

    def get_extra_info(self, info: str) -> Any:
        return None


class FakeNetwork(httpcore.AsyncNetworkBackend):
    """The socket layer: records which address each connection was opened to."""

    def __init__(self, answer: bytes = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
                 ) -> None:
        self.answer = answer
        self.connected: list[tuple[str, int]] = []
        self.streams: list[FakeStream] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        self.streams.append(FakeStream(self.answer))
        return self.streams[-1]

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Rebinding:
    """A resolver whose answers change between calls, as a rebinding DNS server's do."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return self.answers.pop(0)


def test_a_name_that_rebinds_to_a_private_address_is_refused_at_connect_time() -> None:
    resolver = Rebinding([PUBLIC], ["10.0.0.5"])
    guard = EgressGuard(["https://hooks.example.com"], resolver=resolver)
    network = FakeNetwork()

    async def run() -> None:
        async with guard.client(timeout=5, network=network) as client:
            first = await client.post("https://hooks.example.com/hook", content=b"{}")
            assert first.status_code == 204
            guard.check_url("https://hooks.example.com/hook")  # the URL check still passes
            with pytest.raises(EgressRefused, match="10.0.0.5 is a private address"):
                await client.post("https://hooks.example.com/hook", content=b"{}")

    asyncio.run(run())
    # resolved once per connection, and only the checked public address was ever dialled
    assert resolver.asked == [("hooks.example.com", 443)] * 2
    assert network.connected == [(PUBLIC, 443)]
    # TLS and HTTP still speak to the name, not the address
    assert network.streams[0].server_hostname == "hooks.example.com"
    assert b"\r\nHost: hooks.example.com\r\n" in network.streams[0].written


def test_every_resolved_address_is_checked() -> None:
    guard = EgressGuard(["http://multi.example"], resolver=Rebinding([PUBLIC, "127.0.0.1"]))
    network = FakeNetwork()

    async def run() -> None:
        async with guard.client(timeout=5, network=network) as client:
            with pytest.raises(EgressRefused, match="127.0.0.1 is a loopback address"):
                await client.get("http://multi.example/")

    asyncio.run(run())
    assert network.connected == []


def test_a_redirect_is_not_followed() -> None:
    resolver = Rebinding([PUBLIC], [PUBLIC])
    guard = EgressGuard(["http://hooks.example.com"], resolver=resolver)
    network = FakeNetwork(b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.5/admin\r\n"
                          b"Content-Length: 0\r\nConnection: close\r\n\r\n")

    async def run() -> int:
        async with guard.client(timeout=5, network=network) as client:
            answer = await client.post("http://hooks.example.com/", content=b"{}")
            return answer.status_code

    assert asyncio.run(run()) == 302
    assert network.connected == [(PUBLIC, 80)] and len(resolver.asked) == 1


def test_environment_proxies_are_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy would open the connection for us, to an address nobody checked."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:3128")
    guard = EgressGuard(["http://hooks.example.com"], resolver=Rebinding([PUBLIC]))
    network = FakeNetwork()

    async def run() -> None:
        async with guard.client(timeout=5, network=network) as client:
            await client.get("http://hooks.example.com/")

    asyncio.run(run())
    assert network.connected == [(PUBLIC, 80)]
