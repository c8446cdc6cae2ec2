"""Caught before anything runs, against the onboarding example's real services.

`maestro validate --reflect` and `maestro serve --validate-with-reflection` check a workflow
against the schemas its gRPC services give by server reflection; a start whose input lacks what
the workflow reads (or holds a type a field refuses) is refused at the door through the CLI,
gRPC and the SDK. The services' own ledgers show that none of this called them.
"""

import asyncio
import json
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from demo_services.fleet import Fleet, fleet
from google.protobuf import struct_pb2

import maestro_client
from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server._proto.maestro.v1 import orchestrator_pb2_grpc as rpc
from tests.api.conftest import ServerProcess, maestro_serve
from tests.conftest import EXAMPLE, maestro

INPUT = json.loads((EXAMPLE / "input.json").read_text())
WITHOUT_PLAN = {key: value for key, value in INPUT.items() if key != "plan"}
MISSING_PLAN = ".input.plan is missing, and step 'setup_subscription' (input.plan) reads it"
BROKEN = [
    (
        '      email: "{{ .input.email }}"\n      password',
        '      emial: "{{ .input.email }}"\n      password',
    ),
    ("{{ .subscription.plan_name }}", "{{ .subscription.plan_nme }}"),
]


@pytest.fixture(scope="module")
def services() -> Iterator[Fleet]:
    with fleet() as running:
        yield running


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with maestro_serve("--validate-with-reflection") as running:
        yield running


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[rpc.OrchestratorStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield rpc.OrchestratorStub(channel)


def no_calls(services: Fleet) -> None:
    """Not one call reached any of the four services."""
    for name in ("auth", "billing", "crm", "email"):
        ledger = services.ledger(name)
        assert not any(ledger["calls"].values()), (name, ledger["calls"])
        assert ledger["effects"] == [], name


def pointed(services: Fleet, text: str | None = None) -> str:
    """The example's YAML with its endpoints on the running services."""
    text = text if text is not None else (EXAMPLE / "workflow.yaml").read_text()
    for name, address in services.endpoints.items():
        original = {
            "auth_service": "auth-service:50051",
            "billing_service": "billing-service:50052",
            "crm_service": "http://crm-api:8080",
            "email_service": "email-service:50053",
        }[name]
        text = text.replace(f'"{original}"', f'"{address}"')
    return text


def broken(tmp_path: Path, services: Fleet | None = None) -> Path:
    text = (EXAMPLE / "workflow.yaml").read_text()
    for old, new in BROKEN:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "broken.yaml"
    path.write_text(pointed(services, text) if services is not None else text)
    return path


def endpoint_flags(services: Fleet) -> list[str]:
    return [f"--endpoint={name}={address}" for name, address in services.endpoints.items()]


def test_validate_reflect_checks_against_the_services_own_schemas(
    services: Fleet, tmp_path: Path
) -> None:
    """Unknown request fields and response fields are found by line and column, through
    reflection alone; the example itself is clean."""
    path = broken(tmp_path)
    result = maestro("validate", "--reflect", *endpoint_flags(services), path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{path}:29:7: error: 'emial' is not a field of auth.v1.CreateUserRequest "
        "(did you mean 'email'?)",
        f"{path}:64:19: error: template reads .subscription.plan_nme, which step "
        "'setup_subscription' does not return: billing.v1.Subscription has no field "
        "'plan_nme' (did you mean 'plan_name'?)",
        f"{path}: 2 errors",
    ]
    assert maestro("validate", path).returncode == 0, "without --reflect there is no schema"
    clean = maestro("validate", "--reflect", *endpoint_flags(services), EXAMPLE / "workflow.yaml")
    assert clean.returncode == 0, clean.stderr
    no_calls(services)


def test_validate_reflect_says_which_service_it_could_not_read(tmp_path: Path) -> None:
    """A service that cannot be reached: an error at the service, naming why."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nobody listens there
    path = tmp_path / "w.yaml"
    path.write_text(
        f'name: w\nservices:\n  auth: {{type: grpc, endpoint: "127.0.0.1:{port}"}}\n'
        "steps:\n  - {id: a, service: auth, method: CreateUser}\n"
    )
    result = maestro("validate", "--reflect", path)
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(
        f"{path}:3:9: error: service 'auth' at 127.0.0.1:{port}: cannot read its schema by "
        "server reflection: UNAVAILABLE"
    )


def test_explain_shows_the_request_before_it_is_sent(services: Fleet) -> None:
    """The rendered request with the example input, earlier outputs as stand-ins, the message
    it is checked against, and whether it fits."""
    result = maestro(
        "validate",
        "--reflect",
        *endpoint_flags(services),
        "--input-file",
        EXAMPLE / "input.json",
        "--explain",
        "setup_subscription",
        EXAMPLE / "workflow.yaml",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("request, rendered with the example input (earlier outputs are stand-ins):")
    assert lines[:start] == [
        f"{EXAMPLE / 'workflow.yaml'}: ok (user_onboarding 1.0: 4 services, 4 steps, "
        "2 compensations)",
        "step setup_subscription: service billing_service (grpc billing-service:50052)",
        "method billing.v1.BillingService/CreateSubscription",
    ]
    end = lines.index("checked against billing.v1.CreateSubscriptionRequest:")
    assert json.loads("\n".join(lines[start + 1 : end])) == {"user_id": "<user.id>", "plan": "pro"}
    assert lines[end + 1 :] == [
        "  string user_id = 1;",
        "  string plan = 2;",
        "the request fits billing.v1.CreateSubscriptionRequest",
    ]
    no_calls(services)


def test_registration_checks_against_reflected_schemas(
    services: Fleet, stub: rpc.OrchestratorStub, tmp_path: Path
) -> None:
    """`serve --validate-with-reflection`: RegisterWorkflow and ValidateWorkflow refuse what
    the services' schemas refuse, located; the example registers."""
    yaml = broken(tmp_path, services).read_text()
    request = pb.RegisterWorkflowRequest(workflow_yaml=yaml, workflow_path="broken.yaml")
    with pytest.raises(grpc.RpcError) as caught:
        stub.RegisterWorkflow(request, timeout=30)
    error: Any = caught.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "broken.yaml:29:7: error: 'emial' is not a field of auth.v1.CreateUserRequest" in (
        error.details()
    )
    reply = stub.ValidateWorkflow(
        pb.ValidateWorkflowRequest(workflow_yaml=yaml, workflow_path="broken.yaml"), timeout=30
    )
    assert [(d.line, d.column, d.code) for d in reply.diagnostics] == [
        (29, 7, "unknown-field"),
        (64, 19, "unknown-field"),
    ]
    registered = stub.RegisterWorkflow(
        pb.RegisterWorkflowRequest(workflow_yaml=pointed(services)), timeout=30
    )
    assert registered.workflow.name == "user_onboarding"
    no_calls(services)


def test_a_start_missing_a_needed_input_is_refused_everywhere(
    services: Fleet, stub: rpc.OrchestratorStub, server: ServerProcess, tmp_path: Path
) -> None:
    """The example reads .input.plan unconditionally: without it, `maestro execute` exits 1,
    StartWorkflow and ExecuteWorkflow are INVALID_ARGUMENT and the SDK raises
    InvalidArgumentError, each naming the path and the step; nothing is stored or called."""
    local = maestro(
        "execute",
        EXAMPLE / "workflow.yaml",
        "--input",
        json.dumps(WITHOUT_PLAN),
        *endpoint_flags(services),
    )
    assert (local.returncode, local.stderr) == (1, f"maestro: input: {MISSING_PLAN}\n")
    path = tmp_path / "workflow.yaml"
    path.write_text(pointed(services))
    remote = maestro(
        "execute", path, "--server", server.address, "--input", json.dumps(WITHOUT_PLAN)
    )
    assert remote.returncode == 1
    assert MISSING_PLAN in remote.stderr and "INVALID_ARGUMENT" in remote.stderr
    data = struct_pb2.Struct()
    data.update(WITHOUT_PLAN)
    yaml = path.read_text()
    with pytest.raises(grpc.RpcError) as started:
        stub.StartWorkflow(pb.StartWorkflowRequest(workflow_yaml=yaml, input=data), timeout=30)
    with pytest.raises(grpc.RpcError) as executed:
        list(stub.ExecuteWorkflow(pb.ExecuteWorkflowRequest(workflow_yaml=yaml, input=data)))
    for caught in (started, executed):
        error: Any = caught.value
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert error.details() == f"input: {MISSING_PLAN}"

    async def sdk() -> None:
        async with maestro_client.MaestroClient(server.address) as client:
            with pytest.raises(maestro_client.InvalidArgumentError, match=re.escape(MISSING_PLAN)):
                await client.start(path, WITHOUT_PLAN)

    asyncio.run(sdk())
    listed = stub.ListExecutions(pb.ListExecutionsRequest(page_size=1000), timeout=30)
    assert list(listed.executions) == []
    no_calls(services)


def test_an_input_of_a_type_the_field_refuses_is_refused_at_the_door(
    services: Fleet, stub: rpc.OrchestratorStub, tmp_path: Path
) -> None:
    """With the auth service's .proto beside the workflow, an email that is a number is
    refused before the first step, naming the field and its type."""
    shutil.copytree(EXAMPLE / "protos", tmp_path / "protos")
    text = pointed(services).replace(
        '    type: grpc\n    endpoint: "' + services.endpoints["auth_service"] + '"',
        '    type: grpc\n    endpoint: "' + services.endpoints["auth_service"] + '"\n'
        "    protos: [protos/auth/v1/auth.proto]\n    import_paths: [protos]",
    )
    assert "protos: [protos/auth/v1/auth.proto]" in text
    (tmp_path / "workflow.yaml").write_text(text)
    source = maestro_client.WorkflowSource.from_file(tmp_path / "workflow.yaml")
    data = struct_pb2.Struct()
    data.update({**INPUT, "email": 42})
    request = pb.StartWorkflowRequest(workflow_yaml=source.yaml, files=source.files, input=data)
    with pytest.raises(grpc.RpcError) as caught:
        stub.StartWorkflow(request, timeout=30)
    error: Any = caught.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "input: .input.email is a whole number, but step 'create_user' (input.email) sends it as "
        "auth.v1.CreateUserRequest.email (string), which takes text"
    )
    no_calls(services)
