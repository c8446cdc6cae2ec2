"""Model ⇄ `maestro.v1` messages: the one place where domain objects meet generated code."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server.model.execution import ErrorInfo, Event


def _struct(value: Any) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value if isinstance(value, dict) else {"value": value})
    return message


def error_to_proto(error: ErrorInfo) -> pb.Error:
    """The proto form of an error."""
    return pb.Error(
        code=error.code, message=error.message, service=error.service, retryable=error.retryable
    )


def event_to_proto(event: Event) -> pb.WorkflowEvent:
    """The proto form of an event."""
    message = pb.WorkflowEvent(
        execution_id=event.execution_id,
        sequence=event.sequence,
        type=pb.EventType.Value(f"EVENT_TYPE_{event.type.value}"),
        state=pb.ExecutionState.Value(f"EXECUTION_STATE_{event.state.value}"),
        step_id=event.step_id,
        attempt=event.attempt,
    )
    message.time.FromDatetime(event.time)
    if event.output is not None:
        message.output.CopyFrom(_struct(event.output))
    if event.error is not None:
        message.error.CopyFrom(error_to_proto(event.error))
    if event.duration is not None:
        message.duration.FromTimedelta(event.duration)
    if event.retry_delay is not None:
        message.retry_delay.FromTimedelta(event.retry_delay)
    return message


def event_to_json(event: Event) -> str:
    """One event as a line of JSON, in the proto's JSON mapping."""
    return json_format.MessageToJson(event_to_proto(event), indent=None)
