"""The demo services' admin API: faults set at run time, and the ledger of calls and effects."""

from collections.abc import Iterator

import grpc
import httpx
import pytest
from demo_services.fleet import Fleet, fleet

auth_protos, auth_services = grpc.protos_and_services("auth/v1/auth.proto")


@pytest.fixture(scope="module")
def services() -> Iterator[Fleet]:
    with fleet() as running:
        yield running


def test_http_faults_by_rate_and_the_ledger(services: Fleet) -> None:
    """Rate 1 fails every call, an empty spec clears it; only the successful call acted."""
    url = services.endpoints["crm_service"] + "/contacts"
    body = {"email": "a@b.c"}
    services.set_faults("crm", {"errors": {"POST /contacts": {"code": "HTTP_503", "rate": 1.0}}})
    assert httpx.post(url, json=body, headers={"Idempotency-Key": "k1"}).status_code == 503
    services.set_faults("crm", {})
    assert httpx.post(url, json=body, headers={"Idempotency-Key": "k1"}).status_code == 201
    ledger = services.ledger("crm")
    assert ledger["calls"]["POST /contacts"] == 2
    assert [(e["method"], e["key"]) for e in ledger["effects"]] == [("POST /contacts", "k1")]


def test_http_reset_drops_the_connection(services: Fleet) -> None:
    """RESET answers nothing: the client sees the connection dropped."""
    url = services.endpoints["crm_service"] + "/contacts"
    services.set_faults("crm", {"errors": {"POST /contacts": {"code": "RESET", "times": 1}}})
    with pytest.raises(httpx.TransportError):
        httpx.post(url, json={"email": "r@b.c"}, headers={"Idempotency-Key": "r1"})
    services.set_faults("crm", {})


def test_node_service_has_the_same_admin_api(services: Fleet) -> None:
    """The Node.js auth service: a seeded fault, then its ledger of calls and effects."""
    spec = {"seed": 1, "errors": {"CreateUser": {"code": "UNAVAILABLE", "rate": 1.0}}}
    services.set_faults("auth", spec)
    with grpc.insecure_channel(services.endpoints["auth_service"]) as channel:
        stub = auth_services.AuthServiceStub(channel)
        request = auth_protos.CreateUserRequest(email="n@b.c", password="pw")
        with pytest.raises(grpc.RpcError) as caught:
            stub.CreateUser(request, metadata=(("idempotency-key", "n1"),))
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        services.set_faults("auth", {})
        stub.CreateUser(request, metadata=(("idempotency-key", "n1"),))
        stub.CreateUser(request, metadata=(("idempotency-key", "n1"),))  # replayed: no effect
    ledger = services.ledger("auth")
    assert ledger["calls"]["CreateUser"] == 3
    assert [(e["method"], e["key"]) for e in ledger["effects"]] == [("CreateUser", "n1")]
