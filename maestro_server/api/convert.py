"""Model ⇄ `maestro.v1` messages: the one place where domain objects meet generated code."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server.diagnostics import Diagnostic
from maestro_server.errors import InvalidRequestError
from maestro_server.json_numbers import struct_numbers, whole_numbers
from maestro_server.model.execution import Cause, ErrorInfo, Event, EventType, ExecutionState
from maestro_server.model.progress import StepProgress
from maestro_server.store.base import ExecutionRecord, StoredWorkflow


def to_struct(value: Any) -> struct_pb2.Struct:
    """A JSON value as a Struct (anything but an object under a `value` key)."""
    message = struct_pb2.Struct()
    message.update(value if isinstance(value, dict) else {"value": value})
    return message


def set_output(message: Any, value: Any) -> None:
    """Fill a message's `output` (a Struct), and its `output_value` for a non-object.

    A Struct holds only objects: a for_each step's list goes into `output` under the key
    `value` (as any non-object always has), and into `output_value` as it is.
    """
    message.output.CopyFrom(to_struct(value))
    if not isinstance(value, dict):
        json_format.ParseDict(value, message.output_value)


def output_of(message: Any) -> Any:
    """The output a message carries: its `output_value` when set, else its `output` Struct."""
    if message.HasField("output_value"):
        return whole_numbers(json_format.MessageToDict(message.output_value))
    return struct_to_dict(message.output) if message.HasField("output") else None


def error_to_proto(error: ErrorInfo) -> pb.Error:
    """The proto form of an error."""
    return pb.Error(
        code=error.code, message=error.message, service=error.service, retryable=error.retryable
    )


# Every streamed event is converted: its enums by lookup, its time without a time tuple
# (`Timestamp.FromDatetime` costs more than the rest of an event without an output).
_EVENT_TYPES = {t: pb.EventType.Value(f"EVENT_TYPE_{t.value}") for t in EventType}
_STATES = {s: pb.ExecutionState.Value(f"EXECUTION_STATE_{s.value}") for s in ExecutionState}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_to_proto(event: Event) -> pb.WorkflowEvent:
    """The proto form of an event."""
    message = pb.WorkflowEvent(
        execution_id=event.execution_id,
        sequence=event.sequence,
        type=_EVENT_TYPES[event.type],
        state=_STATES[event.state],
        step_id=event.step_id,
        attempt=event.attempt,
        in_doubt=event.in_doubt,
        probe=event.probe,
        element_index=event.element_index,
    )
    time = event.time if event.time.tzinfo is not None else event.time.replace(tzinfo=UTC)
    since = time - _EPOCH
    message.time.seconds = since.days * 86400 + since.seconds
    message.time.nanos = since.microseconds * 1000
    if event.output is not None:
        set_output(message, event.output)
    if event.error is not None:
        message.error.CopyFrom(error_to_proto(event.error))
    if event.duration is not None:
        message.duration.FromTimedelta(event.duration)
    if event.retry_delay is not None:
        message.retry_delay.FromTimedelta(event.retry_delay)
    _timestamp(message.deadline, event.deadline)
    message.signal_name = event.signal_name
    message.signal_id = event.signal_id
    message.child_execution_id = event.child_execution_id
    return message


def event_to_json_line(event: Event) -> str:
    """One event as a line of JSON, in the proto's JSON mapping (whole numbers as integers)."""
    return message_to_json(event_to_proto(event))


def message_to_json(message: Message, *, indent: int | None = None) -> str:
    """A message in the proto's JSON mapping, whole numbers under its Structs as integers.

    `json_format.MessageToJson` prints a Struct's 3 as `3.0` (Struct numbers are doubles).
    """
    data = struct_numbers(message.DESCRIPTOR, json_format.MessageToDict(message))
    return json.dumps(data, indent=indent, ensure_ascii=False)


def struct_to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain JSON, whole numbers as ints.

    Struct keeps every number as a double, and `{"count": 1}` should stay 1 in an HTTP body.
    """
    return whole_numbers(json_format.MessageToDict(message))  # type: ignore[no-any-return]


def _timestamp(message: Any, value: datetime | None) -> None:
    if value is not None:
        message.FromDatetime(value)


def execution_to_proto(record: ExecutionRecord, *, with_steps: bool = True) -> pb.Execution:
    """The proto form of an execution, from its progress (its steps in definition order)."""
    progress = record.progress
    message = pb.Execution(
        execution_id=record.execution_id,
        workflow_name=record.workflow_name,
        workflow_version=record.workflow_version,
        workflow_hash=record.workflow_hash,
        state=pb.ExecutionState.Value(f"EXECUTION_STATE_{progress.state.value}"),
        last_sequence=progress.last_sequence,
        parent_execution_id=record.parent_execution_id,
    )
    message.input.CopyFrom(to_struct(record.input))
    if progress.output is not None:
        set_output(message, progress.output)
    if progress.error is not None:
        message.error.CopyFrom(error_to_proto(progress.error))
    _timestamp(message.create_time, record.created_at)
    _timestamp(message.end_time, progress.ended_at)
    if progress.stop is not None and progress.stop.cause is Cause.STEP_FAILED:
        message.failed_step_id = progress.stop.step_id
    if with_steps:
        for step_id in record.step_ids:
            summary = progress.step(step_id)
            step = message.steps.add(
                step_id=step_id,
                state=pb.StepState.Value(f"STEP_STATE_{summary.state.value}"),
                attempts=summary.attempts,
            )
            if summary.output is not None:
                set_output(step, summary.output)
            if summary.error is not None:
                step.error.CopyFrom(error_to_proto(summary.error))
            _timestamp(step.start_time, summary.started_at)
            _timestamp(step.end_time, summary.ended_at)
            _timestamp(step.deadline, summary.deadline)
            step.signal_id = summary.signal_id
            step.child_execution_ids.extend(_children(summary))
    return message


def _children(step: StepProgress) -> list[str]:
    """The child executions of a sub-workflow step: its own, or its elements' in index order."""
    if step.child_execution_id:
        return [step.child_execution_id]
    return [
        element.child_execution_id
        for _, element in sorted(step.elements.items())
        if element.child_execution_id
    ]


def workflow_to_proto(workflow: StoredWorkflow, *, full: bool = True) -> pb.WorkflowDefinition:
    """The proto form of a stored definition; without its YAML and files unless `full`."""
    message = pb.WorkflowDefinition(
        name=workflow.name,
        version=workflow.version,
        description=workflow.description,
        hash=workflow.hash,
    )
    if full:
        message.workflow_yaml = workflow.yaml
        for name, data in workflow.files.items():
            message.files[name] = data
    _timestamp(message.create_time, workflow.created_at)
    return message


def diagnostic_to_proto(diagnostic: Diagnostic) -> pb.Diagnostic:
    """The proto form of a diagnostic."""
    severity = pb.DiagnosticSeverity.Value(f"DIAGNOSTIC_SEVERITY_{diagnostic.severity.name}")
    return pb.Diagnostic(
        file=diagnostic.location.file,
        line=diagnostic.location.line,
        column=diagnostic.location.column,
        severity=severity,
        message=diagnostic.message,
        code=diagnostic.code,
        path=diagnostic.path,
    )


def event_types_from_proto(types: Any) -> frozenset[EventType]:
    """The event types a stream is limited to (`event_types`); empty for every event."""
    known = set(pb.EventType.values()) - {pb.EVENT_TYPE_UNSPECIFIED}
    unknown = sorted(t for t in types if t not in known)
    if unknown:
        raise InvalidRequestError(
            "event_types", f"event_types: {unknown} are not EventType values (1 to {max(known)})"
        )
    return frozenset(EventType(pb.EventType.Name(t).removeprefix("EVENT_TYPE_")) for t in types)


def states_from_proto(states: Any) -> frozenset[ExecutionState]:
    """ExecutionState filters from their proto values (UNSPECIFIED is ignored)."""
    known = set(pb.ExecutionState.values())
    unknown = sorted(s for s in states if s not in known)
    if unknown:
        raise InvalidRequestError("states", f"states: {unknown} are not ExecutionState values")
    names = (pb.ExecutionState.Name(s).removeprefix("EXECUTION_STATE_") for s in states)
    return frozenset(ExecutionState(name) for name in names if name != "UNSPECIFIED")


def _duration(message: Any, field: str) -> timedelta | None:
    return getattr(message, field).ToTimedelta() if message.HasField(field) else None


def event_from_proto(message: pb.WorkflowEvent) -> Event:
    """The domain form of a streamed event (for clients that print them)."""
    error = message.error
    return Event(
        execution_id=message.execution_id,
        sequence=message.sequence,
        time=message.time.ToDatetime(tzinfo=UTC),
        type=EventType(pb.EventType.Name(message.type).removeprefix("EVENT_TYPE_")),
        state=ExecutionState(
            pb.ExecutionState.Name(message.state).removeprefix("EXECUTION_STATE_")
        ),
        step_id=message.step_id,
        attempt=message.attempt,
        output=output_of(message),
        error=ErrorInfo(error.code, error.message, error.service, error.retryable)
        if message.HasField("error")
        else None,
        duration=_duration(message, "duration"),
        retry_delay=_duration(message, "retry_delay"),
        in_doubt=message.in_doubt,
        probe=message.probe,
        element_index=message.element_index if message.HasField("element_index") else None,
        deadline=message.deadline.ToDatetime(tzinfo=UTC) if message.HasField("deadline") else None,
        signal_name=message.signal_name,
        signal_id=message.signal_id,
        child_execution_id=message.child_execution_id,
    )
