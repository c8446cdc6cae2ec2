"""The saga: compensate what an execution did, in reverse order, and record how it ended."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from maestro_server.engine.attempts import AttemptEvents, StepAttempts
from maestro_server.engine.calls import Attempted, Caller
from maestro_server.engine.children import SubWorkflows
from maestro_server.engine.context import ExecutionContext
from maestro_server.engine.element_undo import ElementUndo
from maestro_server.engine.recorder import Recorder
from maestro_server.errors import TemplateError
from maestro_server.model.execution import (
    Cause,
    ErrorInfo,
    EventType,
    ExecutionResult,
    StepState,
)
from maestro_server.model.progress import StepProgress, Stop, entry_parts
from maestro_server.model.workflow import Step, Workflow


class Saga:
    """Compensates the steps of one execution that succeeded or whose outcome is in doubt."""

    def __init__(
        self,
        workflow: Workflow,
        recorder: Recorder,
        context: ExecutionContext,
        caller: Caller,
        steps: StepAttempts,
        *,
        elapsed: Callable[[], timedelta],
        elements: ElementUndo,
        children: SubWorkflows,
    ) -> None:
        self._workflow = workflow
        self._recorder = recorder
        self._context = context
        self._caller = caller
        self._steps = steps
        self._elapsed = elapsed
        self._elements = elements
        self._children = children

    async def run(self, stop: Stop) -> ExecutionResult:
        """Undo, one by one in reverse order of completion, then write the terminal event."""
        recorder = self._recorder
        to_undo = []
        for entry in reversed(recorder.progress.completed):
            step_id, index = entry_parts(entry)
            step = self._workflow.step(step_id)
            # A for_each step is undone element by element; the elements have entries of
            # their own, in the order they completed.
            # A sub-workflow step without a `compensate` of its own is undone by its child's.
            undoable = step.compensate is not None or step.workflow is not None
            if undoable and (index is not None or step.for_each is None):
                to_undo.append((entry, step, index))
        failed: dict[str, ErrorInfo] = {}
        for entry, step, index in to_undo:
            if index is not None:
                element_error = await self._elements.undo(step, index)
                if element_error is not None:
                    failed[entry] = element_error
                continue
            progress = recorder.progress.step(step.id)
            if progress.state is StepState.COMPENSATED:
                continue  # done before a restart
            in_doubt = progress.in_doubt and not progress.probed
            if progress.state is StepState.FAILED and in_doubt and step.workflow is None:
                await self._steps.settle_doubt(step)
            elif progress.state is StepState.FAILED and in_doubt and step.compensate is not None:
                await self._children.settle_doubt(step, None)  # its child may still act
            settled = recorder.progress.step(step.id)
            undid_itself = settled.state is StepState.FAILED and not settled.in_doubt
            if progress.state is StepState.COMPENSATION_FAILED:
                pass
            elif step.workflow is not None and step.compensate is None:
                await self._children.undo(step, None)
            elif step.workflow is not None and undid_itself:
                pass  # its child undid itself: nothing for the step's compensation to undo
            else:
                await self._compensate(step)
            progress = recorder.progress.step(step.id)
            if progress.state is StepState.COMPENSATION_FAILED:
                failed[step.id] = progress.error or ErrorInfo("UNKNOWN", "no reason recorded")
        execution_id = recorder.execution_id
        if failed:
            cause = stop.error
            undone = ", ".join(f"'{s}' ({e.code}: {e.message})" for s, e in failed.items())
            error = ErrorInfo(
                "COMPENSATION_FAILED",
                f"compensation failed for step{'s' if len(failed) > 1 else ''} {undone} "
                f"after: {cause.code}: {cause.message}",
                cause.service,
            )
            event = await recorder.emit(
                EventType.WORKFLOW_FAILED,
                step_id=stop.step_id,
                error=error,
                duration=self._elapsed(),
            )
            steps = tuple(dict.fromkeys(entry_parts(entry)[0] for entry in failed))
            return ExecutionResult(
                execution_id, event.state, error=error, failed_compensations=steps
            )
        if stop.cause is Cause.CANCELLED:
            kind = EventType.WORKFLOW_CANCELLED
        elif to_undo or stop.cause is Cause.PARENT_COMPENSATING:
            kind = EventType.WORKFLOW_COMPENSATED
        else:
            kind = EventType.WORKFLOW_FAILED
        event = await recorder.emit(
            kind, step_id=stop.step_id, error=stop.error, duration=self._elapsed()
        )
        return ExecutionResult(execution_id, event.state, error=stop.error)

    async def _compensate(self, step: Step) -> None:
        compensation = step.compensate
        assert compensation is not None
        progress = self._recorder.progress.step(step.id)
        service = self._workflow.services[compensation.service]
        listener = AttemptEvents(self._recorder, step.id, compensation=True)
        try:
            request = await self._recorder.journaled(
                self._context.compensation_request(step, compensation, service)
            )
        except TemplateError as exc:
            outcome = Attempted(0, timedelta(), error=_unrenderable(step, progress, exc))
        else:
            outcome = await self._caller.call(
                request,
                compensation.retry,
                compensation.timeout,
                listener,
                first_attempt=progress.compensation_attempts + 1,
                patient=True,  # a compensation never gives up because a breaker is open
            )
        kind = EventType.COMPENSATION_SUCCEEDED if outcome.ok else EventType.COMPENSATION_FAILED
        await self._recorder.emit(
            kind,
            step_id=step.id,
            attempt=outcome.attempts,
            error=outcome.error,
            duration=outcome.duration,
        )


def _unrenderable(step: Step, progress: StepProgress, exc: TemplateError) -> ErrorInfo:
    """Why a compensation could not even be rendered.

    For a step in doubt, that its output is unknown (asking again got no answer): the real
    reason it cannot be undone.
    """
    assert step.compensate is not None
    service = step.compensate.service
    if progress.state is StepState.FAILED and progress.in_doubt:
        asked = f" ({progress.error.code}: {progress.error.message})" if progress.error else ""
        return ErrorInfo(
            "OUTCOME_UNKNOWN",
            f"step '{step.id}' may have acted, asking its service again got no answer{asked}, "
            f"and its compensation needs its output: {exc.message}",
            service,
        )
    return ErrorInfo("TEMPLATE_ERROR", exc.message, service)
