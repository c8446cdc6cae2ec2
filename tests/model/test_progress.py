"""The one progress model: `apply` folds events into where an execution stands."""

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from maestro_server.model.execution import (
    Cause,
    ErrorInfo,
    Event,
    EventType,
    ExecutionState,
    StepState,
)
from maestro_server.model.progress import Progress, Stop, apply, replay
from maestro_server.store.codec import event_from_json, event_to_json
from tests.engine.test_saga_properties import EXAMPLES, build, scenarios

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def log(*specs: tuple[EventType, dict[str, Any]]) -> list[Event]:
    return [
        Event("ex", n, T0, kind, ExecutionState.PENDING, **fields)
        for n, (kind, fields) in enumerate(specs, start=1)
    ]


FAILED = ErrorInfo("UNAVAILABLE", "down", "billing")


def test_a_log_that_skips_a_sequence_is_refused() -> None:
    (started,) = log((EventType.WORKFLOW_STARTED, {}))
    with pytest.raises(ValueError, match="does not follow"):
        apply(apply(Progress(), started), started)


def test_the_state_comes_from_the_events_not_from_what_they_claim() -> None:
    """An event's own `state` field is not trusted: the fold decides it."""
    events = log(
        (EventType.WORKFLOW_STARTED, {}),
        (EventType.STEP_STARTED, {"step_id": "a", "attempt": 1}),
        (EventType.STEP_SUCCEEDED, {"step_id": "a", "attempt": 1, "output": {"id": 1}}),
        (EventType.STEP_FAILED, {"step_id": "b", "error": FAILED, "cause": Cause.STEP_FAILED}),
        (EventType.COMPENSATION_STARTED, {"step_id": "a", "attempt": 1}),
        (EventType.COMPENSATION_FAILED, {"step_id": "a", "attempt": 1, "error": FAILED}),
        (EventType.WORKFLOW_FAILED, {"step_id": "b", "error": FAILED}),
    )
    states = []
    progress = Progress()
    for event in events:
        progress = apply(progress, event)
        states.append(progress.state)
    assert states == [
        ExecutionState.RUNNING,
        ExecutionState.RUNNING,
        ExecutionState.RUNNING,
        ExecutionState.RUNNING,
        ExecutionState.COMPENSATING,
        ExecutionState.COMPENSATING,
        ExecutionState.COMPENSATION_FAILED,
    ]
    assert progress.stop == Stop(Cause.STEP_FAILED, FAILED, "b")
    assert progress.completed == ("a",)
    assert progress.step("a").output == {"id": 1}, "kept through compensation"
    assert progress.step("a").state is StepState.COMPENSATION_FAILED
    assert progress.error == FAILED and progress.ended_at == T0


def test_why_it_stopped_is_read_from_the_cause_never_from_the_message() -> None:
    stopped = ErrorInfo("STEP_CANCELLED", "any words at all")
    for cause, code in ((Cause.CANCELLED, "CANCELLED"), (Cause.TIMEOUT, "DEADLINE_EXCEEDED")):
        progress = replay(
            log(
                (EventType.WORKFLOW_STARTED, {}),
                (EventType.STEP_FAILED, {"step_id": "a", "error": stopped, "cause": cause}),
            )
        )
        assert progress.stop == Stop(cause, ErrorInfo(code, "any words at all"))


def test_a_tolerated_failure_does_not_stop_the_execution() -> None:
    progress = replay(
        log(
            (EventType.WORKFLOW_STARTED, {}),
            (EventType.STEP_FAILED, {"step_id": "a", "error": FAILED}),
        )
    )
    assert progress.stop is None and progress.state is ExecutionState.RUNNING


def test_an_operators_resume_reopens_failed_compensations_in_the_replay() -> None:
    events = log(
        (EventType.WORKFLOW_STARTED, {}),
        (EventType.STEP_SUCCEEDED, {"step_id": "a", "attempt": 1}),
        (EventType.STEP_SUCCEEDED, {"step_id": "b", "attempt": 1}),
        (EventType.STEP_FAILED, {"step_id": "c", "error": FAILED, "cause": Cause.STEP_FAILED}),
        (EventType.COMPENSATION_FAILED, {"step_id": "b", "attempt": 3, "error": FAILED}),
        (EventType.COMPENSATION_FAILED, {"step_id": "a", "attempt": 3, "error": FAILED}),
        (EventType.WORKFLOW_FAILED, {"step_id": "c", "error": FAILED}),
        (EventType.COMPENSATION_STARTED, {"step_id": "b", "attempt": 1, "cause": Cause.RESUMED}),
    )
    progress = replay(events)
    assert progress.state is ExecutionState.COMPENSATING
    assert progress.error is None and progress.ended_at is None
    assert progress.step("a").state is StepState.COMPENSATING, "reopened, not yet retried"
    assert progress.step("a").compensation_attempts == 0
    assert progress.step("b").compensation_attempts == 1


def test_a_compensation_retrying_leaves_its_step_compensating() -> None:
    """STEP_RETRYING also reports a compensation's retry: the step is not in flight again."""
    progress = replay(
        log(
            (EventType.WORKFLOW_STARTED, {}),
            (EventType.STEP_SUCCEEDED, {"step_id": "a", "attempt": 1}),
            (EventType.STEP_FAILED, {"step_id": "b", "error": FAILED, "cause": Cause.STEP_FAILED}),
            (EventType.COMPENSATION_STARTED, {"step_id": "a", "attempt": 1}),
            (EventType.STEP_RETRYING, {"step_id": "a", "attempt": 1, "error": FAILED}),
        )
    )
    assert progress.step("a").state is StepState.COMPENSATING
    assert progress.completed == ("a",)


def test_events_keep_their_cause_through_the_store_codec() -> None:
    (event,) = log(
        (EventType.STEP_FAILED, {"step_id": "a", "error": FAILED, "cause": Cause.TIMEOUT}),
    )
    assert event_from_json("ex", 1, event_to_json(event)) == event


def test_rows_written_before_causes_are_read_with_one() -> None:
    stopped = {"code": "STEP_CANCELLED", "message": "", "service": "", "retryable": False}
    row = event_to_json(log((EventType.STEP_FAILED, {"step_id": "a"}))[0])
    del row["cause"]
    for message, cause in (
        ("workflow timeout exceeded (workflow timeout of 1s exceeded)", Cause.TIMEOUT),
        ("execution cancelled: by ops", Cause.CANCELLED),
        ("stopped because step 'b' failed", Cause.STEP_FAILED),
        ("in flight when the server stopped", Cause.SERVER_STOPPED),
    ):
        legacy = {**row, "error": {**stopped, "message": message}}
        assert event_from_json("ex", 1, legacy).cause is cause


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
async def test_the_runner_stands_where_a_replay_of_its_log_stands(
    scenario: dict[str, Any],
) -> None:
    """What the runner decided from is exactly the fold of what it wrote."""
    runner, sink, _ = build(scenario)
    await runner.run()
    replayed = replay(sink.events)
    assert runner.records == {s.id: replayed.step(s.id) for s in runner.workflow.steps}
    assert [e.state for e in sink.events] == [
        replay(sink.events[:n]).state for n in range(1, len(sink.events) + 1)
    ]
