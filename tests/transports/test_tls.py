"""TLS and mTLS towards downstream services, with certificates made for the test (trustme)."""

import ssl
from collections.abc import AsyncIterator

import grpc
import pytest
import trustme

from maestro_server.definition import load_workflow
from maestro_server.model.workflow import GrpcMethod, Service
from maestro_server.transports.base import Call, CallError, HttpTarget, Request
from maestro_server.transports.registry import Transports
from tests.transports.http_server import scripted_http
from tests.transports.servers import echo_server

CA = trustme.CA()
SERVER = CA.issue_cert("localhost")
CLIENT = CA.issue_cert("maestro-client")
SECRETS = {
    "CLIENT_CERT": CLIENT.cert_chain_pems[0].bytes().decode(),
    "CLIENT_KEY": CLIENT.private_key_pem.bytes().decode(),
}


def service(kind: str, endpoint: str, tls: str) -> Service:
    workflow = load_workflow(
        f"""\
name: t
services:
  s: {{type: {kind}, endpoint: "{endpoint}"{tls}}}
steps:
  - {{id: a, service: s, method: {"Barrier" if kind == "grpc" else "POST /x"}}}
""",
        files={"ca.pem": CA.cert_pem.bytes()},
    )
    return workflow.services["s"]


def grpc_call(target: Service) -> Call:
    return Call(Request(target, GrpcMethod("Barrier"), {"parties": 1}, {}, "e:a"), 1, 5.0)


@pytest.fixture
async def transports() -> AsyncIterator[Transports]:
    async with Transports(SECRETS) as running:
        yield running


def server_credentials(require_client: bool) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(SERVER.private_key_pem.bytes(), SERVER.cert_chain_pems[0].bytes())],
        root_certificates=CA.cert_pem.bytes() if require_client else None,
        require_client_auth=require_client,
    )


async def test_grpc_over_tls_with_a_private_ca(transports: Transports) -> None:
    """`tls: {ca_file, server_name}` trusts the service's own CA; plaintext cannot talk to it."""
    async with echo_server(credentials=server_credentials(False)) as (endpoint, _):
        secure = service("grpc", endpoint, ", tls: {ca_file: ca.pem, server_name: localhost}")
        assert await transports.invoke(grpc_call(secure)) == {"max_in_flight": 1}
        with pytest.raises(CallError) as caught:
            await transports.invoke(grpc_call(service("grpc", endpoint, "")))
        assert caught.value.code == "UNAVAILABLE"


async def test_grpc_mtls_sends_the_client_certificate_from_secrets(transports: Transports) -> None:
    """With client_cert_secret and client_key_secret, a server requiring mTLS answers."""
    async with echo_server(credentials=server_credentials(True)) as (endpoint, _):
        mtls = service(
            "grpc",
            endpoint,
            ", tls: {ca_file: ca.pem, server_name: localhost, "
            "client_cert_secret: CLIENT_CERT, client_key_secret: CLIENT_KEY}",
        )
        assert await transports.invoke(grpc_call(mtls)) == {"max_in_flight": 1}
        anonymous = service("grpc", endpoint, ", tls: {ca_file: ca.pem, server_name: localhost}")
        with pytest.raises(CallError):
            await transports.invoke(grpc_call(anonymous))


async def test_https_with_a_private_ca(transports: Transports) -> None:
    """An HTTPS service with a private CA: trusted through ca_file, by its certificate's name."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    SERVER.configure_cert(context)
    with scripted_http(tls=context) as http:
        http.answer("POST /x", 200, {"ok": True})
        endpoint = http.url.replace("127.0.0.1", "localhost")
        target = service("http", endpoint, ", tls: {ca_file: ca.pem}")
        request = Request(target, HttpTarget("POST", "/x"), {}, {}, "e:a")
        assert await transports.invoke(Call(request, 1, 5.0)) == {"ok": True}
        untrusted = service("http", endpoint, "")
        with pytest.raises(CallError) as caught:
            await transports.invoke(
                Call(Request(untrusted, HttpTarget("POST", "/x"), {}, {}, "e:a"), 1, 5.0)
            )
        assert caught.value.code == "UNAVAILABLE"
