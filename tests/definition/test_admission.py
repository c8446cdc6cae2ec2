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
