"""Maestro's one error hierarchy, each class mapped once to a gRPC status and a CLI exit code.

    MaestroError                  INTERNAL             exit 4  a bug or an unexpected state
    ├── InvalidWorkflowError      INVALID_ARGUMENT     exit 1  the YAML breaks the language
    ├── InvalidInputError         INVALID_ARGUMENT     exit 1  the execution input is unusable
    ├── TemplateError             INVALID_ARGUMENT     exit 1  a template failed (step + field)
    ├── NotFoundError             NOT_FOUND            exit 1
    ├── AlreadyExistsError        ALREADY_EXISTS       exit 1
    ├── FailedPreconditionError   FAILED_PRECONDITION  exit 1
    ├── ResourceExhaustedError    RESOURCE_EXHAUSTED   exit 4
    └── UnavailableError          UNAVAILABLE          exit 4

Exit codes of `maestro execute` for a workflow that ran are decided by its final state
(0 completed, 2 compensated or failed, 3 compensation failed); the codes above are for errors
that stop a command before or outside a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import grpc

from maestro_server.diagnostics import Diagnostic

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
        ResourceExhaustedError,
        UnavailableError,
    ):
        if cls.grpc_status == code:
            return cls.exit_code
    return EXIT_ERROR


class MaestroError(Exception):
    """Base of every error Maestro raises on purpose."""

    grpc_status: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    exit_code: ClassVar[int] = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidWorkflowError(MaestroError):
    """The workflow definition is invalid; `diagnostics` lists every problem found."""

    grpc_status = grpc.StatusCode.INVALID_ARGUMENT
    exit_code = EXIT_INVALID

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        count = len(self.diagnostics)
        summary = f"invalid workflow: {count} problem{'s' if count != 1 else ''}"
        super().__init__("\n".join([summary, *(str(d) for d in self.diagnostics)]))


class InvalidInputError(MaestroError):
    """The execution input is unusable (not an object, too deep, against the input schema)."""

    grpc_status = grpc.StatusCode.INVALID_ARGUMENT
    exit_code = EXIT_INVALID


class TemplateError(MaestroError):
    """A template failed to render; names the step (or `output`) and the field."""

    grpc_status = grpc.StatusCode.INVALID_ARGUMENT
    exit_code = EXIT_INVALID

    def __init__(self, message: str, *, step: str | None, field: str) -> None:
        where = f"step '{step}', field '{field}'" if step else f"field '{field}'"
        super().__init__(f"{where}: {message}")
        self.reason = message
        self.step = step
        self.field = field


class NotFoundError(MaestroError):
    """A workflow, execution or file that was asked for does not exist."""

    grpc_status = grpc.StatusCode.NOT_FOUND
    exit_code = EXIT_INVALID


class AlreadyExistsError(MaestroError):
    """An id or a workflow version is reused with different content."""

    grpc_status = grpc.StatusCode.ALREADY_EXISTS
    exit_code = EXIT_INVALID


class FailedPreconditionError(MaestroError):
    """The operation is not allowed in the current state."""

    grpc_status = grpc.StatusCode.FAILED_PRECONDITION
    exit_code = EXIT_INVALID


class ResourceExhaustedError(MaestroError):
    """A limit was reached; retry later."""

    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnavailableError(MaestroError):
    """The server or a part it needs is not available right now."""

    grpc_status = grpc.StatusCode.UNAVAILABLE
