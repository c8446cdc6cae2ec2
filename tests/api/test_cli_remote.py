"""The CLI against a running server: `execute --server`, `executions …`, `workflows …`."""

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from google.protobuf import json_format

from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server._proto.maestro.v1 import orchestrator_pb2_grpc as pb_grpc
from maestro_server.json_numbers import struct_numbers
from tests.api.conftest import (
    INPUT,
    ServerProcess,
    maestro_serve,
    onboarding_yaml,
    refused_compensation_yaml,
)
from tests.api.proxy import cuttable_proxy
from tests.api.test_security import tls_files
from tests.conftest import EXAMPLE, ROOT, maestro


def _shape(stderr: str) -> list[str]:
    """The event lines without timings, which differ run to run."""
    return [re.sub(r"\d+ ms|\d+\.\d s", "T", line) for line in stderr.splitlines()]


def test_execute_through_a_server_prints_what_a_local_run_prints(
    server: ServerProcess,
    service_processes: dict[str, str],
    endpoints: list[str],
    tmp_path: Path,
) -> None:
    """Same stdout shape, same event lines, same exit code, local or remote."""
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(onboarding_yaml(service_processes))
    remote = maestro(
        "execute", workflow, "--input-file", EXAMPLE / "input.json", "--server", server.address
    )
    local = maestro("execute", workflow, "--input-file", EXAMPLE / "input.json")
    assert (remote.returncode, local.returncode) == (0, 0), remote.stderr + local.stderr
    assert (
        set(json.loads(remote.stdout))
        == set(json.loads(local.stdout))
        == {"user_id", "subscription_id"}
    )
    assert _shape(remote.stderr) == _shape(local.stderr)


def test_execute_through_a_server_exit_codes(
    server: ServerProcess, service_processes: dict[str, str], tmp_path: Path
) -> None:
    """Compensated is 2; an invalid workflow is 1 with file:line:column diagnostics."""
    failing = tmp_path / "failing.yaml"
    failing.write_text(onboarding_yaml(service_processes, email="failing_email_service"))
    result = maestro("execute", failing, "--input", json.dumps(INPUT), "--server", server.address)
    assert result.returncode == 2
    assert "↶✓ compensation succeeded setup_subscription" in result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: w\nservices: {}\nsteps: []\n")
    result = maestro("execute", broken, "--server", server.address)
    assert result.returncode == 1
    assert f"{broken}:2:11: error: 'services' is empty" in result.stderr


def test_workflows_and_executions_commands(
    server: ServerProcess, service_processes: dict[str, str], tmp_path: Path
) -> None:
    """Register, list and get workflows; list, get, watch and cancel executions."""
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(onboarding_yaml(service_processes))
    address = ["--server", server.address]
    assert maestro("workflows", "register", workflow, *address).stdout == (
        "user_onboarding 1.0: registered\n"
    )
    assert maestro("workflows", "register", workflow, *address).stdout == (
        "user_onboarding 1.0: already registered\n"
    )
    listing = maestro("workflows", "list", *address)
    assert listing.stdout.startswith("user_onboarding  1.0  ")
    stored = json.loads(maestro("workflows", "get", "user_onboarding", *address).stdout)
    assert (stored["name"], stored["version"]) == ("user_onboarding", "1.0")

    run = maestro(
        "execute",
        workflow,
        "--input",
        json.dumps(INPUT),
        "--events",
        "jsonl",
        "--execution-id",
        "cli-remote-1",
        *address,
    )
    assert run.returncode == 0, run.stderr
    executions = maestro("executions", "list", "--state", "completed", *address)
    assert "cli-remote-1  user_onboarding 1.0  COMPLETED" in executions.stdout
    got = json.loads(maestro("executions", "get", "cli-remote-1", *address).stdout)
    assert got["state"] == "EXECUTION_STATE_COMPLETED"
    assert [s["step_id"] for s in got["steps"]] == [
        "create_user",
        "setup_subscription",
        "add_to_crm",
        "send_welcome_email",
    ]
    watched = maestro(
        "executions", "watch", "cli-remote-1", "--after", "8", "--events", "jsonl", *address
    )
    assert [json.loads(line)["sequence"] for line in watched.stdout.splitlines()] == ["9", "10"]
    cancel = maestro("executions", "cancel", "cli-remote-1", *address)
    assert cancel.returncode == 0, cancel.stderr  # idempotent: a finished one is as it was
    assert json.loads(cancel.stdout)["state"] == "EXECUTION_STATE_COMPLETED"
    missing = maestro("executions", "get", "nope", *address)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr


def test_json_answers_are_printed_as_protobuf_printed_them(
    server: ServerProcess, service_processes: dict[str, str], tmp_path: Path
) -> None:
    """`executions get` and `workflows get` print what json_format printed for the server's
    answer before the CLI used the SDK (map keys aside, whose order protobuf chose per process;
    whole numbers in Structs as integers); `executions resume` prints the execution."""
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(onboarding_yaml(service_processes))
    refused = tmp_path / "refused.yaml"
    refused.write_text(refused_compensation_yaml(service_processes))
    address = ["--server", server.address]
    assert maestro("workflows", "register", workflow, *address).returncode == 0
    completed = maestro(
        "execute", workflow, "--input", json.dumps(INPUT), "--execution-id", "bytes-1", *address
    )
    assert completed.returncode == 0, completed.stderr
    failed = maestro("execute", refused, "--execution-id", "bytes-2", *address)
    assert failed.returncode == 3, failed.stderr

    def same(printed: str, message: Any) -> None:
        printed_by_protobuf = json_format.MessageToDict(message, preserving_proto_field_name=True)
        expected = struct_numbers(message.DESCRIPTOR, printed_by_protobuf, proto_names=True)
        assert list(json.loads(printed)) == list(expected), "the fields in the same order"
        assert _sorted(printed) == _sorted(json.dumps(expected, indent=2) + "\n")

    with grpc.insecure_channel(server.address) as channel:
        stub: Any = pb_grpc.OrchestratorStub(channel)
        for execution_id in ("bytes-1", "bytes-2"):
            answer = stub.GetExecution(pb.GetExecutionRequest(execution_id=execution_id))
            same(maestro("executions", "get", execution_id, *address).stdout, answer.execution)
        answer = stub.GetWorkflow(pb.GetWorkflowRequest(name="user_onboarding"))
        same(maestro("workflows", "get", "user_onboarding", *address).stdout, answer.workflow)
    resumed = maestro("executions", "resume", "bytes-2", *address)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["state"] == "EXECUTION_STATE_COMPENSATING"
    missing = maestro("executions", "resume", "nope", *address)
    assert (missing.returncode, missing.stderr) == (
        1,
        "maestro: NOT_FOUND: execution 'nope' does not exist\n",
    )


def _sorted(text: str) -> str:
    """JSON text with every object's keys sorted (numbers, strings and nesting as they were)."""
    return json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_tls_token_and_field_violations(
    tmp_path: Path, service_processes: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--tls-ca and --token (or $MAESTRO_TOKEN) reach the server; a workflow the server refuses
    prints each violation as file:line:column: error: message."""
    monkeypatch.delenv("MAESTRO_TOKEN", raising=False)
    files = tls_files(trustme.CA(), tmp_path)
    tokens = tmp_path / "tokens"
    tokens.write_text("admin-token\n")
    evil = tmp_path / "evil.yaml"
    evil.write_text(
        onboarding_yaml(service_processes).replace(
            service_processes["billing_service"], "metadata.internal:80"
        )
    )
    with maestro_serve(
        "--tls-cert",
        str(files["cert"]),
        "--tls-key",
        str(files["key"]),
        "--auth-token-file",
        str(tokens),
        "--allow-endpoint",
        "127.0.0.1:*",
        "--allow-endpoint",
        "http://127.0.0.1",
    ) as server:
        address = server.address.replace("127.0.0.1", "localhost")
        flags = ["--server", address, "--tls-ca", str(files["ca"])]
        anonymous = maestro("workflows", "list", *flags)
        assert anonymous.returncode == 4
        assert anonymous.stderr.startswith(
            "maestro: UNAUTHENTICATED: missing or unknown bearer token"
        )
        assert maestro("workflows", "list", *flags, "--token", "admin-token").returncode == 0
        monkeypatch.setenv("MAESTRO_TOKEN", "admin-token")
        assert maestro("executions", "list", *flags).returncode == 0
        refused = maestro("execute", evil, "--input", json.dumps(INPUT), *flags)
    assert refused.returncode == 1
    first, *violations = refused.stderr.splitlines()
    assert first.startswith("maestro: INVALID_ARGUMENT: ")
    assert violations[-1].startswith(
        f"{evil}:13:5 (services.billing_service.endpoint): error: endpoint "
        "'metadata.internal:80' of service 'billing_service' is not allowed by this server"
    )


async def test_execute_goes_on_after_the_connection_drops(
    server: ServerProcess, service_processes: dict[str, str], tmp_path: Path
) -> None:
    """`execute --server` whose stream is cut mid-way goes on watching from its last event:
    every event line once, the output, exit 0."""
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(onboarding_yaml(service_processes, email="slow_email_service"))
    async with cuttable_proxy(server.address) as (address, proxy):
        command = [str(workflow), "--input", json.dumps(INPUT), "--server", address]
        run = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "maestro_server", "execute", *command),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        assert run.stdout is not None and run.stderr is not None
        lines = []
        async for raw in run.stderr:
            lines.append(raw.decode())
            if "step started send_welcome_email" in lines[-1]:
                proxy.cut()  # while the slow email step runs
        stdout = await run.stdout.read()
        assert await asyncio.wait_for(run.wait(), 60) == 0, "".join(lines)
    assert [int(line[1:4]) for line in lines] == list(range(1, 11)), "".join(lines)
    assert set(json.loads(stdout)) == {"user_id", "subscription_id"}
    assert proxy.connections >= 2, "the stream really was cut and reopened"


def test_execute_a_registered_workflow_by_name_and_without_waiting(
    server: ServerProcess, service_processes: dict[str, str], tmp_path: Path
) -> None:
    """`execute --server NAME@VERSION` runs a registered workflow (no file needed);
    `--no-wait` prints the execution's id and returns at once; a missing .yaml file is
    reported as a file, not looked up on the server."""
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(
        onboarding_yaml(service_processes).replace("name: user_onboarding", "name: by_name")
    )
    address = ["--server", server.address]
    assert maestro("workflows", "register", workflow, *address).returncode == 0
    run = maestro("execute", "by_name@1.0", "--input", json.dumps(INPUT), *address)
    assert run.returncode == 0, run.stderr
    assert set(json.loads(run.stdout)) == {"user_id", "subscription_id"}
    started = maestro("execute", "by_name", "--input", json.dumps(INPUT), "--no-wait", *address)
    assert started.returncode == 0, started.stderr
    (execution_id,) = started.stdout.split()
    watched = maestro("executions", "watch", execution_id, *address)
    assert watched.returncode == 0, watched.stderr
    missing = maestro("execute", "by_name@9", *address)
    assert missing.returncode == 1
    assert "NOT_FOUND: workflow 'by_name' version '9' is not registered" in missing.stderr
    typo = maestro("execute", "nowhere.yaml", *address)
    assert typo.returncode == 1 and "nowhere.yaml" in typo.stderr
    local = maestro("execute", workflow, "--no-wait")
    assert local.returncode == 1 and "--no-wait applies to runs on a server" in local.stderr


def test_sub_workflow_files_run_locally_and_through_a_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    """`execute` runs a file child in this process or on a server (the file travels with the
    workflow); `executions list --parent` lists the child, and `get` names each side."""
    (tmp_path / "payment.yaml").write_text(
        "name: payment\nservices:\n  bank: {type: http, endpoint: 'http://127.0.0.1:9'}\n"
        "steps:\n  - id: settle\n    sleep: 1ms\noutput: {paid: '{{ .input.amount }}'}\n"
    )
    order = tmp_path / "order.yaml"
    order.write_text(
        "name: order\nservices:\n  shop: {type: http, endpoint: 'http://127.0.0.1:9'}\n"
        "steps:\n  - id: charge\n    workflow: {file: payment.yaml}\n"
        "    input: {amount: '{{ .input.amount }}'}\n    output: payment\n"
        "output: '{{ .payment }}'\n"
    )
    local = maestro("execute", order, "--input", '{"amount": 3}')
    assert (local.returncode, json.loads(local.stdout)) == (0, {"paid": 3}), local.stderr
    address = ("--server", server.address)
    remote = maestro(
        "execute", order, "--input", '{"amount": 4}', "--execution-id", "cli-sub-1", *address
    )
    assert (remote.returncode, json.loads(remote.stdout)) == (0, {"paid": 4}), remote.stderr
    children = maestro("executions", "list", "--parent", "cli-sub-1", *address).stdout
    assert children.splitlines() == ["cli-sub-1:charge  payment   COMPLETED  (child of cli-sub-1)"]
    child = json.loads(maestro("executions", "get", "cli-sub-1:charge", *address).stdout)
    assert child["parent_execution_id"] == "cli-sub-1"
    parent = json.loads(maestro("executions", "get", "cli-sub-1", *address).stdout)
    assert parent["steps"][0]["child_execution_ids"] == ["cli-sub-1:charge"]
