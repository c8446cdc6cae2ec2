"""The one mapping from Maestro errors to gRPC statuses, with rich details."""

import grpc
from google.rpc import error_details_pb2, status_pb2

from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server.api.errors import to_status
from maestro_server.diagnostics import Diagnostic, SourceLocation
from maestro_server.errors import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidInputError,
    InvalidRequestError,
    InvalidWorkflowError,
    MaestroError,
    NotFoundError,
    Reason,
    ResourceExhaustedError,
    Status,
    UnavailableError,
)


def _details(status: grpc.Status) -> list[object]:
    ((_key, value),) = [m for m in status.trailing_metadata if m[0] == "grpc-status-details-bin"]
    decoded = status_pb2.Status.FromString(value)
    found: list[object] = []
    for packed in decoded.details:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
            if packed.Is(kind.DESCRIPTOR):
                detail = kind()
                packed.Unpack(detail)
                found.append(detail)
    return found


def test_each_error_has_its_status_code() -> None:
    """Every class maps to one code."""
    cases = {
        InvalidInputError("x"): grpc.StatusCode.INVALID_ARGUMENT,
        NotFoundError("x"): grpc.StatusCode.NOT_FOUND,
        AlreadyExistsError("x"): grpc.StatusCode.ALREADY_EXISTS,
        FailedPreconditionError("x"): grpc.StatusCode.FAILED_PRECONDITION,
        ResourceExhaustedError("x"): grpc.StatusCode.RESOURCE_EXHAUSTED,
        UnavailableError("x"): grpc.StatusCode.UNAVAILABLE,
    }
    for error, code in cases.items():
        status = to_status(error)
        assert (status.code, status.details) == (code, "x")


def test_invalid_workflow_carries_each_diagnostic_as_a_field_violation() -> None:
    """BadRequest names the request field (one of `files` when the problem is in it), with
    file:line:column and path in the description; each Diagnostic rides along whole."""
    diagnostics = [
        Diagnostic(SourceLocation("w.yaml", 3, 5), "bad thing", "code", "steps[0].id"),
        Diagnostic(SourceLocation("p/a.proto", 1, 1), "bad proto", "proto"),
    ]
    error = InvalidWorkflowError(diagnostics).in_request("workflow_yaml", ["p/a.proto"])
    status = to_status(error)
    (bad,) = _details(status)
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("workflow_yaml", "w.yaml:3:5 (steps[0].id): bad thing"),
        ('files["p/a.proto"]', "p/a.proto:1:1: bad proto"),
    ]
    sent = [d for d in _all_details(status) if isinstance(d, pb.Diagnostic)]
    assert [(d.file, d.line, d.column, d.path) for d in sent] == [
        ("w.yaml", 3, 5, "steps[0].id"),
        ("p/a.proto", 1, 1, ""),
    ]
    (info,) = [d for d in _all_details(status) if isinstance(d, error_details_pb2.ErrorInfo)]
    assert (info.domain, info.reason) == ("maestro.dev", "WORKFLOW_INVALID")


def _all_details(status: grpc.Status) -> list[object]:
    ((_key, value),) = [m for m in status.trailing_metadata if m[0] == "grpc-status-details-bin"]
    found: list[object] = []
    for packed in status_pb2.Status.FromString(value).details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, pb.Diagnostic):
            if packed.Is(kind.DESCRIPTOR):
                detail = kind()
                packed.Unpack(detail)
                found.append(detail)
    return found


def test_every_error_carries_one_error_info_with_its_reason() -> None:
    """Exactly one ErrorInfo per status: the domain, the class's reason (or the raise site's),
    and the metadata given."""
    cases = {
        InvalidInputError("x"): "INPUT_INVALID",
        InvalidRequestError("page_size", "x"): "REQUEST_INVALID",
        NotFoundError("x", metadata={"executionId": "e"}): "EXECUTION_NOT_FOUND",
        NotFoundError("x", reason=Reason.WORKFLOW_NOT_FOUND): "WORKFLOW_NOT_FOUND",
        AlreadyExistsError("x"): "EXECUTION_ALREADY_EXISTS",
        FailedPreconditionError("x"): "EXECUTION_CONFLICT",
        AbortedError("x"): "EXECUTION_BEING_RESUMED",
        ResourceExhaustedError("x"): "TOO_MANY_EXECUTIONS",
        UnavailableError("x"): "STORE_UNAVAILABLE",
        MaestroError("x"): "INTERNAL",
    }
    for error, reason in cases.items():
        infos = [
            d for d in _all_details(to_status(error)) if isinstance(d, error_details_pb2.ErrorInfo)
        ]
        assert [(i.domain, i.reason, dict(i.metadata)) for i in infos] == [
            ("maestro.dev", reason, error.metadata)
        ]


def test_the_statuses_are_grpcs_by_name_and_number() -> None:
    """errors.Status (kept free of grpc for the CLI's start-up) is a part of grpc.StatusCode."""
    for status in Status:
        assert grpc.StatusCode[status.name].value[0] == status.value


def test_the_reasons_are_the_ones_the_proto_lists() -> None:
    """errors.Reason and maestro.v1.ErrorReason name the same reasons."""
    listed = {
        name.removeprefix("ERROR_REASON_")
        for name in pb.DESCRIPTOR.enum_types_by_name["ErrorReason"].values_by_name
        if name != "ERROR_REASON_UNSPECIFIED"
    }
    assert {reason.value for reason in Reason} == listed


def test_a_request_field_error_names_the_field() -> None:
    """BadRequest and the ErrorInfo's metadata both name the field."""
    status = to_status(InvalidRequestError("execution_id", "execution_id is empty"))
    (bad,) = _details(status)
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("execution_id", "execution_id is empty")
    ]


def test_resource_exhausted_says_when_to_retry() -> None:
    """RetryInfo tells a client how long to back off."""
    (retry,) = _details(to_status(ResourceExhaustedError("full")))
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert retry.retry_delay.seconds == 1
