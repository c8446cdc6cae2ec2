"""Where an execution stands, as a fold of its events: `apply` is the one place that knows.

The runner restores a resumed execution from it, the stores derive their summary columns from
it and `GetExecution` answers from it, so the three can never disagree. `apply` is pure: it
returns a new `Progress` and never touches the old one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from maestro_server.model.execution import (
    Cause,
    ErrorInfo,
    Event,
    EventType,
    ExecutionState,
    StepState,
)


@dataclass(frozen=True, slots=True)
class StepProgress:
    """Where one step stands."""

    state: StepState = StepState.PENDING
    attempts: int = 0
    """Forward attempts started."""
    output: Any = None
    """Kept through compensation: the compensation's templates read it."""
    error: ErrorInfo | None = None
    in_doubt: bool = False
    """It failed but may have had its effect, so it is compensated."""
    probed: bool = False
    """It was asked again, and the answer left it in doubt still."""
    compensation_attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    elements: Mapping[int, StepProgress] = field(default_factory=dict)
    """A `for_each` step's elements that have events, by index; each stands as a step would."""
    waiting_since: datetime | None = None
    """A `wait` or `sleep` step: when it started waiting (kept across restarts)."""
    deadline: datetime | None = None
    """When its sleep ends or its wait times out, as recorded when it started waiting."""
    signal_id: str = ""
    """A `wait` step: the signal it consumed (SIGNAL_RECEIVED)."""
    child_execution_id: str = ""
    """A sub-workflow step (or element) once started: the child execution it runs."""

    def element(self, index: int) -> StepProgress:
        """One element's progress (pending when it has no events)."""
        return self.elements.get(index, PENDING_STEP)

    @property
    def ended_forward(self) -> bool:
        """Whether its forward part is over (its output, or None, is visible to templates)."""
        return self.state not in _UNDERWAY


@dataclass(frozen=True, slots=True)
class Stop:
    """Why an execution stopped going forward and turned to its saga."""

    cause: Cause
    error: ErrorInfo
    step_id: str = ""
    """The step that failed, when the cause is a step failure."""


PENDING_STEP = StepProgress()
_UNDERWAY = frozenset({StepState.PENDING, StepState.RUNNING, StepState.WAITING})


@dataclass(frozen=True, slots=True)
class Progress:
    """An execution's state after its last event."""

    state: ExecutionState = ExecutionState.PENDING
    last_sequence: int = 0
    steps: Mapping[str, StepProgress] = field(default_factory=dict)
    """The steps that have events; every other step is pending."""
    completed: tuple[str, ...] = ()
    """Steps that succeeded, or failed in doubt, in order: the saga undoes them in reverse.

    An element of a `for_each` step is there on its own, as `step_id[index]` (element_entry).
    """
    stop: Stop | None = None
    output: Any = None
    """The workflow's output, once completed."""
    error: ErrorInfo | None = None
    """Why it ended, once it ended other than completed."""
    ended_at: datetime | None = None
    started_at: datetime | None = None
    """When it started (its workflow timeout counts from then, across restarts)."""

    def step(self, step_id: str) -> StepProgress:
        """One step's progress (pending when it has no events)."""
        return self.steps.get(step_id, PENDING_STEP)

    @property
    def consumed_signals(self) -> frozenset[str]:
        """Ids of the signals `wait` steps took: a later wait never takes them again."""
        return frozenset(s.signal_id for s in self.steps.values() if s.signal_id)


# What each step-level event makes of its step.
_STEP_STATES = {
    EventType.STEP_STARTED: StepState.RUNNING,
    EventType.STEP_RETRYING: StepState.RUNNING,
    EventType.STEP_WAITING: StepState.WAITING,
    EventType.SIGNAL_RECEIVED: StepState.WAITING,
    EventType.STEP_SUCCEEDED: StepState.SUCCEEDED,
    EventType.STEP_SKIPPED: StepState.SKIPPED,
    EventType.STEP_FAILED: StepState.FAILED,
    EventType.COMPENSATION_STARTED: StepState.COMPENSATING,
    EventType.COMPENSATION_SUCCEEDED: StepState.COMPENSATED,
    EventType.COMPENSATION_FAILED: StepState.COMPENSATION_FAILED,
}
_ENDED = {
    EventType.WORKFLOW_COMPLETED: ExecutionState.COMPLETED,
    EventType.WORKFLOW_COMPENSATED: ExecutionState.COMPENSATED,
    EventType.WORKFLOW_CANCELLED: ExecutionState.CANCELLED,
}
_COMPENSATION_EVENTS = frozenset(
    {
        EventType.COMPENSATION_STARTED,
        EventType.COMPENSATION_SUCCEEDED,
        EventType.COMPENSATION_FAILED,
    }
)
# A cause that stops an execution; SERVER_STOPPED only settles steps of one already stopping.
_STOPPING = frozenset({Cause.STEP_FAILED, Cause.CANCELLED, Cause.TIMEOUT})
# When a log shows an execution compensating with no stop in it, the workflow's output failed:
# its error is not in the log, only that the saga began.
OUTPUT_FAILED = Stop(
    Cause.OUTPUT_FAILED,
    ErrorInfo("UNKNOWN", "the execution was compensating when the server stopped"),
)


def element_entry(step_id: str, index: int) -> str:
    """How an element of a `for_each` step is named in `Progress.completed`: `reserve[2]`."""
    return f"{step_id}[{index}]"


def entry_parts(entry: str) -> tuple[str, int | None]:
    """A `completed` entry's step id and element index (None for a whole step).

    Step ids hold only letters, digits, `_` and `-`, so a `[` starts an element's index.
    """
    step_id, bracket, rest = entry.partition("[")
    return (step_id, int(rest.rstrip("]"))) if bracket else (step_id, None)


def apply(progress: Progress, event: Event) -> Progress:
    """The progress after `event`; ValueError when it does not follow the last one."""
    if event.sequence != progress.last_sequence + 1:
        raise ValueError(
            f"event {event.sequence} of {event.execution_id} does not follow "
            f"{progress.last_sequence}"
        )
    if event.cause is Cause.RESUMED:
        progress = reopen(progress)
    elif event.cause is Cause.PARENT_COMPENSATING:
        progress = undo_completed(progress)
    steps, completed, stop = progress.steps, progress.completed, progress.stop
    if event.step_id and event.type in _STEP_STATES:
        if event.element_index is None:
            step = _step(progress.step(event.step_id), event)
            entry = event.step_id
        else:
            step = _element(progress.step(event.step_id), event)
            entry = element_entry(event.step_id, event.element_index)
        steps = {**steps, event.step_id: step}
        done = event.type is EventType.STEP_SUCCEEDED or (
            event.type is EventType.STEP_FAILED and event.in_doubt
        )
        if done and entry not in completed:  # asked again: it keeps its place
            completed = (*completed, entry)
        if stop is None and event.cause in _STOPPING and event.error is not None:
            stop = _stop(event.cause, event.error, event.step_id)
    state = _state(progress, event, steps)
    if stop is None and state is ExecutionState.COMPENSATING:
        stop = OUTPUT_FAILED
    ended = event.terminal
    return Progress(
        state=state,
        last_sequence=event.sequence,
        steps=steps,
        completed=completed,
        stop=stop,
        output=event.output if event.type is EventType.WORKFLOW_COMPLETED else progress.output,
        error=event.error if ended else None,
        ended_at=event.time if ended else None,
        started_at=event.time if event.type is EventType.WORKFLOW_STARTED else progress.started_at,
    )


def reopen(progress: Progress) -> Progress:
    """An operator's resume of a COMPENSATION_FAILED execution.

    Each failed compensation gets its full retry policy again, under the same idempotency key.
    """
    if progress.state is not ExecutionState.COMPENSATION_FAILED:
        raise ValueError(f"a {progress.state.value} execution cannot be resumed")
    steps = {step_id: _reopened(step) for step_id, step in progress.steps.items()}
    stop = progress.stop
    if stop is None or stop == OUTPUT_FAILED:  # the log lacks the cause; the end names it
        error = progress.error or ErrorInfo("COMPENSATION_FAILED", "compensation failed")
        stop = Stop(Cause.OUTPUT_FAILED, error)
    return replace(
        progress,
        state=ExecutionState.COMPENSATING,
        steps=steps,
        stop=stop,
        error=None,
        ended_at=None,
    )


PARENT_COMPENSATING = Stop(
    Cause.PARENT_COMPENSATING,
    ErrorInfo("PARENT_COMPENSATING", "compensated because its parent execution compensates"),
)
"""Why a COMPLETED child execution compensates (see `undo_completed`)."""


def undo_completed(progress: Progress) -> Progress:
    """A COMPLETED execution turned back to COMPENSATING: its parent's saga undoes it.

    Its steps stand as they ended; the saga compensates the completed ones in reverse order,
    and the execution ends COMPENSATED (COMPENSATION_FAILED if one fails for good).
    """
    if progress.state is not ExecutionState.COMPLETED:
        raise ValueError(f"a {progress.state.value} execution cannot be undone")
    return replace(
        progress,
        state=ExecutionState.COMPENSATING,
        stop=PARENT_COMPENSATING,
        error=None,
        ended_at=None,
    )


def _reopened(step: StepProgress) -> StepProgress:
    if step.state is not StepState.COMPENSATION_FAILED:
        return step
    elements = {index: _reopened(element) for index, element in step.elements.items()}
    return replace(step, state=StepState.COMPENSATING, compensation_attempts=0, elements=elements)


def replay(events: Any) -> Progress:
    """The progress after a whole log."""
    progress = Progress()
    for event in events:
        progress = apply(progress, event)
    return progress


def _step(step: StepProgress, event: Event) -> StepProgress:
    state = _STEP_STATES[event.type]
    if event.type is EventType.STEP_RETRYING and step.state is StepState.COMPENSATING:
        state = StepState.COMPENSATING  # a compensation's retry: the step is not running again
    changes: dict[str, Any] = {"state": state}
    if event.type is EventType.STEP_STARTED:
        changes["attempts"] = max(step.attempts, event.attempt)
        changes["started_at"] = step.started_at or event.time
    elif event.type is EventType.STEP_SUCCEEDED:
        changes["output"] = event.output
        changes["in_doubt"] = False
    elif event.type is EventType.STEP_FAILED:
        changes["attempts"] = max(step.attempts, event.attempt)
        changes["in_doubt"] = event.in_doubt
        changes["probed"] = event.probe
    elif event.type is EventType.COMPENSATION_STARTED:
        changes["compensation_attempts"] = event.attempt
    elif event.type is EventType.STEP_WAITING:
        # The first WAITING of a step decides its clock: a restart does not start it again.
        changes["started_at"] = step.started_at or event.time
        changes["waiting_since"] = step.waiting_since or event.time
        changes["deadline"] = step.deadline if step.waiting_since else event.deadline
    elif event.type is EventType.SIGNAL_RECEIVED:
        changes["signal_id"] = event.signal_id
    if event.child_execution_id:
        changes["child_execution_id"] = event.child_execution_id
    if event.error is not None:
        changes["error"] = event.error
    if state not in (StepState.RUNNING, StepState.WAITING, StepState.COMPENSATING):
        changes["ended_at"] = event.time
    return replace(step, **changes)


def _element(step: StepProgress, event: Event) -> StepProgress:
    """A `for_each` step after an event of one of its elements.

    Going forward, the step runs while its elements do (the step's own STEP_SUCCEEDED or
    STEP_FAILED ends it); an element asked again during the saga leaves the step as it is.
    Compensating, it stands as its elements do: COMPENSATION_FAILED once any of them is.
    """
    assert event.element_index is not None
    elements = {
        **step.elements,
        event.element_index: _step(step.element(event.element_index), event),
    }
    changes: dict[str, Any] = {"elements": elements}
    if event.type in _COMPENSATION_EVENTS:
        if event.type is EventType.COMPENSATION_STARTED:
            changes["state"] = StepState.COMPENSATING
        elif any(e.state is StepState.COMPENSATION_FAILED for e in elements.values()):
            changes["state"] = StepState.COMPENSATION_FAILED
        else:
            changes["state"] = StepState.COMPENSATED
        if event.type is not EventType.COMPENSATION_STARTED:
            changes["ended_at"] = event.time
        if event.type is EventType.COMPENSATION_FAILED:
            changes["error"] = event.error
    elif not step.ended_forward:
        changes["state"] = StepState.RUNNING
        changes["started_at"] = step.started_at or event.time
    if event.type is EventType.STEP_STARTED:
        changes["attempts"] = max(step.attempts, event.attempt)
    return replace(step, **changes)


def _stop(cause: Cause, error: ErrorInfo, step_id: str) -> Stop:
    if cause is Cause.STEP_FAILED:
        return Stop(cause, error, step_id)
    # A step stopped by a cancel or the timeout: the execution's error says which.
    code = "CANCELLED" if cause is Cause.CANCELLED else "DEADLINE_EXCEEDED"
    return Stop(cause, ErrorInfo(code, error.message))


def _state(progress: Progress, event: Event, steps: Mapping[str, StepProgress]) -> ExecutionState:
    if event.type is EventType.WORKFLOW_STARTED:
        return ExecutionState.RUNNING
    if event.type in _COMPENSATION_EVENTS:
        return ExecutionState.COMPENSATING
    if event.type in _ENDED:
        return _ENDED[event.type]
    if event.type is EventType.WORKFLOW_FAILED:
        undone = any(s.state is StepState.COMPENSATION_FAILED for s in steps.values())
        return ExecutionState.COMPENSATION_FAILED if undone else ExecutionState.FAILED
    return progress.state
