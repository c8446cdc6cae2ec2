"""Showing an execution's events: a line per event on stderr, or JSON lines on stdout."""

from __future__ import annotations

import sys
from typing import TextIO

from maestro_server.api.convert import event_to_json_line
from maestro_server.errors import EXIT_COMPENSATION_FAILED, EXIT_FAILED, EXIT_OK
from maestro_server.logs import colour_wanted
from maestro_server.model.execution import Event, EventType, ExecutionState
from maestro_server.store.base import LogEntries

EXIT_BY_STATE = {
    ExecutionState.COMPLETED: EXIT_OK,
    ExecutionState.COMPENSATED: EXIT_FAILED,
    ExecutionState.FAILED: EXIT_FAILED,
    ExecutionState.CANCELLED: EXIT_FAILED,
    ExecutionState.COMPENSATION_FAILED: EXIT_COMPENSATION_FAILED,
}

_MARKS = {
    EventType.WORKFLOW_STARTED: ("▶", "1"),
    EventType.STEP_STARTED: ("…", "2"),
    EventType.STEP_RETRYING: ("↻", "33"),
    EventType.STEP_SUCCEEDED: ("✓", "32"),
    EventType.STEP_SKIPPED: ("–", "2"),
    EventType.STEP_FAILED: ("✗", "31"),
    EventType.COMPENSATION_STARTED: ("↶", "35"),
    EventType.COMPENSATION_SUCCEEDED: ("↶✓", "35"),
    EventType.COMPENSATION_FAILED: ("↶✗", "31"),
    EventType.WORKFLOW_COMPLETED: ("■", "32;1"),
    EventType.WORKFLOW_FAILED: ("■", "31;1"),
    EventType.WORKFLOW_COMPENSATED: ("■", "33;1"),
    EventType.WORKFLOW_CANCELLED: ("■", "33;1"),
    EventType.STEP_WAITING: ("⏸", "36"),
    EventType.SIGNAL_RECEIVED: ("✉", "36"),
}


class ProgressPrinter:
    """A line per event on stderr (coloured: see logs.colour_wanted), or JSON lines on stdout."""

    def __init__(self, *, jsonl: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.jsonl = jsonl
        self._out = out
        self._err = err
        self._colour = colour_wanted(err)

    async def append(self, entries: LogEntries) -> None:
        """Print events (the engine's event sink).

        Requests are not kept: a run in this process does not outlive it.
        """
        for event in entries.events:
            self.show(event)

    def show(self, event: Event) -> None:
        """Print one event."""
        if self.jsonl:
            self._out.write(event_to_json_line(event) + "\n")
            self._out.flush()
            return
        mark, colour = _MARKS[event.type]
        text = f"{mark} {event.type.value.lower().replace('_', ' ')}"
        if event.step_id:
            text += f" {event.step_id}"
        details = ["asked again"] if event.probe else []
        if event.attempt and event.type is not EventType.STEP_SKIPPED:
            details.append(f"attempt {event.attempt}")
        if event.duration is not None:
            details.append(_ms(event.duration.total_seconds()))
        if event.retry_delay is not None:
            details.append(f"retry in {_ms(event.retry_delay.total_seconds())}")
        if event.signal_name:
            details.append(f"signal {event.signal_name}")
        if event.signal_id:
            details.append(f"id {event.signal_id}")
        if event.deadline is not None:
            details.append(f"until {event.deadline.isoformat(timespec='seconds')}")
        if details:
            text += f" ({', '.join(details)})"
        if event.error is not None:
            text += f": {event.error.code}: {event.error.message}"
        if self._colour:
            text = f"\x1b[{colour}m{text}\x1b[0m"
        self._err.write(f"[{event.sequence:>3}] {text}\n")
        self._err.flush()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"
