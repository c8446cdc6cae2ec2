"""Events, progress and files as JSON-able values, for stores that keep them in tables."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from maestro_server.model.execution import (
    Cause,
    ErrorInfo,
    Event,
    EventType,
    ExecutionState,
    StepState,
)
from maestro_server.model.progress import Progress, StepProgress, Stop


def error_to_json(error: ErrorInfo | None) -> dict[str, Any] | None:
    """An error as JSON."""
    if error is None:
        return None
    return {
        "code": error.code,
        "message": error.message,
        "service": error.service,
        "retryable": error.retryable,
    }


def error_from_json(value: Mapping[str, Any] | None) -> ErrorInfo | None:
    """An error from JSON."""
    return None if value is None else ErrorInfo(**value)


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def event_to_json(event: Event) -> dict[str, Any]:
    """An event as JSON (the store's row payload)."""
    return {
        "time": event.time.isoformat(),
        "type": event.type.value,
        "state": event.state.value,
        "step_id": event.step_id,
        "attempt": event.attempt,
        "output": event.output,
        "error": error_to_json(event.error),
        "duration": event.duration.total_seconds() if event.duration is not None else None,
        "retry_delay": event.retry_delay.total_seconds() if event.retry_delay is not None else None,
        "in_doubt": event.in_doubt,
        "probe": event.probe,
        "cause": event.cause.value if event.cause is not None else None,
        "element_index": event.element_index,
        **_wait_to_json(event),
    }


def _wait_to_json(event: Event) -> dict[str, Any]:
    """The fields of waiting events, written only where set (older readers never see them)."""
    fields: dict[str, Any] = {}
    if event.deadline is not None:
        fields["deadline"] = event.deadline.isoformat()
    if event.signal_name:
        fields["signal_name"] = event.signal_name
    if event.signal_id:
        fields["signal_id"] = event.signal_id
    if event.child_execution_id:
        fields["child_execution_id"] = event.child_execution_id
    return fields


def event_from_json(execution_id: str, sequence: int, value: Mapping[str, Any]) -> Event:
    """An event from its row."""
    duration, delay = value.get("duration"), value.get("retry_delay")
    return Event(
        execution_id=execution_id,
        sequence=sequence,
        time=datetime.fromisoformat(value["time"]),
        type=EventType(value["type"]),
        state=ExecutionState(value["state"]),
        step_id=value["step_id"],
        attempt=value["attempt"],
        output=value["output"],
        error=error_from_json(value["error"]),
        duration=timedelta(seconds=duration) if duration is not None else None,
        retry_delay=timedelta(seconds=delay) if delay is not None else None,
        in_doubt=value.get("in_doubt", False),
        probe=value.get("probe", False),
        cause=Cause(value["cause"]) if value.get("cause") else _legacy_cause(value),
        element_index=value.get("element_index"),  # rows from before for_each have none
        deadline=_parse_time(value.get("deadline")),
        signal_name=value.get("signal_name", ""),
        signal_id=value.get("signal_id", ""),
        child_execution_id=value.get("child_execution_id", ""),
    )


def _legacy_cause(value: Mapping[str, Any]) -> Cause | None:
    """The cause of an event written before events carried one (its row has no "cause").

    Those rows said it only in the error of a stopped step; read once, here, for old logs.
    A failure that a step tolerated (continue_on_error) cannot be told apart in them.
    """
    if "cause" in value or value["type"] != EventType.STEP_FAILED.value:
        return None
    error = value["error"] or {}
    if error.get("code") != "STEP_CANCELLED":
        return Cause.STEP_FAILED
    message = error.get("message", "")
    for prefix, cause in _LEGACY_STOPS:
        if message.startswith(prefix):
            return cause
    return Cause.CANCELLED


_LEGACY_STOPS = (
    ("workflow timeout exceeded", Cause.TIMEOUT),
    ("stopped because step", Cause.STEP_FAILED),
    ("in flight when the server stopped", Cause.SERVER_STOPPED),
)


def stop_to_json(stop: Stop | None) -> dict[str, Any] | None:
    """Why an execution stopped, as JSON."""
    if stop is None:
        return None
    return {"cause": stop.cause.value, "error": error_to_json(stop.error), "step_id": stop.step_id}


def stop_from_json(value: Mapping[str, Any] | None) -> Stop | None:
    """Why an execution stopped, from JSON."""
    if value is None:
        return None
    return Stop(Cause(value["cause"]), ErrorInfo(**value["error"]), value["step_id"])


def progress_to_json(progress: Progress) -> dict[str, Any]:
    """An execution's progress as JSON (the whole of it: a resumed runner could start from it)."""
    stop = progress.stop
    return {
        "state": progress.state.value,
        "last_sequence": progress.last_sequence,
        "steps": {step_id: _step_to_json(s) for step_id, s in progress.steps.items()},
        "completed": list(progress.completed),
        "stop": stop_to_json(stop),
        "output": progress.output,
        "error": error_to_json(progress.error),
        "ended_at": _time(progress.ended_at),
        "started_at": _time(progress.started_at),
    }


def progress_from_json(value: Mapping[str, Any]) -> Progress:
    """An execution's progress from JSON."""
    stop = value["stop"]
    return Progress(
        state=ExecutionState(value["state"]),
        last_sequence=value["last_sequence"],
        steps={step_id: _step_from_json(s) for step_id, s in value["steps"].items()},
        completed=tuple(value["completed"]),
        stop=stop_from_json(stop),
        output=value["output"],
        error=error_from_json(value["error"]),
        ended_at=_parse_time(value["ended_at"]),
        started_at=_parse_time(value.get("started_at")),
    )


def _step_to_json(step: StepProgress) -> dict[str, Any]:
    value = {
        "state": step.state.value,
        "attempts": step.attempts,
        "output": step.output,
        "error": error_to_json(step.error),
        "in_doubt": step.in_doubt,
        "probed": step.probed,
        "compensation_attempts": step.compensation_attempts,
        "started_at": _time(step.started_at),
        "ended_at": _time(step.ended_at),
        **_waiting_to_json(step),
    }
    if step.child_execution_id:  # only sub-workflow steps have one
        value["child_execution_id"] = step.child_execution_id
    if step.elements:  # JSON keys are text; only for_each steps have any
        value["elements"] = {str(i): _step_to_json(e) for i, e in step.elements.items()}
    return value


def _waiting_to_json(step: StepProgress) -> dict[str, Any]:
    """A waiting step's fields, written only where set (older readers never see them)."""
    if step.waiting_since is None and not step.signal_id:
        return {}
    return {
        "waiting_since": _time(step.waiting_since),
        "deadline": _time(step.deadline),
        "signal_id": step.signal_id,
    }


def _step_from_json(value: Mapping[str, Any]) -> StepProgress:
    return StepProgress(
        state=StepState(value["state"]),
        attempts=value["attempts"],
        output=value["output"],
        error=error_from_json(value["error"]),
        in_doubt=value["in_doubt"],
        probed=value.get("probed", False),
        compensation_attempts=value["compensation_attempts"],
        started_at=_parse_time(value["started_at"]),
        ended_at=_parse_time(value["ended_at"]),
        elements={int(i): _step_from_json(e) for i, e in value.get("elements", {}).items()},
        waiting_since=_parse_time(value.get("waiting_since")),
        deadline=_parse_time(value.get("deadline")),
        signal_id=value.get("signal_id", ""),
        child_execution_id=value.get("child_execution_id", ""),
    )


def files_to_json(files: Mapping[str, bytes]) -> dict[str, str]:
    """Files as JSON (base64)."""
    return {name: base64.b64encode(data).decode() for name, data in files.items()}


def files_from_json(value: Mapping[str, str]) -> dict[str, bytes]:
    """Files from JSON."""
    return {name: base64.b64decode(data) for name, data in value.items()}
