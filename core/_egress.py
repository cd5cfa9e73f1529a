"""Default-deny egress: where the hub may call out, checked on the URL and again at connect time.

The hub calls out to webhook receivers (the ``webhook`` resumer) and webhook deciders. Both go
through an :class:`EgressGuard` built from the hub's settings:

- ``egress_allow``: ``scheme://host[:port]`` entries. ``host`` is a name, an IP literal,
  ``*.suffix`` (any name under ``suffix``) or ``*`` (any host). Without a port an entry means
  the scheme's default port; ``:*`` means any port. A URL no entry matches is refused.
- ``egress_allow_private``: networks (CIDR) the hub may connect to although they are not
  public. Without one, loopback, private (RFC 1918, ULA), link-local, cloud metadata,
  unspecified, multicast and other non-public addresses, and their IPv4-mapped, 6to4 and
  NAT64 forms, are refused.

The address check runs when a connection is opened, on the addresses the name resolves to
then (a name that resolved to a public address yesterday and to ``10.0.0.5`` today is refused
today: DNS rebinding). The name is resolved once, every address is checked, and the
connection goes to a checked address; TLS SNI and the ``Host`` header keep the name. Redirects
are never followed. Refusals raise :class:`EgressRefused` with a short reason.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from ._errors import SignoffError

__all__ = ["AllowEntry", "EgressGuard", "EgressRefused", "Resolver", "origin_of"]

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Resolves a host name and port to IP address strings (injected by tests)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DEFAULT_PORTS = {"http": 80, "https": 443}
_METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"),
                       ipaddress.ip_address("fd00:ec2::254"),
                       ipaddress.ip_address("100.100.100.200")}
_METADATA_NAMES = {"metadata.google.internal": "169.254.169.254", "metadata": "169.254.169.254"}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_ENTRY = re.compile(r"^(?P<scheme>https?)://(?P<host>\[[0-9A-Fa-f:.]+\]|[^:/\[\]\s]+)"
                    r"(?::(?P<port>\d{1,5}|\*))?/?$")


class EgressRefused(SignoffError):
    """The hub's egress settings do not allow this call; the message is the short reason."""


def origin_of(url: str | httpx.URL) -> str:
    """``scheme://host:port`` of a URL, for reasons that must not echo paths or queries."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "an invalid URL"
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme)
    return f"{parsed.scheme}://{host}:{port}"


def _host_key(host: str) -> str:
    """A host as compared: an IP literal normalised, a name lower-cased and IDNA-encoded."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


@dataclass(frozen=True)
class AllowEntry:
    """One ``egress_allow`` entry: scheme, host pattern, port (``None``: any)."""

    scheme: str
    host: str
    port: int | None

    @classmethod
    def parse(cls, text: str) -> AllowEntry:
        """Read ``scheme://host[:port]``.

        Raises:
            ValueError: the entry is not of that form.
        """
        found = _ENTRY.match(text.strip())
        if found is None:
            raise ValueError(f"egress_allow entry {text!r}: expected scheme://host[:port] with "
                             "scheme http or https, host a name, an IP, *.suffix or *, port a "
                             "number or *")
        scheme, host, port = found["scheme"], found["host"], found["port"]
        if "*" in host and not (host == "*" or (host.startswith("*.")
                                                and "*" not in host[2:] and len(host) > 2)):
            raise ValueError(f"egress_allow entry {text!r}: a host pattern is * or *.suffix")
        if port is None:
            number: int | None = _DEFAULT_PORTS[scheme]
        elif port == "*":
            number = None
        else:
            number = int(port)
            if not 0 < number < 65536:
                raise ValueError(f"egress_allow entry {text!r}: port {number} is out of range")
        pattern = host if host == "*" else ("*." + _host_key(host[2:]) if host.startswith("*.")
                                            else _host_key(host))
        return cls(scheme=scheme, host=pattern, port=number)

    def matches(self, scheme: str, host: str, port: int) -> bool:
        """Whether a URL's scheme, host (as :func:`_host_key` gives it) and port fit."""
        if scheme != self.scheme or (self.port is not None and port != self.port):
            return False
        if self.host == "*":
            return True
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host


def _embedded(ip: IPAddress) -> list[IPAddress]:
    """The address and any IPv4 address it carries (mapped, 6to4, NAT64, compatible)."""
    found: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            found.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            found.append(ip.sixtofour)
        if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
            found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _why_not_public(ip: IPAddress) -> str | None:
    """What kind of non-public address this is, or ``None`` for a public one."""
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global or ip.is_reserved:
        return "a non-public address"
    return None


async def _system_resolver(host: str, port: int) -> list[str]:
    import anyio

    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class EgressGuard:
    """What the hub may call: an allowlist of URLs and the non-public networks allowed.

    Args:
        allow: ``egress_allow`` entries (see the module docstring); empty allows nothing.
        allow_private: ``egress_allow_private`` networks, e.g. ``["127.0.0.1/32"]``.
        resolver: how names are resolved at connect time (the system's by default).

    Raises:
        ValueError: an entry or a network is malformed.
    """

    def __init__(self, allow: Iterable[str] = (), allow_private: Iterable[str] = (),
                 resolver: Resolver | None = None) -> None:
        self.allow = tuple(AllowEntry.parse(entry) for entry in allow)
        networks: list[IPNetwork] = []
        for network in allow_private:
            try:
                networks.append(ipaddress.ip_network(network.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"egress_allow_private entry {network!r}: expected a network "
                                 "such as 127.0.0.1/32 or fd00::/8") from exc
        self.allow_private = tuple(networks)
        self.resolver = resolver or _system_resolver

    # checks ------------------------------------------------------------------------------
    def check_url(self, url: str) -> httpx.URL:
        """The parsed URL when the allowlist admits it (and its host, if an IP literal or a
        metadata name, is an allowed address).

        Raises:
            EgressRefused: with the short reason.
        """
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise EgressRefused("refused: not a valid URL") from exc
        if parsed.scheme not in _DEFAULT_PORTS or not parsed.host:
            raise EgressRefused("refused: only http(s) URLs with a host are allowed")
        host = _host_key(parsed.host)
        port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
        if not any(entry.matches(parsed.scheme, host, port) for entry in self.allow):
            raise EgressRefused(f"refused: {origin_of(parsed)} is not in egress_allow")
        literal = _METADATA_NAMES.get(host, host)
        try:
            address = ipaddress.ip_address(literal)
        except ValueError:
            return parsed  # a name: checked when it is resolved, at connect time
        self.check_address(address)
        return parsed

    def check_address(self, address: str | IPAddress) -> None:
        """Refuse a non-public address unless ``egress_allow_private`` covers it.

        Raises:
            EgressRefused: ``refused: 10.0.0.5 is a private address``.
        """
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str)
                                  else address)
        forms = _embedded(ip)
        if any(form in network for form in forms for network in self.allow_private):
            return
        for form in [*forms[1:], ip]:  # the IPv4 address a v6 one carries says more
            why = _why_not_public(form)
            if why is not None:
                shown = str(ip) if form == ip else f"{ip} ({form})"
                raise EgressRefused(f"refused: {shown} is {why}")

    # clients -----------------------------------------------------------------------------
    def transport(self, *, verify: Any = True,
                  network: Any = None) -> httpx.AsyncHTTPTransport:
        """An httpx transport whose every connection passes :meth:`check_address` on the
        resolved address it goes to. ``network`` replaces the socket layer (an
        ``httpcore.AsyncNetworkBackend``; tests use a fake one).
        """
        return _GuardedTransport(self, verify=verify, network=network)

    def client(self, *, timeout: float, headers: dict[str, str] | None = None,
               verify: Any = True, network: Any = None) -> httpx.AsyncClient:
        """One client for an integration's lifetime: guarded, no redirects, no proxies from
        the environment (a proxy would connect for us, unchecked).
        """
        return httpx.AsyncClient(transport=self.transport(verify=verify, network=network),
                                 timeout=timeout, headers=headers, follow_redirects=False,
                                 trust_env=False)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (its error mapping included), its pool on a checking backend."""

    def __init__(self, guard: EgressGuard, *, verify: Any, network: Any) -> None:
        super().__init__(verify=verify, trust_env=False)
        inner = network if network is not None else httpcore.AnyIOBackend()
        # `_pool` is httpx's; it offers no other way to give the pool a network backend
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            network_backend=_GuardedBackend(guard, inner))


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve once, check every address, connect to a checked one."""

    def __init__(self, guard: EgressGuard, inner: httpcore.AsyncNetworkBackend) -> None:
        self.guard = guard
        self.inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        import anyio

        try:
            with anyio.fail_after(timeout):
                addresses = await self.guard.resolver(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve {host}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        for address in addresses:
            self.guard.check_address(address)
        failed: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(address, port, timeout=timeout,
                                                    local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failed = exc
        assert failed is not None
        raise failed

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("refused: unix sockets are not an allowed destination")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
