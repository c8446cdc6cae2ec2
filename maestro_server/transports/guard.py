"""The call-time guard: a service's host is checked against the addresses it resolves to.

Validation refuses endpoints written as link-local or cloud-metadata addresses; a name can
still resolve there (a DNS record pointing at 169.254.169.254, now or later), so before each
call the name is resolved and every address it gives is checked. The HTTP transport connects
only to addresses that passed (its resolver asks this guard); gRPC resolves again on its own,
so for gRPC the check is made on the same answer the system resolver gives at call time.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from maestro_server.model.addresses import (
    endpoint_host,
    forbidden_reason,
    literal_address,
)
from maestro_server.model.workflow import Service
from maestro_server.transports.base import CallError

ENDPOINT_NOT_ALLOWED = "ENDPOINT_NOT_ALLOWED"
_CACHE_SECONDS = 10.0  # as long as aiohttp keeps a DNS answer
_CACHE_ENTRIES = 4096  # workflows name the hosts: a bound, whatever they send


class Resolver(Protocol):
    """Resolves a host name to IP addresses (as text)."""

    async def resolve(self, host: str, port: int) -> Sequence[str]:
        """Every address `host` resolves to; OSError when it does not resolve."""
        ...


class SystemResolver:
    """The system's resolver (getaddrinfo), off the event loop."""

    async def resolve(self, host: str, port: int) -> Sequence[str]:
        """Every address `host` resolves to, for TCP."""
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


class AddressGuard:
    """Refuses hosts that are, or resolve to, link-local or cloud-metadata addresses."""

    def __init__(
        self,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolver: Resolver = resolver or SystemResolver()
        self._clock = clock
        self._checked: dict[tuple[str, int], tuple[float, Sequence[str]]] = {}
        # Endpoints that passed, until when: a literal address for good, a name as long as its
        # answer is cached. Saves parsing the endpoint and its addresses on every call.
        self._passed: dict[tuple[str, str], float] = {}

    async def check(self, service: Service) -> None:
        """Raise CallError (ENDPOINT_NOT_ALLOWED, nothing sent) for a forbidden endpoint.

        A name that does not resolve passes: the transport then fails to connect as usual.
        """
        key = (service.type, service.endpoint)
        until = self._passed.get(key)
        if until is not None and until > self._clock():
            return
        target = endpoint_host(service.endpoint, service.type)
        if target is None:
            return
        try:
            await self.addresses(*target)
        except ForbiddenAddressError as exc:
            raise CallError(
                ENDPOINT_NOT_ALLOWED,
                f"service '{service.name}' at {service.endpoint}: {exc}",
                service=service.name,
            ) from None
        except OSError:
            return
        host, port = target
        until = math.inf  # a literal address is what it is
        if literal_address(host) is None:
            cached = self._checked.get((host.lower(), port))
            if cached is None:
                return
            until = cached[0]  # a name: checked again once its answer is
        if len(self._passed) >= _CACHE_ENTRIES:
            self._passed.clear()
        self._passed[key] = until

    async def addresses(self, host: str, port: int) -> Sequence[str]:
        """The checked addresses of `host`; ForbiddenAddressError, or OSError if unresolved."""
        literal = literal_address(host)
        if literal is not None:
            _refuse(host, [str(literal)])
            return [str(literal)]
        key, now = (host.lower(), port), self._clock()
        cached = self._checked.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self.resolver.resolve(host, port)
        _refuse(host, found)
        if len(self._checked) >= _CACHE_ENTRIES:
            self._checked.clear()
        self._checked[key] = (now + _CACHE_SECONDS, found)
        return found


SYSTEM_GUARD = AddressGuard()
"""The guard on the system's resolver, shared by the invokers that are not given another."""


class ForbiddenAddressError(OSError):
    """A host is, or resolves to, an address workflows may not call."""


def _refuse(host: str, addresses: Sequence[str]) -> None:
    for text in addresses:
        address = literal_address(text)
        reason = forbidden_reason(address) if address is not None else None
        if reason is not None:
            said = "is" if host.strip("[]") == text else f"resolves to {text},"
            raise ForbiddenAddressError(
                f"refused: {host} {said} {reason}; link-local and cloud-metadata addresses "
                "are not called unless the server's --allow-endpoint allows them"
            )
