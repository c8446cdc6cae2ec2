"""The one mapping from Maestro errors to gRPC statuses, with rich details."""

import grpc
from google.rpc import error_details_pb2, status_pb2

from maestro_server.api.errors import to_status
from maestro_server.diagnostics import Diagnostic, SourceLocation
from maestro_server.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidInputError,
    InvalidWorkflowError,
    NotFoundError,
    ResourceExhaustedError,
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
    """BadRequest details locate each problem (file:line:column and path)."""
    diagnostics = [Diagnostic(SourceLocation("w.yaml", 3, 5), "bad thing", "code", "steps[0].id")]
    (bad,) = _details(to_status(InvalidWorkflowError(diagnostics)))
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("w.yaml:3:5 (steps[0].id)", "bad thing")
    ]


def test_resource_exhausted_says_when_to_retry() -> None:
    """RetryInfo tells a client how long to back off."""
    (retry,) = _details(to_status(ResourceExhaustedError("full")))
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert retry.retry_delay.seconds == 1
