"""Maestro errors → gRPC statuses, with `grpc-status-details-bin` rich details where they help."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from maestro_server.errors import InvalidWorkflowError, MaestroError, ResourceExhaustedError

_RETRY_DELAY_SECONDS = 1


def to_status(exc: MaestroError) -> grpc.Status:
    """The status a client sees for an error: its code, message and details."""
    details: list[Any] = []
    message = exc.message
    if isinstance(exc, InvalidWorkflowError):
        violations = [
            error_details_pb2.BadRequest.FieldViolation(
                field=f"{d.location}" + (f" ({d.path})" if d.path else ""),
                description=d.message,
            )
            for d in exc.diagnostics
        ]
        details.append(error_details_pb2.BadRequest(field_violations=violations))
    elif isinstance(exc, ResourceExhaustedError):
        delay = duration_pb2.Duration(seconds=_RETRY_DELAY_SECONDS)
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for detail in details:
        wrapper = any_pb2.Any()
        wrapper.Pack(detail)
        packed.append(wrapper)
    code = getattr(code_pb2, exc.grpc_status.name)
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=packed))
