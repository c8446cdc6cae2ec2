"""Client errors: one class per gRPC status the server uses, mirroring the server's errors."""

from __future__ import annotations

from typing import Any, ClassVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class MaestroError(Exception):
    """An error answered by (or on the way to) a Maestro server."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        """Rich error details (google.rpc messages) the server attached."""


class InvalidArgumentError(MaestroError):
    """A bad workflow, input or request; `violations` lists each problem with its location.

    The server's InvalidWorkflowError, InvalidInputError and TemplateError: one status on the
    wire, so one class here, named after the status.
    """

    code = grpc.StatusCode.INVALID_ARGUMENT

    @property
    def violations(self) -> list[tuple[str, str]]:
        """(where, what) for each problem: `workflow.yaml:12:5 (steps[1].retry)`, message."""
        return [
            (v.field, v.description)
            for d in self.details
            if isinstance(d, error_details_pb2.BadRequest)
            for v in d.field_violations
        ]


class NotFoundError(MaestroError):
    """No such workflow or execution."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(MaestroError):
    """An execution id or workflow version reused with different content."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(MaestroError):
    """Not allowed in the current state (e.g. cancelling a finished execution)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhaustedError(MaestroError):
    """The server is at its limit; try again later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnauthenticatedError(MaestroError):
    """No token, or one the server does not know."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(MaestroError):
    """The token may not do this (a read-only token starting an execution, say)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class UnavailableError(MaestroError):
    """The server cannot be reached or is shutting down."""

    code = grpc.StatusCode.UNAVAILABLE


_BY_CODE = {
    cls.code: cls
    for cls in (
        UnauthenticatedError,
        PermissionDeniedError,
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        FailedPreconditionError,
        ResourceExhaustedError,
        UnavailableError,
    )
}
_DETAIL_TYPES = (error_details_pb2.BadRequest, error_details_pb2.RetryInfo)


def from_rpc_error(exc: grpc.RpcError) -> MaestroError:
    """The client error for a failed call."""
    code = exc.code()
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    details: list[Any] = []
    for packed in status.details if status is not None else ():
        for detail_type in _DETAIL_TYPES:
            if packed.Is(detail_type.DESCRIPTOR):
                detail = detail_type()
                packed.Unpack(detail)
                details.append(detail)
    cls = _BY_CODE.get(code, MaestroError)
    error = cls(exc.details() or code.name, details=details)
    if cls is MaestroError:
        error.message = f"{code.name}: {error.message}"
    return error
