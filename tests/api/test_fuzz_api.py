"""Fuzzing the API: any request, however malformed, gets a typed answer, never an internal error.

Requests are built field by field from hypothesis strategies (random text, huge and negative
numbers, unknown enum values, random YAML, random input structures) and sent to a real
`maestro serve`. MAESTRO_FUZZ_EXAMPLES sets how many per RPC (`make fuzz` runs many more).
"""

import os
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server._proto.maestro.v1 import orchestrator_pb2_grpc as rpc
from tests.api.conftest import maestro_serve

FUZZ = settings(
    max_examples=int(os.environ.get("MAESTRO_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# What a typed Maestro error maps to; anything else (INTERNAL, UNKNOWN, …) is a crash.
TYPED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.OUT_OF_RANGE,
}
VALID_YAML = """\
name: fuzzed
services:
  svc: {type: grpc, endpoint: "127.0.0.1:1"}
steps:
  - {id: a, service: svc, method: Do, input: {x: "{{ .input.x }}"}, retry: {max_attempts: 1}}
"""

texts = st.text(max_size=300) | st.sampled_from(["", " ", "\x00", "é" * 5000, "../../etc"])
ints64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
ints32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
    max_leaves=30,
)
yamls = (
    st.just(VALID_YAML)
    | texts
    | st.builds(lambda junk: VALID_YAML.replace("Do", junk), texts)
    | st.builds(lambda junk: VALID_YAML + junk, texts)
)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


@st.composite
def start_requests(draw: st.DrawFn) -> pb.StartWorkflowRequest:
    request = pb.StartWorkflowRequest(
        input=struct(draw(st.dictionaries(texts, json_values, max_size=5))),
        execution_id=draw(texts),
        files=draw(st.dictionaries(texts, st.binary(max_size=200), max_size=3)),
        workflow_path=draw(texts),
    )
    if draw(st.booleans()):
        request.workflow_yaml = draw(yamls)
    elif draw(st.booleans()):
        request.reference.name = draw(texts)
        request.reference.version = draw(texts)
    return request  # with neither: the workflow is missing


@pytest.fixture(scope="module")
def stub() -> Iterator[rpc.OrchestratorStub]:
    with maestro_serve() as server, grpc.insecure_channel(server.address) as channel:
        yield rpc.OrchestratorStub(channel)


def answered(call: Any, request: Any) -> None:
    """Make the call; an error must be typed and say what is wrong."""
    try:
        reply = call(request, timeout=30)
        if hasattr(reply, "__iter__") and not hasattr(reply, "ListFields"):
            next(iter(reply), None)  # a stream: its first answer (or its error)
    except grpc.RpcError as exc:
        assert exc.code() in TYPED, f"{exc.code()}: {exc.details()} for {request}"
        assert exc.details(), f"{exc.code()} without a message for {request}"


@FUZZ
@given(request=start_requests())
def test_start_workflow(stub: rpc.OrchestratorStub, request: Any) -> None:
    answered(stub.StartWorkflow, request)


@FUZZ
@given(yaml=yamls, path=texts, files=st.dictionaries(texts, st.binary(max_size=100), max_size=3))
def test_validate_and_register(
    stub: rpc.OrchestratorStub, yaml: str, path: str, files: dict[str, bytes]
) -> None:
    answered(
        stub.ValidateWorkflow,
        pb.ValidateWorkflowRequest(workflow_yaml=yaml, workflow_path=path, files=files),
    )
    answered(
        stub.RegisterWorkflow,
        pb.RegisterWorkflowRequest(workflow_yaml=yaml, workflow_path=path, files=files),
    )


@FUZZ
@given(execution_id=texts, after=ints64, reason=texts)
def test_execution_rpcs(
    stub: rpc.OrchestratorStub, execution_id: str, after: int, reason: str
) -> None:
    answered(
        stub.WatchExecution,
        pb.WatchExecutionRequest(execution_id=execution_id, after_sequence=after),
    )
    answered(stub.GetExecution, pb.GetExecutionRequest(execution_id=execution_id))
    answered(
        stub.CancelExecution, pb.CancelExecutionRequest(execution_id=execution_id, reason=reason)
    )
    answered(stub.ResumeExecution, pb.ResumeExecutionRequest(execution_id=execution_id))


@FUZZ
@given(
    name=texts,
    version=texts,
    states=st.lists(st.integers(min_value=-5, max_value=50), max_size=4),
    size=ints32,
    token=texts,
)
def test_listing_rpcs(
    stub: rpc.OrchestratorStub,
    name: str,
    version: str,
    states: list[int],
    size: int,
    token: str,
) -> None:
    answered(
        stub.ListExecutions,
        pb.ListExecutionsRequest(
            workflow_name=name,
            states=states,  # type: ignore[arg-type]  # unknown enum values on purpose
            page_size=size,
            page_token=token,
        ),
    )
    answered(stub.GetWorkflow, pb.GetWorkflowRequest(name=name, version=version))
    answered(
        stub.ListWorkflows,
        pb.ListWorkflowsRequest(name=name, page_size=size, page_token=token),
    )
