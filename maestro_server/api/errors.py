"""Maestro errors → gRPC statuses, with `grpc-status-details-bin` rich details.

Every status carries exactly one `google.rpc.ErrorInfo` (domain `maestro.dev`, the error's
reason, its metadata). Errors that blame request fields add a `google.rpc.BadRequest` with
request-field paths; an invalid workflow adds each problem as a `maestro.v1.Diagnostic`, so
its file, line and column stay structured; a full server adds a `google.rpc.RetryInfo`.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from maestro_server.api.convert import diagnostic_to_proto
from maestro_server.errors import (
    ERROR_DOMAIN,
    InvalidWorkflowError,
    MaestroError,
    Reason,
)

_RETRY_DELAY_SECONDS = 1


def error_info(exc: MaestroError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo of an error."""
    return error_details_pb2.ErrorInfo(
        reason=exc.error_reason.value, domain=ERROR_DOMAIN, metadata=exc.metadata
    )


def to_status(exc: MaestroError) -> grpc.Status:
    """The status a client sees for an error: its code, message and details."""
    details: list[Any] = []
    if exc.violations:
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
            for field, description in exc.violations
        ]
        details.append(error_details_pb2.BadRequest(field_violations=violations))
    if isinstance(exc, InvalidWorkflowError):
        details.extend(diagnostic_to_proto(d) for d in exc.diagnostics)
    if exc.error_reason is Reason.TOO_MANY_EXECUTIONS:
        delay = duration_pb2.Duration(seconds=_RETRY_DELAY_SECONDS)
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    details.append(error_info(exc))
    packed = []
    for detail in details:
        wrapper = any_pb2.Any()
        wrapper.Pack(detail)
        packed.append(wrapper)
    code = getattr(code_pb2, exc.grpc_status.name)
    return rpc_status.to_status(status_pb2.Status(code=code, message=exc.message, details=packed))


def internal_status() -> grpc.Status:
    """The status of a bug: INTERNAL, and nothing of what went wrong (the log has it)."""
    return to_status(MaestroError("internal error; see the server log"))
