"""The server's admission policy: allowed endpoints and the step limit."""

import pytest

from maestro_server.definition import load_workflow
from maestro_server.definition.admission import AdmissionPolicy
from maestro_server.errors import InvalidWorkflowError
from maestro_server.model.workflow import Workflow

WORKFLOW = """\
name: w
services:
  grpc_svc: {{type: grpc, endpoint: "{grpc}"}}
  http_svc: {{type: http, endpoint: "{http}"}}
steps:
{steps}
"""


def workflow(
    grpc: str = "billing.svc.cluster.local:50051",
    http: str = "https://crm.example.com",
    steps: int = 1,
) -> Workflow:
    body = "\n".join(f"  - {{id: s{n}, service: grpc_svc, method: M}}" for n in range(steps))
    return load_workflow(WORKFLOW.format(grpc=grpc, http=http, steps=body))


@pytest.mark.parametrize(
    ("patterns", "grpc", "http", "allowed"),
    [
        pytest.param((), "anything:1", "http://anything", True, id="no patterns allow all"),
        pytest.param(
            ("*.svc.cluster.local:*", "https://crm.example.com"),
            "billing.svc.cluster.local:50051",
            "https://crm.example.com",
            True,
            id="cluster and one https host",
        ),
        pytest.param(
            ("*.svc.cluster.local:*", "crm.example.com:443"),
            "billing.svc.cluster.local:50051",
            "https://crm.example.com",
            True,
            id="https host by host:port",
        ),
        pytest.param(
            ("*.svc.cluster.local:*",),
            "169.254.169.254:80",
            "https://crm.example.com",
            False,
            id="metadata address refused",
        ),
        pytest.param(
            ("*.svc.cluster.local:*", "https://crm.example.com"),
            "dns:///billing.svc.cluster.local:50051",
            "http://crm.example.com",
            False,
            id="plain http is not https",
        ),
    ],
)
def test_allowed_endpoints(patterns: tuple[str, ...], grpc: str, http: str, allowed: bool) -> None:
    """Endpoints are matched against glob patterns, URLs also as host and host:port."""
    policy = AdmissionPolicy(patterns)
    if allowed:
        policy.check(workflow(grpc, http))
        return
    with pytest.raises(InvalidWorkflowError, match="is not allowed by this server"):
        policy.check(workflow(grpc, http))


def test_step_limit() -> None:
    """A workflow with more steps than the server runs is refused, naming the limit."""
    with pytest.raises(InvalidWorkflowError, match="12 steps; this server runs at most 10"):
        AdmissionPolicy(max_steps=10).check(workflow(steps=12))


@pytest.mark.parametrize(
    ("grpc", "http", "reason"),
    [
        pytest.param("billing:1", "http://169.254.169.254", "169.254.0.0/16", id="metadata IPv4"),
        pytest.param("billing:1", "http://[fe80::1]:8080", "fe80::/10", id="link-local IPv6"),
        pytest.param("[fd00:ec2::254]:80", "http://crm", "fd00:ec2::254", id="AWS IPv6 metadata"),
        pytest.param("billing:1", "http://2852039166/latest", "169.254.0.0/16", id="decimal form"),
        pytest.param("0xa9fea9fe:80", "http://crm", "169.254.0.0/16", id="hex form"),
        pytest.param(
            "[::ffff:169.254.169.254]:80", "http://crm", "169.254.0.0/16", id="IPv4-mapped"
        ),
    ],
)
def test_metadata_addresses_are_refused_without_an_allow_list(
    grpc: str, http: str, reason: str
) -> None:
    """Without --allow-endpoint, an endpoint written as a link-local or metadata address is
    refused at the endpoint's own line and column."""
    with pytest.raises(InvalidWorkflowError) as caught:
        AdmissionPolicy().check(workflow(grpc, http))
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "forbidden-address"
    assert reason in diagnostic.message and "--allow-endpoint" in diagnostic.message
    line = 3 if diagnostic.path == "services.grpc_svc.endpoint" else 4
    assert (diagnostic.location.line, diagnostic.location.column) == (line, 36)  # the quote


def test_with_an_allow_list_the_list_decides() -> None:
    """An operator's allow-list is the rule: it may name a link-local service on purpose."""
    AdmissionPolicy(("169.254.170.2:*", "http://crm")).check(
        workflow("169.254.170.2:80", "http://crm")
    )
    assert not AdmissionPolicy(("*",)).guards_addresses
    assert AdmissionPolicy().guards_addresses


def test_ordinary_addresses_pass() -> None:
    """Loopback, private and public addresses are not the guard's business."""
    AdmissionPolicy().check(workflow("10.0.0.7:50051", "http://127.0.0.1:8080"))
