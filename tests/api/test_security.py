"""Security of `maestro serve`: TLS and mTLS, bearer tokens, the endpoint allow-list, secrets."""

from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from maestro_client import (
    EventType,
    InvalidArgumentError,
    MaestroClient,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
)
from tests.api.conftest import INPUT, maestro_serve, onboarding_yaml
from tests.transports.http_server import scripted_http

VALID = "name: w\n"  # an invalid workflow: validate answers with diagnostics, no error


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_files(ca: trustme.CA, tmp_path: Path) -> dict[str, Path]:
    server = ca.issue_cert("localhost", "127.0.0.1")
    files = {
        "cert": tmp_path / "server.pem",
        "key": tmp_path / "server.key",
        "ca": tmp_path / "ca.pem",
    }
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    ca.cert_pem.write_to_path(str(files["ca"]))
    return files


async def test_tls_with_the_right_ca_and_refused_with_a_wrong_one(
    ca: trustme.CA, tmp_path: Path
) -> None:
    """A client trusting the server's CA talks; one trusting another CA cannot connect."""
    files = tls_files(ca, tmp_path)
    with maestro_serve("--tls-cert", str(files["cert"]), "--tls-key", str(files["key"])) as server:
        address = server.address.replace("127.0.0.1", "localhost")
        good = grpc.ssl_channel_credentials(ca.cert_pem.bytes())
        async with MaestroClient(address, credentials=good, timeout=10) as client:
            assert not (await client.validate(VALID)).valid
        bad = grpc.ssl_channel_credentials(trustme.CA().cert_pem.bytes())
        async with MaestroClient(address, credentials=bad, timeout=5) as client:
            with pytest.raises(UnavailableError):
                await client.validate(VALID)


async def test_mtls_requires_a_client_certificate(ca: trustme.CA, tmp_path: Path) -> None:
    """With --tls-client-ca, only clients with a certificate from that CA get in."""
    files = tls_files(ca, tmp_path)
    client_cert = ca.issue_cert("client@example.com")
    with maestro_serve(
        "--tls-cert",
        str(files["cert"]),
        "--tls-key",
        str(files["key"]),
        "--tls-client-ca",
        str(files["ca"]),
    ) as server:
        address = server.address.replace("127.0.0.1", "localhost")
        anonymous = grpc.ssl_channel_credentials(ca.cert_pem.bytes())
        async with MaestroClient(address, credentials=anonymous, timeout=5) as client:
            with pytest.raises(UnavailableError):
                await client.validate(VALID)
        known = grpc.ssl_channel_credentials(
            ca.cert_pem.bytes(),
            client_cert.private_key_pem.bytes(),
            client_cert.cert_chain_pems[0].bytes(),
        )
        async with MaestroClient(address, credentials=known, timeout=10) as client:
            assert not (await client.validate(VALID)).valid


async def test_bearer_tokens(tmp_path: Path, service_processes: dict[str, str]) -> None:
    """No token: UNAUTHENTICATED (health still answers); a read token may look, not start."""
    tokens = tmp_path / "tokens"
    tokens.write_text("# who may call\nadmin-token\nviewer-token read\n")
    with maestro_serve("--auth-token-file", str(tokens)) as server:
        async with MaestroClient(server.address) as anonymous:
            with pytest.raises(
                UnauthenticatedError, match="missing or unknown bearer token"
            ) as anonymous_refused:
                await anonymous.validate(VALID)
            assert anonymous_refused.value.reason == "TOKEN_INVALID"
        async with MaestroClient(server.address, token="wrong") as stranger:
            with pytest.raises(UnauthenticatedError):
                await stranger.get("x")
        with grpc.insecure_channel(server.address) as channel:
            status = (
                health_pb2_grpc.HealthStub(channel)
                .Check(  # type: ignore[attr-defined]
                    health_pb2.HealthCheckRequest(), timeout=5
                )
                .status
            )
            assert status == health_pb2.HealthCheckResponse.SERVING
        async with MaestroClient(server.address, token="admin-token") as admin:
            events = [e async for e in admin.execute(onboarding_yaml(service_processes), INPUT)]
            assert events[-1].type == EventType.WORKFLOW_COMPLETED
        async with MaestroClient(server.address, token="viewer-token") as viewer:
            assert (await viewer.get(events[0].execution_id)).execution_id == events[0].execution_id
            with pytest.raises(PermissionDeniedError, match="this token may only read"):
                await viewer.start(onboarding_yaml(service_processes), INPUT)
            with pytest.raises(PermissionDeniedError) as viewer_refused:
                [e async for e in viewer.execute(onboarding_yaml(service_processes), INPUT)]
            assert viewer_refused.value.reason == "TOKEN_READ_ONLY"


async def test_endpoints_outside_the_allow_list_are_rejected(
    service_processes: dict[str, str],
) -> None:
    """A workflow naming an endpoint the server does not allow is refused before it runs."""
    with maestro_serve(
        "--allow-endpoint", "127.0.0.1:*", "--allow-endpoint", "http://127.0.0.1"
    ) as server:
        async with MaestroClient(server.address) as client:
            evil = onboarding_yaml(service_processes).replace(
                service_processes["billing_service"], "metadata.internal:80"
            )
            with pytest.raises(InvalidArgumentError) as caught:
                await client.start(evil, INPUT)
            ((where, what),) = caught.value.violations
            assert where.startswith("workflow.yaml:")
            assert what.startswith(
                "endpoint 'metadata.internal:80' of service 'billing_service' "
                "is not allowed by this server"
            )
            events = [e async for e in client.execute(onboarding_yaml(service_processes), INPUT)]
            assert events[-1].type == EventType.WORKFLOW_COMPLETED


async def test_secrets_reach_the_service_but_never_the_log_or_the_store(tmp_path: Path) -> None:
    """A secret read in headers is sent, redacted when echoed back, and found nowhere else."""
    canary = "s3cr3t-canary-7f2c"
    db = tmp_path / "maestro.db"
    with scripted_http() as http:
        http.answer("POST /charge", 200, {"ok": True})
        http.answer("POST /refund", 400, {"error": f"bad key {canary}"})
        yaml = f"""\
name: paid
services:
  payments:
    type: http
    endpoint: "{http.url}"
    headers: {{x-api-key: "{{{{ .secrets.API_KEY }}}}"}}
steps:
  - {{id: charge, service: payments, method: POST /charge, input: {{amount: 5}}}}
  - {{id: refund, service: payments, method: POST /refund}}
"""
        with maestro_serve(
            f"--store=sqlite:///{db}", env={"MAESTRO_SECRET_API_KEY": canary}
        ) as server:
            async with MaestroClient(server.address) as client:
                events = [e async for e in client.execute(yaml, {})]
            server.terminate()
            log_text = server.stderr_text()
        assert http.received[0].headers["x-api-key"] == canary
    failed = next(e for e in events if e.type == EventType.STEP_FAILED)
    assert failed.error is not None and "[redacted]" in failed.error.message
    assert canary not in repr(events)
    assert canary not in log_text
    for path in tmp_path.glob("maestro.db*"):
        assert canary.encode() not in path.read_bytes(), path.name
