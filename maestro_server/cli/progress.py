"""Showing an execution's events: a line per event on stderr, or JSON lines on stdout."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

from maestro_server.errors import EXIT_COMPENSATION_FAILED, EXIT_FAILED, EXIT_OK, InvalidInputError
from maestro_server.model.execution import TERMINAL_EVENTS, Event, EventType, ExecutionState

if TYPE_CHECKING:
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


_TERMINAL_WORD = "terminal"


def add_only_flag(parser: Any) -> None:
    """The `--only` flag of the commands that show events."""
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TYPE[,TYPE...]",
        help="show only events of these types (repeatable): "
        f"{', '.join(t.value.lower() for t in EventType)}, or {_TERMINAL_WORD} for the "
        "events that end the execution",
    )


def only_types(values: Iterable[str]) -> frozenset[EventType]:
    """The event types `--only` names; empty (every type) when it is not given."""
    names = [name.strip().lower() for value in values for name in value.split(",")]
    types: set[EventType] = set()
    for name in names:
        if name == _TERMINAL_WORD:
            types |= TERMINAL_EVENTS
        elif name.upper() in EventType.__members__:
            types.add(EventType[name.upper()])
        else:
            known = ", ".join([*(t.value.lower() for t in EventType), _TERMINAL_WORD])
            raise InvalidInputError(f"--only: {name!r} is not an event type ({known})")
    return frozenset(types)


class ProgressPrinter:
    """A line per event on stderr (coloured: see logs.colour_wanted), or JSON lines on stdout.

    With `only`, events of other types are not shown.
    """

    def __init__(
        self,
        *,
        jsonl: bool,
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
        only: frozenset[EventType] = frozenset(),
    ) -> None:
        self.jsonl = jsonl
        self.only = only
        self._out = out
        self._err = err
        from maestro_server.logs import colour_wanted  # structlog: when events are shown

        self._colour = colour_wanted(err)

    async def append(self, entries: LogEntries) -> None:
        """Print events (the engine's event sink).

        Requests are not kept: a run in this process does not outlive it.
        """
        for event in entries.events:
            self.show(event)

    def show(self, event: Event) -> None:
        """Print one event (unless `only` leaves it out)."""
        if self.only and event.type not in self.only:
            return
        if self.jsonl:
            from maestro_server.api.convert import event_to_json_line  # protobuf: only here

            self._out.write(event_to_json_line(event) + "\n")
            self._out.flush()
            return
        mark, colour = _MARKS[event.type]
        text = f"{mark} {event.type.value.lower().replace('_', ' ')}"
        if event.step_id:
            text += f" {event.step_id}"
        if event.element_index is not None:
            text += f"[{event.element_index}]"
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
        if event.child_execution_id and event.type is EventType.STEP_WAITING:
            details.append(f"child {event.child_execution_id}")
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
