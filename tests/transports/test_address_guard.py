"""The call-time guard: names are checked against the addresses they resolve to.

No packet ever goes to a link-local or metadata address here: names are resolved by an
injected resolver, and where the guard must refuse, the transport behind it fails the test if
it is ever reached. Only loopback is a real target.
"""

import socket
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from maestro_server.definition import load_workflow
from maestro_server.model.workflow import GrpcMethod, Service, ServiceType
from maestro_server.transports.aiohttp_transport import ExactUrlTransport, GuardedResolver
from maestro_server.transports.base import Call, CallError, HttpTarget, Request
from maestro_server.transports.grpc.invoker import GrpcInvoker
from maestro_server.transports.guard import AddressGuard, ForbiddenAddressError
from maestro_server.transports.http import HttpInvoker
from tests.transports.http_server import scripted_http


class Resolver:
    """Answers from a table; records what it was asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"{host}: no such name")
        return self.table[host]


class Unreachable(httpx.AsyncBaseTransport):
    """A transport the guard must never let a request reach."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pytest.fail(f"the guard let a request through to {request.url}")


class Recording(httpx.AsyncBaseTransport):
    """A transport that answers 200 and keeps the URLs it was given."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        return httpx.Response(200, json={"ok": True})


def service(kind: ServiceType, endpoint: str) -> Service:
    """A service of a valid workflow, pointed at `endpoint` (as `maestro execute --endpoint`)."""
    http = kind is ServiceType.HTTP
    workflow = load_workflow(f"""\
name: t
services:
  svc: {{type: {kind}, endpoint: "{"http://crm.example" if http else "crm.example:1"}"}}
steps:
  - {{id: a, service: svc, method: "{"POST /x" if http else "Do"}"}}
""")
    return workflow.with_endpoints({"svc": endpoint}).services["svc"]


def call(target: Service) -> Call:
    method = HttpTarget("POST", "/x") if target.type is ServiceType.HTTP else GrpcMethod("Do")
    return Call(Request(target, method, {}, {}, "ex:a"), 1, 5.0)


HTTP, GRPC = ServiceType.HTTP, ServiceType.GRPC
FORBIDDEN = [
    pytest.param(["169.254.169.254"], id="AWS-GCP-Azure metadata"),
    pytest.param(["10.0.0.5", "169.254.10.1"], id="one link-local answer among others"),
    pytest.param(["fe80::1"], id="IPv6 link-local"),
    pytest.param(["fd00:ec2::254"], id="AWS IPv6 metadata"),
    pytest.param(["::ffff:169.254.169.254"], id="IPv4-mapped"),
]


@pytest.mark.parametrize("answer", FORBIDDEN)
async def test_http_name_resolving_to_a_forbidden_address_is_refused(answer: list[str]) -> None:
    """The call fails with ENDPOINT_NOT_ALLOWED, not in doubt, and nothing is sent."""
    resolver = Resolver({"metadata.test": answer})
    invoker = HttpInvoker(guard=AddressGuard(resolver), transport=Unreachable())
    with pytest.raises(CallError) as caught:
        await invoker.invoke(call(service(HTTP, "http://metadata.test")))
    error = caught.value
    assert error.code == "ENDPOINT_NOT_ALLOWED"
    assert not error.maybe_executed and not error.counts_for_breaker
    assert "metadata.test resolves to" in error.message and "--allow-endpoint" in error.message
    assert resolver.asked == ["metadata.test"]
    await invoker.close()


@pytest.mark.parametrize("answer", FORBIDDEN)
async def test_grpc_name_resolving_to_a_forbidden_address_is_refused(answer: list[str]) -> None:
    """The same for gRPC: refused before any channel is made."""

    class NoChannels(GrpcInvoker):
        def channel(self, service: Service) -> Any:
            pytest.fail("the guard let a gRPC call through")

    invoker = NoChannels(guard=AddressGuard(Resolver({"metadata.test": answer})))
    with pytest.raises(CallError) as caught:
        await invoker.invoke(call(service(GRPC, "dns:///metadata.test:80")))
    assert caught.value.code == "ENDPOINT_NOT_ALLOWED"
    assert not caught.value.maybe_executed


@pytest.mark.parametrize(
    "endpoint",
    ["http://169.254.169.254", "http://[fe80::1]:8080", "http://2852039166", "http://0xa9fea9fe"],
)
async def test_literal_addresses_are_refused_without_resolving(endpoint: str) -> None:
    """An endpoint that is itself a forbidden address (in any spelling) needs no lookup."""
    resolver = Resolver({})
    invoker = HttpInvoker(guard=AddressGuard(resolver), transport=Unreachable())
    with pytest.raises(CallError) as caught:
        await invoker.invoke(call(service(HTTP, endpoint)))
    assert caught.value.code == "ENDPOINT_NOT_ALLOWED"
    assert resolver.asked == []


async def test_a_name_resolving_to_loopback_is_called() -> None:
    """Allowed answers let the call through, with the URL as rendered."""
    transport = Recording()
    invoker = HttpInvoker(
        guard=AddressGuard(Resolver({"crm.test": ["127.0.0.1", "::1"]})), transport=transport
    )
    assert await invoker.invoke(call(service(HTTP, "http://crm.test:8080"))) == {"ok": True}
    assert transport.urls == ["http://crm.test:8080/x"]


async def test_a_name_that_resolves_there_later_is_refused() -> None:
    """Answers are checked again once the cached one expires: a name re-pointed at the
    metadata address is refused from then on."""
    now = [0.0]
    table = {"crm.test": ["127.0.0.1"]}
    transport = Recording()
    guard = AddressGuard(Resolver(table), clock=lambda: now[0])
    invoker = HttpInvoker(guard=guard, transport=transport)
    target = service(HTTP, "http://crm.test")
    await invoker.invoke(call(target))
    table["crm.test"] = ["169.254.169.254"]
    now[0] = 60.0
    with pytest.raises(CallError) as caught:
        await invoker.invoke(call(target))
    assert caught.value.code == "ENDPOINT_NOT_ALLOWED"
    assert len(transport.urls) == 1


async def test_a_name_that_does_not_resolve_is_left_to_the_transport() -> None:
    """The guard refuses only what it saw; an unknown name fails as a connection failure."""
    transport = Recording()
    invoker = HttpInvoker(guard=AddressGuard(Resolver({})), transport=transport)
    await invoker.invoke(call(service(HTTP, "http://gone.test")))
    assert transport.urls == ["http://gone.test/x"]


async def test_without_the_guard_the_allow_list_decides() -> None:
    """A server with --allow-endpoint runs without the guard: nothing is resolved here."""
    transport = Recording()
    invoker = HttpInvoker(guard=None, transport=transport)
    await invoker.invoke(call(service(HTTP, "http://169.254.169.254")))
    assert transport.urls == ["http://169.254.169.254/x"]


class TableResolver(AbstractResolver):
    """aiohttp's resolver interface over a table (the inner resolver of a GuardedResolver)."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.table[host]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=family, proto=0, flags=flags
            )
        ]

    async def close(self) -> None:
        pass


async def test_the_connector_resolves_through_the_guard() -> None:
    """The HTTP transport connects only where the guarded resolver says: a name it maps to
    loopback reaches the real server there."""
    with scripted_http() as http:
        http.answer("POST /x", 200, {"reached": True})
        port = http.url.rsplit(":", 1)[1]
        transport = ExactUrlTransport(
            verify=True,
            limits=httpx.Limits(),
            resolver=GuardedResolver(TableResolver({"crm.test": "127.0.0.1"})),
        )
        invoker = HttpInvoker(guard=None, transport=transport)
        reply = await invoker.invoke(call(service(HTTP, f"http://crm.test:{port}")))
        await invoker.close()
        await transport.aclose()
    assert reply == {"reached": True}
    assert http.received[0].headers["host"] == f"crm.test:{port}"


@pytest.mark.parametrize("address", ["169.254.169.254", "fe80::1", "fd00:ec2::254"])
async def test_the_guarded_resolver_refuses_forbidden_answers(address: str) -> None:
    """What aiohttp is about to connect to is checked: a refused answer is an error, before
    any connection."""
    resolver = GuardedResolver(TableResolver({"metadata.test": address}))
    with pytest.raises(ForbiddenAddressError, match=f"resolves to {address}"):
        await resolver.resolve("metadata.test", 80)
