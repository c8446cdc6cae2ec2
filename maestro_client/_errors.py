"""Errors of the calls themselves: one class per gRPC status the server uses.

    MaestroError                 any other status (its name leads the message)
    ├── InvalidArgumentError     a bad workflow, input or request field (`violations`)
    ├── NotFoundError
    ├── AlreadyExistsError
    ├── FailedPreconditionError
    ├── AbortedError             a concurrent request won (two resumes of one execution)
    ├── ResourceExhaustedError   `retry_delay` says when to try again
    ├── UnauthenticatedError
    ├── PermissionDeniedError
    └── UnavailableError

Every error the server answers carries a `google.rpc.ErrorInfo`: its `reason` (a name of
`maestro.v1.ErrorReason`, such as `EXECUTION_NOT_FOUND`) is what to branch on, and its
`metadata` names what the error is about (`executionId`). How an execution ended is no error
of a call: see `_failures`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any, ClassVar

import betterproto2
import grpc

from maestro_client._proto.google.rpc import (
    BadRequest,
    BadRequestFieldViolation,
    ErrorInfo,
    RetryInfo,
    Status,
)
from maestro_client._proto.maestro.v1 import Diagnostic

_DETAILS_KEY = "grpc-status-details-bin"
_DETAIL_TYPES = (ErrorInfo, BadRequest, RetryInfo, Diagnostic)


class MaestroError(Exception):
    """An error answered by (or on the way to) a Maestro server."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        """Rich error details the server attached: google.rpc ErrorInfo, BadRequest and
        RetryInfo, and maestro.v1 Diagnostics."""

    @property
    def error_info(self) -> ErrorInfo | None:
        """The ErrorInfo (every server error has one; an error of the connection has none)."""
        return next((d for d in self.details if isinstance(d, ErrorInfo)), None)

    @property
    def reason(self) -> str:
        """Why, as a stable name of `maestro.v1.ErrorReason`; empty without an ErrorInfo."""
        info = self.error_info
        return info.reason if info is not None else ""

    @property
    def metadata(self) -> dict[str, str]:
        """What the error is about, for example `{"executionId": "order-42"}`."""
        info = self.error_info
        return dict(info.metadata) if info is not None else {}


class InvalidArgumentError(MaestroError):
    """A bad workflow, input or request; `violations` lists each problem with its location.

    The server's InvalidWorkflowError, InvalidInputError and TemplateError: one status on the
    wire, so one class here, named after the status.
    """

    code = grpc.StatusCode.INVALID_ARGUMENT

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """Each problem of an invalid workflow, with its file, line, column and path."""
        return [d for d in self.details if isinstance(d, Diagnostic)]

    @property
    def field_violations(self) -> list[tuple[str, str]]:
        """(request field, what is wrong): `("input.order_id", "… is a required property")`."""
        return [
            (v.field, v.description)
            for d in self.details
            if isinstance(d, BadRequest)
            for v in d.field_violations
        ]

    @property
    def violations(self) -> list[tuple[str, str]]:
        """(where, what) for each problem: `workflow.yaml:12:5 (steps[1].retry)`, message.

        A workflow's problems are placed in its file; any other's at its request field.
        """
        if self.diagnostics:
            return [
                (f"{d.file}:{d.line}:{d.column}" + (f" ({d.path})" if d.path else ""), d.message)
                for d in self.diagnostics
            ]
        return self.field_violations


class NotFoundError(MaestroError):
    """No such workflow or execution."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(MaestroError):
    """An execution id or workflow version reused with different content."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(MaestroError):
    """Not allowed in the current state (e.g. resuming an execution that did not fail)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(MaestroError):
    """A concurrent request on the same execution won (e.g. another resume)."""

    code = grpc.StatusCode.ABORTED


class ResourceExhaustedError(MaestroError):
    """The server is at its limit; try again later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    @property
    def retry_delay(self) -> timedelta | None:
        """How long the server asks to wait before trying again, when it says."""
        return next(
            (d.retry_delay for d in self.details if isinstance(d, RetryInfo) and d.retry_delay),
            None,
        )


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
        AbortedError,
        ResourceExhaustedError,
        UnavailableError,
    )
}


def from_rpc_error(exc: grpc.RpcError) -> MaestroError:
    """The client error for a failed call."""
    call: Any = exc  # grpc.RpcError types none of the Call methods its instances have
    code: grpc.StatusCode = call.code()
    cls = _BY_CODE.get(code, MaestroError)
    error = cls(call.details() or code.name, details=_details(call.trailing_metadata()))
    if cls is MaestroError:
        error.message = f"{code.name}: {error.message}"
    return error


def invalid_input(field: str, description: str, reason: str = "INPUT_INVALID") -> MaestroError:
    """An InvalidArgumentError found before sending, shaped as the server's would be."""
    details: list[Any] = [
        ErrorInfo(reason=reason, domain="maestro.dev", metadata={"field": field}),
        BadRequest(
            field_violations=[BadRequestFieldViolation(field=field, description=description)]
        ),
    ]
    return InvalidArgumentError(f"{field}: {description}", details=details)


def _details(trailers: Iterable[Any] | None) -> list[betterproto2.Message]:
    """The rich details of `grpc-status-details-bin`, of the kinds this client knows."""
    for key, value in trailers or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            status = Status.parse(value)
            return [
                detail
                for packed in status.details
                if isinstance(detail := _unpack(packed), _DETAIL_TYPES)
            ]
    return []


def _unpack(packed: Any) -> Any:
    try:
        return packed.unpack()
    except TypeError:  # a detail of a kind no module here registered
        return None
