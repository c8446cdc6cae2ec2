"""Maestro's one error hierarchy, each class mapped once to a gRPC status and a CLI exit code.

    MaestroError                  INTERNAL             exit 4  a bug or an unexpected state
    ├── InvalidWorkflowError      INVALID_ARGUMENT     exit 1  the YAML breaks the language
    ├── InvalidInputError         INVALID_ARGUMENT     exit 1  the execution input is unusable
    │   └── InvalidRequestError   INVALID_ARGUMENT     exit 1  a request field is unusable
    ├── TemplateError             INVALID_ARGUMENT     exit 1  a template failed (step + field)
    ├── NotFoundError             NOT_FOUND            exit 1
    ├── AlreadyExistsError        ALREADY_EXISTS       exit 1
    ├── FailedPreconditionError   FAILED_PRECONDITION  exit 1
    ├── AbortedError              ABORTED              exit 1  a concurrent request won
    ├── ResourceExhaustedError    RESOURCE_EXHAUSTED   exit 4
    ├── UnavailableError          UNAVAILABLE          exit 4
    ├── UnauthenticatedError      UNAUTHENTICATED      exit 4
    └── PermissionDeniedError     PERMISSION_DENIED    exit 4

Each error also has a `Reason` (the `google.rpc.ErrorInfo` reason clients branch on; the class
gives the default, a raise site may name a more precise one), `metadata` for the ErrorInfo, and
`violations`: the request fields at fault, as `google.rpc.BadRequest` field violations.

Exit codes of `maestro execute` for a workflow that ran are decided by its final state
(0 completed, 2 compensated or failed, 3 compensation failed); the codes above are for errors
that stop a command before or outside a run.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from maestro_server.diagnostics import Diagnostic

if TYPE_CHECKING:
    import grpc

ERROR_DOMAIN = "maestro.dev"
"""The `google.rpc.ErrorInfo` domain of every error the Orchestrator answers."""


class Reason(enum.StrEnum):
    """Why a call failed: `maestro.v1.ErrorReason` without its `ERROR_REASON_` prefix.

    The proto documents each one; a test keeps the two lists the same.
    """

    WORKFLOW_INVALID = "WORKFLOW_INVALID"
    INPUT_INVALID = "INPUT_INVALID"
    REQUEST_INVALID = "REQUEST_INVALID"
    REQUEST_UNDECODABLE = "REQUEST_UNDECODABLE"
    EXECUTION_NOT_FOUND = "EXECUTION_NOT_FOUND"
    WORKFLOW_NOT_FOUND = "WORKFLOW_NOT_FOUND"
    EXECUTION_ALREADY_EXISTS = "EXECUTION_ALREADY_EXISTS"
    WORKFLOW_VERSION_EXISTS = "WORKFLOW_VERSION_EXISTS"
    EXECUTION_NOT_RESUMABLE = "EXECUTION_NOT_RESUMABLE"
    EXECUTION_BEING_RESUMED = "EXECUTION_BEING_RESUMED"
    EXECUTION_CONFLICT = "EXECUTION_CONFLICT"
    TOO_MANY_EXECUTIONS = "TOO_MANY_EXECUTIONS"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    SERVER_DRAINING = "SERVER_DRAINING"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    TOKEN_INVALID = "TOKEN_INVALID"
    TOKEN_READ_ONLY = "TOKEN_READ_ONLY"
    INTERNAL = "INTERNAL"
    EXECUTION_FINISHED = "EXECUTION_FINISHED"


class Status(enum.Enum):
    """The gRPC status codes of these errors: `grpc.StatusCode`'s names, google.rpc's numbers.

    Not grpc.StatusCode itself: importing grpc costs a command that needs only these errors
    (`maestro validate`, say) more than the rest of its start-up.
    """

    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


EXIT_OK = 0
EXIT_INVALID = 1
EXIT_FAILED = 2
EXIT_COMPENSATION_FAILED = 3
EXIT_ERROR = 4


def exit_code_for_status(code: grpc.StatusCode) -> int:
    """The CLI exit code for an error a server answered with (the same as for local errors)."""
    for cls in (
        InvalidWorkflowError,
        NotFoundError,
        AlreadyExistsError,
        FailedPreconditionError,
        AbortedError,
        ResourceExhaustedError,
        UnavailableError,
    ):
        if cls.grpc_status.name == code.name:
            return cls.exit_code
    return EXIT_ERROR


class MaestroError(Exception):
    """Base of every error Maestro raises on purpose."""

    grpc_status: ClassVar[Status] = Status.INTERNAL
    exit_code: ClassVar[int] = EXIT_ERROR
    default_reason: ClassVar[Reason] = Reason.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        reason: Reason | None = None,
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_reason = reason or self.default_reason
        """The ErrorInfo reason (`reason` is a TemplateError's own message)."""
        self.metadata = dict(metadata or {})
        """ErrorInfo metadata, lowerCamelCase keys (AIP-193): `executionId`, `field`…"""
        self.violations = tuple(violations)
        """(request field path, description) for each field at fault."""


class InvalidWorkflowError(MaestroError):
    """The workflow definition is invalid; `diagnostics` lists every problem found."""

    grpc_status = Status.INVALID_ARGUMENT
    exit_code = EXIT_INVALID
    default_reason = Reason.WORKFLOW_INVALID

    def __init__(
        self,
        diagnostics: Sequence[Diagnostic],
        *,
        field: str = "workflow_yaml",
        files: Sequence[str] = (),
    ) -> None:
        self.diagnostics = tuple(diagnostics)
        count = len(self.diagnostics)
        summary = f"invalid workflow: {count} problem{'s' if count != 1 else ''}"
        # A problem in one of the request's `files` is that field's; any other is `field`'s.
        located = [
            (
                f'files["{d.location.file}"]' if d.location.file in files else field,
                f"{d.location}{f' ({d.path})' if d.path else ''}: {d.message}",
            )
            for d in self.diagnostics
        ]
        super().__init__("\n".join([summary, *(str(d) for d in self.diagnostics)]))
        self.violations = tuple(located)

    def in_request(self, field: str, files: Sequence[str]) -> InvalidWorkflowError:
        """The same problems, blamed on the request field that held the workflow."""
        return InvalidWorkflowError(self.diagnostics, field=field, files=files)


class InvalidInputError(MaestroError):
    """The execution input is unusable (not an object, too deep, against the input schema)."""

    grpc_status = Status.INVALID_ARGUMENT
    exit_code = EXIT_INVALID
    default_reason = Reason.INPUT_INVALID


class InvalidRequestError(InvalidInputError):
    """A request is unusable: a field missing, malformed or contradicting another (named).

    Without a field, the request as a whole (bytes that do not decode). A kind of
    InvalidInputError: what a caller gave is unusable, whether the input or another field.
    """

    default_reason = Reason.REQUEST_INVALID

    def __init__(self, field: str, message: str, *, reason: Reason | None = None) -> None:
        super().__init__(
            message,
            reason=reason,
            metadata={"field": field} if field else None,
            violations=[(field, message)] if field else (),
        )
        self.field = field


class TemplateError(MaestroError):
    """A template failed to render; names the step (or `output`) and the field."""

    grpc_status = Status.INVALID_ARGUMENT
    exit_code = EXIT_INVALID
    default_reason = Reason.INPUT_INVALID

    def __init__(self, message: str, *, step: str | None, field: str) -> None:
        where = f"step '{step}', field '{field}'" if step else f"field '{field}'"
        super().__init__(f"{where}: {message}")
        self.reason = message
        self.step = step
        self.field = field


class NotFoundError(MaestroError):
    """A workflow, execution or file that was asked for does not exist."""

    grpc_status = Status.NOT_FOUND
    exit_code = EXIT_INVALID
    default_reason = Reason.EXECUTION_NOT_FOUND


class AlreadyExistsError(MaestroError):
    """An id or a workflow version is reused with different content."""

    grpc_status = Status.ALREADY_EXISTS
    exit_code = EXIT_INVALID
    default_reason = Reason.EXECUTION_ALREADY_EXISTS


class FailedPreconditionError(MaestroError):
    """The operation is not allowed in the current state."""

    grpc_status = Status.FAILED_PRECONDITION
    exit_code = EXIT_INVALID
    default_reason = Reason.EXECUTION_CONFLICT


class AbortedError(MaestroError):
    """A concurrent request on the same execution won; this one did nothing."""

    grpc_status = Status.ABORTED
    exit_code = EXIT_INVALID
    default_reason = Reason.EXECUTION_BEING_RESUMED


class ResourceExhaustedError(MaestroError):
    """A limit was reached; retry later."""

    grpc_status = Status.RESOURCE_EXHAUSTED
    default_reason = Reason.TOO_MANY_EXECUTIONS


class UnavailableError(MaestroError):
    """The server or a part it needs is not available right now."""

    grpc_status = Status.UNAVAILABLE
    default_reason = Reason.STORE_UNAVAILABLE


class UnauthenticatedError(MaestroError):
    """No bearer token, or one the server does not know."""

    grpc_status = Status.UNAUTHENTICATED
    default_reason = Reason.TOKEN_INVALID


class PermissionDeniedError(MaestroError):
    """The caller may not do this (a read-only token)."""

    grpc_status = Status.PERMISSION_DENIED
    default_reason = Reason.TOKEN_READ_ONLY
