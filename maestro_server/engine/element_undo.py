"""Undoing the elements of a for_each step, one at a time, for the saga.

An element whose outcome is in doubt is asked again first, under its key, as a step in doubt
is; its compensation then runs with the element's output bound to the step's output name.
"""

from __future__ import annotations

from datetime import timedelta

from maestro_server.engine.attempts import AttemptEvents, StepAttempts, asking_budget
from maestro_server.engine.calls import Attempted, Caller
from maestro_server.engine.children import SubWorkflows
from maestro_server.engine.context import ExecutionContext
from maestro_server.engine.elements import journaled_items
from maestro_server.engine.recorder import Recorder
from maestro_server.errors import TemplateError
from maestro_server.model.execution import ErrorInfo, EventType, StepState
from maestro_server.model.progress import StepProgress
from maestro_server.model.workflow import Step, Workflow
from maestro_server.transports.base import Request


class ElementUndo:
    """Compensates single elements of the for_each steps of one execution."""

    def __init__(
        self,
        workflow: Workflow,
        recorder: Recorder,
        context: ExecutionContext,
        caller: Caller,
        steps: StepAttempts,
        *,
        children: SubWorkflows,
    ) -> None:
        self._workflow = workflow
        self._recorder = recorder
        self._context = context
        self._caller = caller
        self._steps = steps
        self._children = children

    async def undo(self, step: Step, index: int) -> ErrorInfo | None:
        """Compensate one element (asking again first if it is in doubt); its error, if any."""
        element = self._recorder.progress.step(step.id).element(index)
        if element.state is StepState.COMPENSATED:
            return None  # done before a restart
        if step.workflow is not None and step.compensate is None:
            return await self._children.undo(step, index)  # its child execution is undone
        items = await journaled_items(self._recorder, self._context, step)
        view = self._context.element(step, index, items[index])
        in_doubt = element.state is StepState.FAILED and element.in_doubt and not element.probed
        if in_doubt and step.workflow is None:  # a child is not asked again: it is in the store
            await self._settle_doubt(step, index, view)
        elif in_doubt:  # a child, which may still act: its end first
            await self._children.settle_doubt(step, index)
        element = self._recorder.progress.step(step.id).element(index)
        undid_itself = element.state is StepState.FAILED and not element.in_doubt
        if step.workflow is not None and undid_itself:
            return None  # its child undid itself: nothing for the step's compensation to undo
        if element.state is not StepState.COMPENSATION_FAILED:
            await self._compensate(step, index, view.undoing(step, element.output), element)
        element = self._recorder.progress.step(step.id).element(index)
        if element.state is StepState.COMPENSATION_FAILED:
            return element.error or ErrorInfo("UNKNOWN", "no reason recorded")
        return None

    async def _settle_doubt(self, step: Step, index: int, view: ExecutionContext) -> None:
        """Before undoing an element whose outcome is in doubt, ask its service again."""
        service = self._workflow.services[step.service]
        try:
            request = await self._recorder.journaled(view.step_request(step, service))
        except TemplateError:
            return  # it was never sent either
        attempts = self._recorder.progress.step(step.id).element(index).attempts
        if attempts >= asking_budget(step):
            return
        listener = AttemptEvents(
            self._recorder, step.id, compensation=False, probe=True, element_index=index
        )
        outcome = await self._steps.ask_again(step, request, attempts, listener)
        kind = EventType.STEP_SUCCEEDED if outcome.ok else EventType.STEP_FAILED
        await self._recorder.emit(
            kind,
            step_id=step.id,
            element_index=index,
            attempt=outcome.attempts,
            output=outcome.output,
            error=outcome.error,
            duration=outcome.duration,
            in_doubt=not outcome.ok,
            probe=True,
        )

    async def _compensate(
        self, step: Step, index: int, view: ExecutionContext, element: StepProgress
    ) -> None:
        compensation = step.compensate
        assert compensation is not None
        service = self._workflow.services[compensation.service]
        listener = AttemptEvents(self._recorder, step.id, compensation=True, element_index=index)
        request: Request | None = None
        try:
            request = await self._recorder.journaled(
                view.compensation_request(step, compensation, service)
            )
        except TemplateError as exc:
            code = "OUTCOME_UNKNOWN" if element.in_doubt else "TEMPLATE_ERROR"
            error = ErrorInfo(code, exc.message, compensation.service)
            outcome = Attempted(0, timedelta(), error=error)
        if request is not None:
            outcome = await self._caller.call(
                request,
                compensation.retry,
                compensation.timeout,
                listener,
                first_attempt=element.compensation_attempts + 1,
                patient=True,
            )
        kind = EventType.COMPENSATION_SUCCEEDED if outcome.ok else EventType.COMPENSATION_FAILED
        await self._recorder.emit(
            kind,
            step_id=step.id,
            element_index=index,
            attempt=outcome.attempts,
            error=outcome.error,
            duration=outcome.duration,
        )
