"""The hostile and malformed input catalog, through the real server and the command line.

Every case asserts the exact gRPC status (or exit code, or the execution's error code), a
message that names the problem and where it is (file:line:column, the step and field, the
service), and that nothing was stored half-done. The workflow-language cases are the files
in tests/definition/invalid/, each listing the diagnostics it must produce.
"""

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server._proto.maestro.v1 import orchestrator_pb2_grpc as rpc
from tests.api.conftest import maestro_serve
from tests.api.deciding_billing import SUBSCRIBE_THEN_CHECK, deciding_billing
from tests.api.proxy import cuttable_proxy
from tests.conftest import ROOT, maestro
from tests.transports.http_server import ScriptedHttp, scripted_http
from tests.transports.servers import PROTOS, echo_server
from tests.transports.test_not_sent import UNRESOLVABLE, reflection_down
from tests.transports.test_tls import server_credentials

INVALID = sorted((ROOT / "tests" / "definition" / "invalid").glob("*.yaml"))
OK_YAML = """\
name: ok
input_schema:
  type: object
  properties: {email: {type: string, format: email}, n: {type: integer}}
services:
  svc: {type: grpc, endpoint: "127.0.0.1:1"}
steps:
  - {id: a, service: svc, method: Do, retry: {max_attempts: 1}}
"""


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("catalog") / "maestro.db"
    with maestro_serve(f"--store=sqlite:///{db}") as running:
        yield running.address


@pytest.fixture(scope="module")
def stub(server: str) -> Iterator[rpc.OrchestratorStub]:
    with grpc.insecure_channel(server) as channel:
        yield rpc.OrchestratorStub(channel)


REASONS = {
    name.removeprefix("ERROR_REASON_")
    for name in pb.DESCRIPTOR.enum_types_by_name["ErrorReason"].values_by_name
} - {"UNSPECIFIED"}
"""The reasons the proto lists: every refusal carries one of them."""


def refused(
    call: Any, request: Any, code: grpc.StatusCode, *fragments: str, reason: str = ""
) -> str:
    """The call fails with `code`, a message holding every fragment and exactly one ErrorInfo
    (domain maestro.dev) with a listed reason, `reason` when given; returns the message."""
    with pytest.raises(grpc.RpcError) as caught:
        reply = call(request, timeout=30)
        if not hasattr(reply, "ListFields"):
            list(reply)  # a stream fails on its first read
    error: Any = caught.value
    assert error.code() is code, error.details()
    for fragment in fragments:
        assert fragment in error.details()
    (info,) = error_infos(error)
    assert info.domain == "maestro.dev" and info.reason in REASONS, info
    assert not reason or info.reason == reason, info.reason
    return str(error.details())


def error_infos(error: Any) -> list[error_details_pb2.ErrorInfo]:
    """The ErrorInfo details of a failed call."""
    status = rpc_status.from_call(error)
    found = []
    for packed in status.details if status is not None else ():
        if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            found.append(info)
    return found


def field_violations(error: Any) -> list[tuple[str, str]]:
    """The BadRequest field violations of a failed call."""
    status = rpc_status.from_call(error)
    found = []
    for packed in status.details if status is not None else ():
        if packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            packed.Unpack(bad)
            found += [(v.field, v.description) for v in bad.field_violations]
    return found


def stored_executions(stub: rpc.OrchestratorStub) -> int:
    reply = stub.ListExecutions(pb.ListExecutionsRequest(page_size=1000), timeout=30)
    return len(reply.executions)


def stored_workflows(stub: rpc.OrchestratorStub) -> int:
    return len(stub.ListWorkflows(pb.ListWorkflowsRequest(page_size=1000), timeout=30).workflows)


# -- the workflow language, through the API (50 cases) ---------------------------------------


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_workflow_is_refused_with_every_diagnostic(
    stub: rpc.OrchestratorStub, path: Path
) -> None:
    """StartWorkflow and RegisterWorkflow: INVALID_ARGUMENT naming file:line:column of each
    problem; no execution and no definition stored."""
    expected = [
        line.removeprefix("# expect: ")
        for line in path.read_text().splitlines()
        if line.startswith("# expect: ")
    ]
    located = [f"{path.name}:{e.split(': ', 1)[0]}: error: {e.split(': ', 1)[1]}" for e in expected]
    executions, workflows = stored_executions(stub), stored_workflows(stub)
    yaml = path.read_text(errors="surrogateescape")
    start = pb.StartWorkflowRequest(workflow_yaml=yaml, workflow_path=path.name, execution_id="x")
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    refused(stub.StartWorkflow, start, invalid, *located, reason="WORKFLOW_INVALID")
    register = pb.RegisterWorkflowRequest(workflow_yaml=yaml, workflow_path=path.name)
    refused(stub.RegisterWorkflow, register, invalid, *located, reason="WORKFLOW_INVALID")
    assert (stored_executions(stub), stored_workflows(stub)) == (executions, workflows)


# -- API requests: missing, contradictory, oversized (31 cases) ------------------------------


def start(yaml: str | None = OK_YAML, execution_id: str = "", **input: Any) -> Any:
    request = pb.StartWorkflowRequest(input=struct(input), execution_id=execution_id)
    if yaml is not None:
        request.workflow_yaml = yaml
    return request


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"x": value}
    return value


def start_deep(levels: int) -> Any:
    """A start whose input nests `levels` objects deep (built in place: a constructor would
    decode a copy, which protobuf refuses past its recursion limit)."""
    request = start()
    request.input.update(deep(levels))
    return request


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (lengths here stay under 2**21)."""
    length, size = b"", len(payload)
    while True:
        low, size = size & 0x7F, size >> 7
        length += bytes([low | (0x80 if size else 0)])
        if not size:
            break
    return bytes([(number << 3) | 2]) + length + payload


def test_input_nested_past_protobufs_limit(server: str, stub: rpc.OrchestratorStub) -> None:
    """Bytes another language's client could send: a Struct 200 levels deep. The Python
    protobuf runtime refuses to build it, so it is encoded by hand."""
    nested = b""
    for _ in range(200):  # Struct{fields: {"x": Value{struct_value: nested}}}
        nested = _field(1, _field(1, b"x") + _field(2, _field(5, nested)))
    raw = _field(1, OK_YAML.encode()) + _field(3, nested)
    executions = stored_executions(stub)
    with grpc.insecure_channel(server) as channel:
        call: Any = channel.unary_unary("/maestro.v1.Orchestrator/StartWorkflow")
        with pytest.raises(grpc.RpcError) as caught:
            call(raw, timeout=30)
    error: Any = caught.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "does not decode" in error.details() and "MaxDepth" in error.details()
    assert [i.reason for i in error_infos(error)] == ["REQUEST_UNDECODABLE"]
    assert stored_executions(stub) == executions


API_CASES = [
    ("StartWorkflow", start(None), "INVALID_ARGUMENT", "give the workflow", "REQUEST_INVALID"),
    (
        "ExecuteWorkflow",
        pb.ExecuteWorkflowRequest(),
        "INVALID_ARGUMENT",
        "give the workflow",
        "REQUEST_INVALID",
    ),
    (
        "StartWorkflow",
        pb.StartWorkflowRequest(reference=pb.WorkflowReference(version="1")),
        "INVALID_ARGUMENT",
        "reference.name is empty",
        "REQUEST_INVALID",
    ),
    (
        "StartWorkflow",
        pb.StartWorkflowRequest(reference=pb.WorkflowReference(name="nowhere")),
        "NOT_FOUND",
        "nowhere",
        "WORKFLOW_NOT_FOUND",
    ),
    (
        "StartWorkflow",
        pb.StartWorkflowRequest(
            reference=pb.WorkflowReference(name="nowhere"), files={"a.proto": b""}
        ),
        "INVALID_ARGUMENT",
        "files go with workflow_yaml",
        "REQUEST_INVALID",
    ),
    (
        "StartWorkflow",
        start(n="three"),
        "INVALID_ARGUMENT",
        "n: 'three' is not of type 'integer'",
        "INPUT_INVALID",
    ),
    (
        "StartWorkflow",
        start(execution_id="has space"),
        "INVALID_ARGUMENT",
        "execution_id",
        "REQUEST_INVALID",
    ),
    (
        "StartWorkflow",
        start(execution_id="x" * 201),
        "INVALID_ARGUMENT",
        "execution_id",
        "REQUEST_INVALID",
    ),
    (
        "StartWorkflow",
        start(execution_id="tab\there"),
        "INVALID_ARGUMENT",
        "execution_id",
        "REQUEST_INVALID",
    ),
    ("StartWorkflow", start_deep(40), "INVALID_ARGUMENT", "does not decode", "REQUEST_UNDECODABLE"),
    (
        "StartWorkflow",
        start(blob="x" * (5 * 1024 * 1024)),
        "RESOURCE_EXHAUSTED",
        "larger than max",
        "REQUEST_TOO_LARGE",
    ),
    (
        "GetExecution",
        pb.GetExecutionRequest(execution_id="nope"),
        "NOT_FOUND",
        "'nope'",
        "EXECUTION_NOT_FOUND",
    ),
    (
        "WatchExecution",
        pb.WatchExecutionRequest(execution_id="nope"),
        "NOT_FOUND",
        "'nope'",
        "EXECUTION_NOT_FOUND",
    ),
    (
        "WatchExecution",
        pb.WatchExecutionRequest(execution_id="nope", after_sequence=-1),
        "INVALID_ARGUMENT",
        "after_sequence must not be negative",
        "REQUEST_INVALID",
    ),
    (
        "CancelExecution",
        pb.CancelExecutionRequest(execution_id="nope"),
        "NOT_FOUND",
        "'nope'",
        "EXECUTION_NOT_FOUND",
    ),
    (
        "ResumeExecution",
        pb.ResumeExecutionRequest(execution_id="nope"),
        "NOT_FOUND",
        "'nope'",
        "EXECUTION_NOT_FOUND",
    ),
    (
        "GetWorkflow",
        pb.GetWorkflowRequest(name="nope"),
        "NOT_FOUND",
        "'nope'",
        "WORKFLOW_NOT_FOUND",
    ),
    (
        "GetExecution",
        pb.GetExecutionRequest(),
        "INVALID_ARGUMENT",
        "execution_id is empty",
        "REQUEST_INVALID",
    ),
    (
        "WatchExecution",
        pb.WatchExecutionRequest(),
        "INVALID_ARGUMENT",
        "execution_id is empty",
        "REQUEST_INVALID",
    ),
    (
        "CancelExecution",
        pb.CancelExecutionRequest(),
        "INVALID_ARGUMENT",
        "execution_id is empty",
        "REQUEST_INVALID",
    ),
    (
        "ResumeExecution",
        pb.ResumeExecutionRequest(),
        "INVALID_ARGUMENT",
        "execution_id is empty",
        "REQUEST_INVALID",
    ),
    (
        "GetWorkflow",
        pb.GetWorkflowRequest(),
        "INVALID_ARGUMENT",
        "name is empty",
        "REQUEST_INVALID",
    ),
    (
        "ListExecutions",
        pb.ListExecutionsRequest(page_size=5000),
        "INVALID_ARGUMENT",
        "page_size must be from 0 to 1000, not 5000",
        "REQUEST_INVALID",
    ),
    (
        "ListExecutions",
        pb.ListExecutionsRequest(page_size=-1),
        "INVALID_ARGUMENT",
        "page_size must be from 0 to 1000, not -1",
        "REQUEST_INVALID",
    ),
    (
        "ListWorkflows",
        pb.ListWorkflowsRequest(page_size=1001),
        "INVALID_ARGUMENT",
        "page_size must be from 0 to 1000, not 1001",
        "REQUEST_INVALID",
    ),
    (
        "ListExecutions",
        pb.ListExecutionsRequest(page_token="garbage"),
        "INVALID_ARGUMENT",
        "page_token 'garbage' is not one this server gave",
        "REQUEST_INVALID",
    ),
    (
        "ListExecutions",
        pb.ListExecutionsRequest(states=[42]),  # type: ignore[list-item]
        "INVALID_ARGUMENT",
        "states: [42] are not ExecutionState values",
        "REQUEST_INVALID",
    ),
]
"""Every way a request can be refused, each with the reason its ErrorInfo must carry."""


@pytest.mark.parametrize(
    ("method", "request_", "code", "fragment", "reason"),
    API_CASES,
    ids=[f"{case[0]}-{n}" for n, case in enumerate(API_CASES)],
)
def test_bad_api_request_is_refused_and_stores_nothing(
    stub: rpc.OrchestratorStub, method: str, request_: Any, code: str, fragment: str, reason: str
) -> None:
    """The status, the message, and one ErrorInfo with the listed reason; nothing stored."""
    executions = stored_executions(stub)
    refused(getattr(stub, method), request_, grpc.StatusCode[code], fragment, reason=reason)
    assert stored_executions(stub) == executions


def test_request_fields_are_named_as_request_field_paths(stub: rpc.OrchestratorStub) -> None:
    """BadRequest names the field of the request, the input's by its path inside `input`;
    the ErrorInfo's metadata says which field."""
    with pytest.raises(grpc.RpcError) as caught:
        stub.StartWorkflow(start(n="three"), timeout=30)
    assert field_violations(caught.value) == [("input.n", "'three' is not of type 'integer'")]
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetExecution(pb.GetExecutionRequest(), timeout=30)
    assert field_violations(caught.value) == [("execution_id", "execution_id is empty")]
    assert dict(error_infos(caught.value)[0].metadata) == {"field": "execution_id"}
    with pytest.raises(grpc.RpcError) as caught:
        stub.RegisterWorkflow(
            pb.RegisterWorkflowRequest(workflow_yaml="name: w\nsteps: []\n"), timeout=30
        )
    violations = field_violations(caught.value)
    assert violations and {field for field, _ in violations} == {"workflow_yaml"}
    assert all(d.startswith("workflow.yaml:") for _, d in violations), violations


def test_same_id_with_another_input_is_already_exists(stub: rpc.OrchestratorStub) -> None:
    """The first start stands; the contradictory second is refused and changes nothing."""
    stub.StartWorkflow(start(execution_id="twice", n=1), timeout=30)
    refused(
        stub.StartWorkflow,
        start(execution_id="twice", n=2),
        grpc.StatusCode.ALREADY_EXISTS,
        "'twice' already exists with another workflow or input",
        reason="EXECUTION_ALREADY_EXISTS",
    )
    got = stub.GetExecution(pb.GetExecutionRequest(execution_id="twice"), timeout=30)
    assert got.execution.input["n"] == 1


def test_finished_executions_cannot_be_cancelled_or_resumed(stub: rpc.OrchestratorStub) -> None:
    """Cancelling a finished execution changes nothing and is no error (a retried cancel must
    not fail); resuming one that did not fail its compensations is FAILED_PRECONDITION."""
    events = list(
        stub.ExecuteWorkflow(
            pb.ExecuteWorkflowRequest(workflow_yaml=OK_YAML, execution_id="ended"), timeout=60
        )
    )
    assert events[-1].event.state == pb.EXECUTION_STATE_FAILED
    cancelled = stub.CancelExecution(pb.CancelExecutionRequest(execution_id="ended"), timeout=30)
    assert cancelled.execution.state == pb.EXECUTION_STATE_FAILED
    refused(
        stub.ResumeExecution,
        pb.ResumeExecutionRequest(execution_id="ended"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "only a compensation_failed execution can be resumed",
        reason="EXECUTION_NOT_RESUMABLE",
    )


# -- the command line (10 cases) ---------------------------------------------------------------


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maestro_server", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_cli_input_nested_too_deep(tmp_path: Path) -> None:
    """`maestro execute --input-file` with JSON 80 levels deep: exit 1, before any call."""
    (tmp_path / "wf.yaml").write_text(OK_YAML)
    (tmp_path / "input.json").write_text(json.dumps(deep(80)))
    result = subprocess.run(
        [
            *(sys.executable, "-m", "maestro_server", "execute", str(tmp_path / "wf.yaml")),
            *("--input-file", str(tmp_path / "input.json")),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "input nests deeper than 64 levels" in result.stderr


@pytest.mark.parametrize("server_flag", [False, True], ids=["local", "server"])
@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (
            {"blob": "x" * (5 * 1024 * 1024)},
            "a server accepts requests of at most 4194304 bytes",
        ),
        (deep(40), "the input nests deeper than a server decodes"),
    ],
    ids=["over-4-MiB", "deeper-than-protobuf-decodes"],
)
def test_cli_execute_applies_the_servers_input_limits(
    server: str,
    stub: rpc.OrchestratorStub,
    tmp_path: Path,
    data: dict[str, Any],
    fragment: str,
    server_flag: bool,
) -> None:
    """`maestro execute` refuses an input the server would refuse (RESOURCE_EXHAUSTED or
    INVALID_ARGUMENT above), run here or with --server: exit 1, nothing called or stored."""
    (tmp_path / "wf.yaml").write_text(OK_YAML)
    (tmp_path / "input.json").write_text(json.dumps(data))
    executions = stored_executions(stub)
    result = subprocess.run(
        [
            *(sys.executable, "-m", "maestro_server", "execute", str(tmp_path / "wf.yaml")),
            *("--input-file", str(tmp_path / "input.json")),
            *(("--server", server) if server_flag else ()),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"maestro: {tmp_path / 'input.json'}: {result.stderr.split(': ', 2)[2]}"
    assert fragment in result.stderr
    assert stored_executions(stub) == executions


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"name: \xff\xfe broken\n", ":1:7: error: "),
        (b"name: x\nsteps: [\n", ":3:1: error: "),
        (b"\x00\x01\x02", ":1:1: error: "),
        (b"name: " + b"a" * (1024 * 1024 + 1), ":1:1: error: workflow is larger than"),
        (b'name: ""\nservices: {}\nsteps: []\n', ":1:7: error: workflow name '' must start"),
    ],
    ids=["invalid-utf8", "unclosed-bracket", "binary", "over-1-MiB", "empty-name"],
)
def test_cli_validate_names_the_place(tmp_path: Path, content: bytes, fragment: str) -> None:
    """Exit code 1 and file:line:column on stderr, for bytes no workflow should hold."""
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    result = validate(path)
    assert result.returncode == 1, result.stderr
    assert f"{path}{fragment}" in result.stderr


# -- running against hostile services (11 cases) ---------------------------------------------


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    async with echo_server() as (address, _):
        yield address


@pytest.fixture
def http() -> Iterator[ScriptedHttp]:
    with scripted_http() as server:
        yield server


def run_to_end(
    stub: rpc.OrchestratorStub, yaml: str, files: dict[str, bytes] | None = None, **input: Any
) -> list[Any]:
    request = pb.ExecuteWorkflowRequest(workflow_yaml=yaml, input=struct(input), files=files)
    return [r.event for r in stub.ExecuteWorkflow(request, timeout=120)]


def failure(events: list[Any]) -> Any:
    failed = [e for e in events if e.type == pb.EVENT_TYPE_STEP_FAILED]
    assert failed, [pb.EventType.Name(e.type) for e in events]
    return failed[-1]


def one_step(service: str, method: str, step_input: str = "{}", extra: str = "") -> str:
    return f"""\
name: hostile
services:
  svc: {service}
steps:
  - id: s
    service: svc
    method: {method}
    input: {step_input}
    retry: {{max_attempts: 1}}
    timeout: 1s
{extra}"""


async def test_grpc_method_that_does_not_exist(stub: rpc.OrchestratorStub, echo: str) -> None:
    yaml = one_step(f'{{type: grpc, endpoint: "{echo}"}}', "NoSuchMethod")
    error = failure(await asyncio.to_thread(run_to_end, stub, yaml)).error
    assert (error.code, error.service) == ("UNKNOWN_METHOD", "svc"), error.message
    assert "NoSuchMethod" in error.message


async def test_grpc_method_name_that_is_ambiguous(stub: rpc.OrchestratorStub, echo: str) -> None:
    yaml = one_step(f'{{type: grpc, endpoint: "{echo}"}}', "Echo")
    error = failure(await asyncio.to_thread(run_to_end, stub, yaml)).error
    assert (error.code, error.service) == ("UNKNOWN_METHOD", "svc"), error.message
    assert "'Echo' is ambiguous; write one of: testing.v1.EchoService/Echo" in error.message


async def test_grpc_server_without_reflection(stub: rpc.OrchestratorStub) -> None:
    async with echo_server(reflection_versions=()) as (address, _):
        yaml = one_step(f'{{type: grpc, endpoint: "{address}"}}', "Echo")
        error = failure(await asyncio.to_thread(run_to_end, stub, yaml)).error
    assert (error.code, error.service) == ("SCHEMA_ERROR", "svc"), error.message
    assert "does not offer server reflection; give the service a descriptor_set" in error.message


async def test_template_renders_a_wrong_type_for_a_proto_field(
    stub: rpc.OrchestratorStub, echo: str
) -> None:
    yaml = one_step(
        f'{{type: grpc, endpoint: "{echo}"}}',
        "testing.v1.EchoService/Echo",
        '{text: "{{ .input.obj }}"}',
    )
    events = await asyncio.to_thread(run_to_end, stub, yaml, obj={"a": 1})
    error = failure(events).error
    assert error.code == "INVALID_REQUEST", error.message
    assert "text" in error.message


async def test_grpc_request_field_the_service_lacks(stub: rpc.OrchestratorStub, echo: str) -> None:
    """A field the reflected schema lacks, even when read again: INVALID_REQUEST naming it, not
    in doubt (nothing was sent)."""
    yaml = one_step(
        f'{{type: grpc, endpoint: "{echo}"}}', "testing.v1.EchoService/Echo", "{txet: hi}"
    )
    step_failed = failure(await asyncio.to_thread(run_to_end, stub, yaml))
    assert step_failed.error.code == "INVALID_REQUEST", step_failed.error.message
    assert 'no field named "txet"' in step_failed.error.message
    assert not step_failed.in_doubt


def test_template_reads_an_undefined_input(stub: rpc.OrchestratorStub) -> None:
    # Under `when`, the read is not one the door can require, so it fails at run time.
    yaml = one_step(
        '{type: http, endpoint: "http://127.0.0.1:1"}',
        "POST /x",
        "{a: '{{ .input.nope }}'}",
        extra="    when: '{{ true }}'\n",
    )
    error = failure(run_to_end(stub, yaml)).error
    assert error.code == "TEMPLATE_ERROR"
    assert "input.a" in error.message and "nope" in error.message


def test_unreachable_endpoint(stub: rpc.OrchestratorStub) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nobody listens there
    yaml = one_step(f'{{type: http, endpoint: "http://127.0.0.1:{port}"}}', "POST /x")
    error = failure(run_to_end(stub, yaml)).error
    assert error.code == "UNAVAILABLE" and f"127.0.0.1:{port}" in error.message


def test_black_holed_endpoint_times_out(stub: rpc.OrchestratorStub) -> None:
    with socket.create_server(("127.0.0.1", 0)) as hole:
        url = f"http://127.0.0.1:{hole.getsockname()[1]}"
        yaml = one_step(f'{{type: http, endpoint: "{url}"}}', "POST /x")
        step_failed = failure(run_to_end(stub, yaml))
    assert step_failed.error.code == "DEADLINE_EXCEEDED" and step_failed.in_doubt


def test_non_json_http_response_is_wrapped(stub: rpc.OrchestratorStub, http: ScriptedHttp) -> None:
    http.answer("POST /x", 200, raw=b"<html>ok</html>", headers={"content-type": "text/html"})
    yaml = one_step(
        f'{{type: http, endpoint: "{http.url}"}}',
        "POST /x",
        extra="output: {r: '{{ .steps.s }}'}\n",
    )
    events = run_to_end(stub, yaml)
    assert events[-1].type == pb.EVENT_TYPE_WORKFLOW_COMPLETED
    assert json_format.MessageToDict(events[-1].output)["r"]["output"] == {
        "body": "<html>ok</html>",
        "status": 200,
    }


def test_oversized_http_response(stub: rpc.OrchestratorStub, http: ScriptedHttp) -> None:
    http.answer(
        "POST /x", 200, raw=b"x" * (5 * 1024 * 1024), headers={"content-type": "text/plain"}
    )
    yaml = one_step(f'{{type: http, endpoint: "{http.url}"}}', "POST /x")
    error = failure(run_to_end(stub, yaml)).error
    assert error.code == "BAD_RESPONSE" and "larger than 4194304 bytes" in error.message


def test_client_error_status_is_not_retried(stub: rpc.OrchestratorStub, http: ScriptedHttp) -> None:
    http.answer("POST /x", 422, {"error": "email is taken"})
    yaml = one_step(f'{{type: http, endpoint: "{http.url}"}}', "POST /x")
    yaml = yaml.replace("retry: {max_attempts: 1}", "retry: {max_attempts: 5}")
    error = failure(run_to_end(stub, yaml)).error
    assert error.code == "HTTP_422" and "email is taken" in error.message
    assert len(http.received) == 1


# -- values and endpoints that try to leave their place (6 cases) ------------------------------


METADATA_ENDPOINTS = [
    pytest.param("http", "http://169.254.169.254/latest", "169.254.0.0/16", id="metadata URL"),
    pytest.param("grpc", "[fd00:ec2::254]:80", "fd00:ec2::254", id="AWS IPv6 metadata"),
    pytest.param("http", "http://2852039166", "169.254.0.0/16", id="metadata as a number"),
]


def metadata_workflow(kind: str, endpoint: str) -> str:
    method = "GET /x" if kind == "http" else "Do"
    return f"""\
name: reach
services:
  meta:
    type: {kind}
    endpoint: "{endpoint}"
steps:
  - {{id: a, service: meta, method: "{method}"}}
"""


@pytest.mark.parametrize(("kind", "endpoint", "reason"), METADATA_ENDPOINTS)
def test_metadata_endpoint_is_refused_at_its_line_and_column(
    stub: rpc.OrchestratorStub, kind: str, endpoint: str, reason: str
) -> None:
    """A server without --allow-endpoint refuses a workflow naming a link-local or metadata
    address: INVALID_ARGUMENT at the endpoint, nothing stored, nothing called."""
    executions = stored_executions(stub)
    yaml = metadata_workflow(kind, endpoint)
    request = pb.StartWorkflowRequest(workflow_yaml=yaml, workflow_path="reach.yaml")
    refused(
        stub.StartWorkflow,
        request,
        grpc.StatusCode.INVALID_ARGUMENT,
        f"reach.yaml:5:15: error: endpoint '{endpoint}' of service 'meta' is",
        reason,
        reason="WORKFLOW_INVALID",
    )
    assert stored_executions(stub) == executions


def test_cli_validate_refuses_a_metadata_endpoint(tmp_path: Path) -> None:
    """`maestro validate` refuses it too, at file:line:column, exit 1."""
    path = tmp_path / "reach.yaml"
    path.write_text(metadata_workflow("http", "http://169.254.169.254"))
    result = validate(path)
    assert result.returncode == 1, result.stderr
    assert f"{path}:5:15: error: endpoint 'http://169.254.169.254' of service 'meta'" in (
        result.stderr
    )


def test_id_from_input_stays_in_its_path_segment(
    stub: rpc.OrchestratorStub, http: ScriptedHttp
) -> None:
    """`DELETE /contacts/{{ .input.id }}` with `../admin/users?all=1`: the service sees one
    encoded segment under /contacts, never /admin/users."""
    yaml = one_step(f'{{type: http, endpoint: "{http.url}"}}', '"DELETE /contacts/{{ .input.id }}"')
    run_to_end(stub, yaml, id="../admin/users?all=1")
    assert [r.request_line for r in http.received] == [
        "DELETE /contacts/..%2Fadmin%2Fusers%3Fall%3D1 HTTP/1.1"
    ]


def test_header_value_with_a_line_break_is_not_sent(
    stub: rpc.OrchestratorStub, http: ScriptedHttp
) -> None:
    """A templated header value holding CRLF fails the step (TEMPLATE_ERROR, naming the step
    and the header, not in doubt) before any request is made."""
    service = f'{{type: http, endpoint: "{http.url}", headers: {{X-User: "{{{{ .input.u }}}}"}}}}'
    step_failed = failure(run_to_end(stub, one_step(service, "POST /x"), u="a\r\nX-Admin: 1"))
    assert step_failed.error.code == "TEMPLATE_ERROR"
    assert "step 's', field 'headers.X-User'" in step_failed.error.message
    assert "holds a CR character" in step_failed.error.message
    assert not step_failed.in_doubt
    assert http.received == []


# -- requests that never left, and a reply lost after the request did (13 cases) --------------
#
# Whether a request left is decided from what the transport knows (tests/transports/
# test_not_sent.py): the schema could not be fetched, or the channel never connected. Such a
# step failed without doubt and has nothing to undo: FAILED, and `maestro execute` exits 2
# (not 3). Each is tried with the schema fetched by reflection (which fails first) and, where
# the service has one, given by `protos:` (so the call itself is what cannot connect). A reply
# lost after the request left is the opposite: the step is in doubt, and asked again.


@asynccontextmanager
async def never_reached(kind: str) -> AsyncIterator[str]:
    """An endpoint a request never leaves for: a name that does not resolve (looked up from
    a DNS server address on loopback where nothing listens), a port that refuses connections,
    a server that speaks only TLS to a plaintext channel, a server whose reflection fails."""
    if kind == "unresolvable":
        yield UNRESOLVABLE
    elif kind == "refused":
        async with echo_server() as (endpoint, _):
            pass  # gone: its port refuses connections
        yield endpoint
    elif kind == "tls-handshake":
        async with echo_server(credentials=server_credentials(False)) as (endpoint, _):
            yield endpoint
    else:
        async with reflection_down() as endpoint:
            yield endpoint


SCHEMA_FILE = "schema/testing/v1/echo.proto"
NOT_SENT_MESSAGE = (
    "(the name did not resolve, the connection was refused or the TLS handshake failed); "
    "the request was not sent"
)
CANNOT_REFLECT = "server reflection failed: failed to connect to all addresses"
NEVER_SENT = [
    ("reflection", "unresolvable", "server reflection failed: errors resolving nowhere.invalid"),
    ("reflection", "refused", CANNOT_REFLECT),
    ("reflection", "tls-handshake", CANNOT_REFLECT),
    ("reflection", "reflection-fails", "server reflection failed: reflection is down"),
    ("protos", "unresolvable", f"cannot connect to {UNRESOLVABLE} {NOT_SENT_MESSAGE}"),
    ("protos", "refused", NOT_SENT_MESSAGE),
    ("protos", "tls-handshake", NOT_SENT_MESSAGE),
]


def never_sent_workflow(endpoint: str, schema: str) -> str:
    protos = f", protos: [{SCHEMA_FILE}], import_paths: [schema]" if schema == "protos" else ""
    return one_step(
        f'{{type: grpc, endpoint: "{endpoint}"{protos}}}',
        "testing.v1.EchoService/Echo",
        "{text: hi}",
        extra="    compensate: {method: testing.v1.EchoService/Echo, input: {text: undo}}\n",
    )


def schema_files(schema: str) -> dict[str, bytes]:
    """The files that travel with the workflow: the service's proto, for `protos`."""
    if schema != "protos":
        return {}
    return {SCHEMA_FILE: (PROTOS / "testing/v1/echo.proto").read_bytes()}


SERVED = [case for case in NEVER_SENT if case[1] != "unresolvable"]


@pytest.mark.parametrize(
    ("schema", "kind", "fragment"), SERVED, ids=[f"{s}-{k}" for s, k, _ in SERVED]
)
async def test_a_request_that_never_left_fails_without_doubt(
    stub: rpc.OrchestratorStub, schema: str, kind: str, fragment: str
) -> None:
    """STEP_FAILED with UNAVAILABLE naming why, not in doubt, no compensation, the execution
    FAILED. (A server takes a workflow's endpoints as host:port, so the unresolvable name,
    which needs a DNS server on loopback, is run by `maestro execute` alone, below.)"""
    async with never_reached(kind) as endpoint:
        yaml = never_sent_workflow(endpoint, schema)
        events = await asyncio.to_thread(run_to_end, stub, yaml, schema_files(schema))
    failed = failure(events)
    assert (failed.error.code, failed.in_doubt) == ("UNAVAILABLE", False), failed.error.message
    assert fragment in failed.error.message
    assert not [e for e in events if e.type == pb.EVENT_TYPE_COMPENSATION_STARTED]
    assert (events[-1].type, events[-1].state) == (
        pb.EVENT_TYPE_WORKFLOW_FAILED,
        pb.EXECUTION_STATE_FAILED,
    )


@pytest.mark.parametrize(
    ("schema", "kind", "fragment"), NEVER_SENT, ids=[f"{s}-{k}" for s, k, _ in NEVER_SENT]
)
async def test_cli_exits_two_for_a_request_that_never_left(
    tmp_path: Path, schema: str, kind: str, fragment: str
) -> None:
    """`maestro execute`, the service pointed there by --endpoint: exit 2 (failed, nothing to
    undo; not 3), the step failed not in doubt, no compensation started."""
    for name, content in schema_files(schema).items():
        (tmp_path / name).parent.mkdir(parents=True)
        (tmp_path / name).write_bytes(content)
    path = tmp_path / "workflow.yaml"
    path.write_text(never_sent_workflow("127.0.0.1:1", schema))
    async with never_reached(kind) as endpoint:
        result = await asyncio.to_thread(
            maestro,
            *("execute", path, "--input", "{}", "--events", "jsonl"),
            *("--endpoint", f"svc={endpoint}"),
        )
    assert result.returncode == 2, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["type"].removeprefix("EVENT_TYPE_") for e in printed] == [
        "WORKFLOW_STARTED",
        "STEP_STARTED",
        "STEP_FAILED",
        "WORKFLOW_FAILED",
    ]
    assert printed[2]["error"]["code"] == "UNAVAILABLE"
    assert fragment in printed[2]["error"]["message"]
    assert "inDoubt" not in printed[2], "JSON leaves out a false in_doubt"


async def test_a_reply_lost_after_the_request_left_is_asked_again(
    stub: rpc.OrchestratorStub,
) -> None:
    """The service acted on the request and its reply is lost (the connection is cut before
    the reply): the step is in doubt, so it is asked again under its key (probe attempts),
    the kept reply settles it, and the execution goes forward: COMPLETED, one effect."""

    async def lose_the_first_reply(call: int) -> None:
        if call == 1:
            proxy.cut()

    async with (
        deciding_billing(lose_the_first_reply) as (address, service),
        cuttable_proxy(address) as (through, proxy),
    ):
        yaml = SUBSCRIBE_THEN_CHECK.format(billing=through)
        events = await asyncio.to_thread(run_to_end, stub, yaml)
    subscribe = [e for e in events if e.step_id == "subscribe"]
    assert (subscribe[0].type, subscribe[0].attempt, subscribe[0].probe) == (
        pb.EVENT_TYPE_STEP_STARTED,
        1,
        False,
    )
    assert all(e.probe for e in subscribe[1:]), "asked again, marked as such"
    assert subscribe[-1].type == pb.EVENT_TYPE_STEP_SUCCEEDED
    assert not [e for e in events if e.type == pb.EVENT_TYPE_STEP_FAILED]
    (subscription,) = service.subscriptions.values()
    assert subscription.status == "ACTIVE", "never compensated"
    assert events[-1].type == pb.EVENT_TYPE_WORKFLOW_COMPLETED
    assert json_format.MessageToDict(events[-1].output) == {"subscription_id": subscription.id}
    effects = service.effects("CreateSubscription")
    assert list(effects.values()) == [1], "one effect under one key"
    deliveries = service.deliveries("CreateSubscription")
    assert len(deliveries) >= 2 and {key for key, _ in deliveries} == set(effects)
