"""The fold of a for_each step's events: each element stands on its own, and the store's codec
keeps all of it (and still reads rows written before for_each)."""

from typing import Any

from maestro_server.model.execution import Cause, ErrorInfo, EventType, StepState
from maestro_server.model.progress import entry_parts, reopen, replay
from maestro_server.store.codec import (
    event_from_json,
    event_to_json,
    progress_from_json,
    progress_to_json,
)
from tests.model.test_progress import log

S = EventType
BROKEN = ErrorInfo("HTTP_500", "broken", "inventory")


def element(kind: EventType, index: int, **fields: Any) -> tuple[EventType, dict[str, Any]]:
    return kind, {"step_id": "reserve", "element_index": index, **fields}


def saga_log() -> list[Any]:
    """Elements 0 and 2 succeed (2 first), 1 fails; the saga undoes 0 and fails to undo 2."""
    return log(
        (S.WORKFLOW_STARTED, {}),
        element(S.STEP_STARTED, 0, attempt=1),
        element(S.STEP_STARTED, 2, attempt=1),
        element(S.STEP_SUCCEEDED, 2, output={"id": "r-2"}),
        element(S.STEP_SUCCEEDED, 0, output={"id": "r-0"}),
        element(S.STEP_STARTED, 1, attempt=1),
        element(S.STEP_FAILED, 1, attempt=1, error=BROKEN),
        (S.STEP_FAILED, {"step_id": "reserve", "error": BROKEN, "cause": Cause.STEP_FAILED}),
        element(S.COMPENSATION_STARTED, 0, attempt=1),
        element(S.COMPENSATION_SUCCEEDED, 0, attempt=1),
        element(S.COMPENSATION_STARTED, 2, attempt=1),
        element(S.COMPENSATION_FAILED, 2, attempt=1, error=BROKEN),
        (S.WORKFLOW_FAILED, {"step_id": "reserve", "error": BROKEN}),
    )


def test_elements_complete_on_their_own_in_the_order_they_ended() -> None:
    """`completed` names each element that succeeded, in order of completion; the step is
    running while its elements are, and the step's own STEP_FAILED stops the execution."""
    events = saga_log()
    progress = replay(events[:6])
    step = progress.step("reserve")
    assert step.state is StepState.RUNNING
    assert step.element(2).output == {"id": "r-2"} and step.element(1).state is StepState.RUNNING
    assert progress.completed == ("reserve[2]", "reserve[0]")
    assert [entry_parts(entry) for entry in progress.completed] == [("reserve", 2), ("reserve", 0)]
    assert progress.stop is None
    failed = replay(events[:8])
    assert failed.stop is not None and failed.stop.step_id == "reserve"
    assert failed.step("reserve").state is StepState.FAILED


def test_a_step_whose_element_compensation_failed_is_compensation_failed() -> None:
    """Compensating, the step stands as its elements do; an operator's resume reopens the
    element whose compensation failed, with a fresh retry budget."""
    progress = replay(saga_log())
    step = progress.step("reserve")
    assert step.element(0).state is StepState.COMPENSATED
    assert step.element(2).state is StepState.COMPENSATION_FAILED
    assert step.state is StepState.COMPENSATION_FAILED
    reopened = reopen(progress).step("reserve")
    assert reopened.state is StepState.COMPENSATING
    assert reopened.element(2).state is StepState.COMPENSATING
    assert reopened.element(2).compensation_attempts == 0
    assert reopened.element(0).state is StepState.COMPENSATED


def test_the_codec_keeps_elements_and_reads_rows_from_before_for_each() -> None:
    """Progress with elements round-trips; an event row without `element_index` reads as
    a whole step's event."""
    progress = replay(saga_log())
    assert progress_from_json(progress_to_json(progress)) == progress
    event = saga_log()[3]
    assert event_from_json("ex", 4, event_to_json(event)) == event
    old_row = event_to_json(event)
    del old_row["element_index"]
    assert event_from_json("ex", 4, old_row).element_index is None
