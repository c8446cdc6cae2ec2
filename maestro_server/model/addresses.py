"""Which network addresses a workflow may never make the server call, and reading hosts.

Link-local addresses (169.254.0.0/16, fe80::/10) are where cloud metadata services answer
(169.254.169.254 hands out the machine's credentials on AWS, GCP, Azure and others), with
AWS's IPv6 fd00:ec2::254 and Alibaba's 100.100.100.200 beside them. A server that calls them
for whoever submits a workflow gives its own identity away, so they are refused unless the
operator names the endpoints allowed (`--allow-endpoint`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from maestro_server.model.workflow import ServiceType

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_FORBIDDEN: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("169.254.0.0/16"), "a link-local address (169.254.0.0/16)"),
    (ipaddress.ip_network("fe80::/10"), "a link-local address (fe80::/10)"),
    (ipaddress.ip_network("fd00:ec2::254/128"), "a cloud metadata address (fd00:ec2::254)"),
    (ipaddress.ip_network("100.100.100.200/32"), "a cloud metadata address (100.100.100.200)"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# What inet_aton takes as an IPv4 address besides the dotted quad: 2852039166, 0xa9fea9fe,
# 169.254.43518, 0251.0376.0251.0376. A URL host written so still reaches the address.
_NUMERIC_HOST = re.compile(r"[0-9][0-9a-fA-FxX.]*")
_GRPC_TARGET = re.compile(r"(?:dns:///)?(?P<host>\[[^\]]*\]|[^:]+):(?P<port>[0-9]+)")


def literal_address(host: str) -> IpAddress | None:
    """The IP address a host names literally (brackets, legacy IPv4 forms); None for a name."""
    text = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def forbidden_reason(address: IpAddress) -> str | None:
    """Why a workflow may not call this address by default, or None when it may."""
    candidates: list[IpAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        # The same IPv4 address reached through IPv6: mapped, NAT64, 6to4 or compatible.
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address in _NAT64 or int(address) >> 32 == 0:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        candidates += [ip for ip in embedded if ip is not None]
    for candidate in candidates:
        for network, reason in _FORBIDDEN:
            if candidate.version == network.version and candidate in network:
                return reason
    return None


def endpoint_host(endpoint: str, kind: ServiceType) -> tuple[str, int] | None:
    """The host (without brackets) and port a service endpoint connects to."""
    if kind is ServiceType.HTTP:
        try:
            parts = urlsplit(endpoint)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return None
        return (parts.hostname, port) if parts.hostname else None
    match = _GRPC_TARGET.fullmatch(endpoint)
    if match is None:
        return None
    return match.group("host").strip("[]"), int(match.group("port"))


def is_loopback_host(host: str) -> bool:
    """Whether a bind address reaches this machine only: `localhost` or a loopback address."""
    if host.strip("[]").lower().rstrip(".") == "localhost":
        return True
    address = literal_address(host)
    return address is not None and address.is_loopback
