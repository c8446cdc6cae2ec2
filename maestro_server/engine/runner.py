"""One execution of a workflow: steps by dependency, then, if one fails for good, the saga.

Forward: a step starts once every step it depends on has finished (succeeded, been skipped, or
failed with `continue_on_error`); independent steps run concurrently. When a step fails for good
(or the execution is cancelled, or its timeout passes), running siblings are stopped and the
saga compensates, in reverse order of completion, every step that succeeded or whose outcome is
in doubt. Every transition is an Event, numbered 1, 2, 3 … and written by the Recorder.

The parts: `Scheduler` (what may start), `StepAttempts` (one forward step), `Saga` (the
compensations and the end), `restore` (a log back into progress), `Recorder` (the log).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from maestro_server import tracing
from maestro_server.engine.attempts import SERVER_STOPPING, StepAttempts, Stopping
from maestro_server.engine.calls import Caller
from maestro_server.engine.children import SubWorkflows
from maestro_server.engine.context import ExecutionContext
from maestro_server.engine.dependencies import Dependencies
from maestro_server.engine.element_undo import ElementUndo
from maestro_server.engine.elements import Elements
from maestro_server.engine.mailbox import Mailbox
from maestro_server.engine.observe import Observer
from maestro_server.engine.recorder import Recorder
from maestro_server.engine.replay import restore
from maestro_server.engine.saga import Saga
from maestro_server.engine.scheduler import Scheduler
from maestro_server.engine.stopwatch import Stopwatch
from maestro_server.engine.waits import Pauses
from maestro_server.errors import TemplateError
from maestro_server.model.execution import (
    Cause,
    ErrorInfo,
    Event,
    EventType,
    ExecutionResult,
    ExecutionState,
    StepState,
)
from maestro_server.model.progress import Progress, StepProgress, Stop
from maestro_server.model.signals import Signal
from maestro_server.model.workflow import Step, Workflow
from maestro_server.store.base import ExecutionRecord

log = structlog.get_logger("maestro.engine")


@dataclass(frozen=True, slots=True)
class Resumption:
    """What a resumed execution starts from: its log, and the requests it journaled."""

    history: Sequence[Event] = ()
    saved_requests: Mapping[str, Any] = field(default_factory=dict)
    retry_compensations: bool = False
    """An operator's resume of a COMPENSATION_FAILED execution: its failed compensations
    get their full retry policy again."""
    signals: Sequence[Signal] = ()
    """The signals sent to the execution so far, in order (taken or not)."""
    undo: bool = False
    """A COMPLETED child whose parent's saga compensates it: its saga runs now."""


class Runner:
    """Runs one execution to a terminal state; `cancel()` stops it and compensates."""

    def __init__(
        self,
        workflow: Workflow,
        execution_id: str,
        input: Any,
        deps: Dependencies,
        *,
        resumption: Resumption | None = None,
        trace_parent: Mapping[str, str] | None = None,
        creation: ExecutionRecord | None = None,
    ) -> None:
        """A run of a new execution, or one resumed from its log.

        `creation`: the new execution's record, created with its first events.
        """
        resumption = resumption or Resumption()
        self.workflow = workflow
        self.execution_id = execution_id
        self._context = ExecutionContext(workflow, execution_id, input, deps.secrets)
        progress = restore(resumption.history, self._context)
        if resumption.retry_compensations and progress.state is not (
            ExecutionState.COMPENSATION_FAILED
        ):
            raise ValueError(f"execution {execution_id} is {progress.state.value}")
        if resumption.undo and progress.state is not ExecutionState.COMPLETED:
            raise ValueError(f"execution {execution_id} is {progress.state.value}")
        self._recorder = Recorder(
            execution_id,
            deps,
            progress,
            dict(resumption.saved_requests),
            resumed=resumption.retry_compensations,
            undo=resumption.undo,
            observe=Observer(workflow, deps.metrics),
            creation=creation,
        )
        caller = Caller(deps.invoker, deps.breakers, deps.clock, deps.rng, deps.metrics)
        self._steps = StepAttempts(workflow, self._recorder, self._context, caller)
        self._children = SubWorkflows(self._recorder, self._context, deps.children, deps.now)
        self._elements = Elements(
            workflow,
            self._recorder,
            self._context,
            self._steps,
            max_elements=deps.max_for_each_elements,
            children=self._children,
        )
        self._mailbox = Mailbox(resumption.signals, progress.consumed_signals)
        self._pauses = Pauses(self._recorder, self._context, self._mailbox, deps.clock, deps.now)
        self._stopwatch = Stopwatch(deps.clock)
        self._saga = Saga(
            workflow,
            self._recorder,
            self._context,
            caller,
            self._steps,
            elapsed=self._stopwatch.elapsed,
            elements=ElementUndo(
                workflow,
                self._recorder,
                self._context,
                caller,
                self._steps,
                children=self._children,
            ),
            children=self._children,
        )
        self._now = deps.now
        self._trace_parent = dict(trace_parent or {})
        self._cancel: asyncio.Future[str] | None = None

    @property
    def created(self) -> asyncio.Future[tuple[Event, ...]]:
        """See Recorder.created."""
        return self._recorder.created

    @property
    def state(self) -> ExecutionState:
        """Where the execution stands now."""
        return self._recorder.progress.state

    @property
    def records(self) -> Mapping[str, StepProgress]:
        """Where each step stands now."""
        progress = self._recorder.progress
        return {step.id: progress.step(step.id) for step in self.workflow.steps}

    def cancel(self, reason: str = "cancelled") -> bool:
        """Stop forward progress and compensate; False when too late (compensating or done)."""
        if self.state not in (ExecutionState.PENDING, ExecutionState.RUNNING):
            return False
        if self._cancel is None:
            self._cancel = asyncio.get_running_loop().create_future()
        if not self._cancel.done():
            self._cancel.set_result(reason)
        return True

    def deliver(self, signals: Sequence[Signal]) -> None:
        """Signals sent to the execution (any it knows already are ignored)."""
        self._mailbox.deliver(signals)

    @property
    def signal_position(self) -> int:
        """The position of the last signal delivered; later ones are new to it."""
        return self._mailbox.position

    @property
    def waiting_for_signal(self) -> bool:
        """Whether a `wait` step waits now (only then are new signals looked for)."""
        return self._mailbox.waiting

    async def run(self) -> ExecutionResult:
        """Run the execution to its end and return how it ended."""
        with tracing.execution_span(self.workflow.name, self.execution_id, self._trace_parent):
            try:
                return await self._run()
            finally:
                await self._recorder.close()

    async def _run(self) -> ExecutionResult:
        structlog.contextvars.bind_contextvars(
            execution_id=self.execution_id, workflow=self.workflow.name
        )
        self._stopwatch.start()
        progress = self._recorder.progress
        if progress.last_sequence == 0:
            await self._recorder.emit(EventType.WORKFLOW_STARTED)
        else:
            log.info("execution resumed", after_sequence=progress.last_sequence, state=self.state)
        if self.state.terminal:
            return ExecutionResult(self.execution_id, self.state)
        stop = progress.stop
        if stop is not None:
            await self._steps.settle_in_flight()
            await self._elements.settle_in_flight()
        else:
            stop = await self._forward()
        if stop is None:
            try:
                output = self._context.render(self.workflow.output, step=None)
            except TemplateError as exc:
                stop = Stop(Cause.OUTPUT_FAILED, ErrorInfo("TEMPLATE_ERROR", exc.message))
            else:
                event = await self._recorder.emit(
                    EventType.WORKFLOW_COMPLETED, output=output, duration=self._stopwatch.elapsed()
                )
                return ExecutionResult(self.execution_id, event.state, output=output)
        return await self._saga.run(stop)

    def _step(self, step: Step, stopping: asyncio.Future[Stopping]) -> Coroutine[Any, Any, bool]:
        """A step's run: a call, a pause, a child execution, or one of these per element.

        `for_each` runs a call or a child per element; `wait` and `sleep` pause; `workflow`
        runs a child execution.
        """
        if step.pause is not None:
            return self._pauses.run(step, stopping)
        if step.for_each is not None:
            return self._elements.run(step, stopping)
        if step.workflow is not None:
            return self._children.run(step, stopping)
        return self._steps.run(step, stopping)

    async def _forward(self) -> Stop | None:
        """Run the steps until all finished (None) or the execution stops (why)."""
        scheduler = Scheduler(self.workflow, self._recorder.progress)
        stopping: asyncio.Future[Stopping] = asyncio.get_running_loop().create_future()
        running: dict[asyncio.Task[bool], str] = {}
        if self._cancel is None:
            self._cancel = asyncio.get_running_loop().create_future()
        timeout = self.workflow.timeout
        loop = asyncio.get_running_loop()
        deadline = None
        if timeout is not None:
            # The workflow timeout counts from the execution's start, across restarts.
            started = self._recorder.progress.started_at or self._now()
            spent = (self._now() - started).total_seconds()
            deadline = loop.time() + timeout.total_seconds() - max(spent, 0.0)
        try:
            while not scheduler.done:
                for step_id in scheduler.ready():
                    task = asyncio.create_task(self._step(self.workflow.step(step_id), stopping))
                    running[task] = step_id
                if not running:
                    return _blocked(self._recorder.progress, scheduler)
                remaining = None if deadline is None else deadline - loop.time()
                awaited: list[asyncio.Future[Any]] = [*running, self._cancel]
                done, _ = await asyncio.wait(
                    awaited,
                    timeout=None if remaining is None else max(remaining, 0),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    assert timeout is not None
                    message = f"workflow timeout of {timeout.total_seconds():g}s exceeded"
                    why = Stopping(Cause.TIMEOUT, f"workflow timeout exceeded ({message})")
                    await _stop(running, stopping, why)
                    return Stop(Cause.TIMEOUT, ErrorInfo("DEADLINE_EXCEEDED", message))
                if self._cancel in done:
                    reason = self._cancel.result()
                    why = Stopping(Cause.CANCELLED, f"execution cancelled: {reason}")
                    await _stop(running, stopping, why)
                    return Stop(Cause.CANCELLED, ErrorInfo("CANCELLED", reason))
                for task in [t for t in running if t in done]:
                    step_id = running.pop(task)
                    if task.result():
                        scheduler.finished(step_id)
                        continue
                    why = Stopping(Cause.STEP_FAILED, f"stopped because step '{step_id}' failed")
                    await _stop(running, stopping, why)
                    error = self._recorder.progress.step(step_id).error
                    assert error is not None
                    return Stop(Cause.STEP_FAILED, error, step_id)
            return None
        finally:
            if running:
                # This process is stopping (its task was cancelled): leave the steps as the
                # log has them, so the execution resumes where it was after a restart.
                await _stop(running, stopping, SERVER_STOPPING)


async def _stop(
    running: dict[asyncio.Task[bool], str], stopping: asyncio.Future[Stopping], why: Stopping
) -> None:
    """Stop the running steps, telling each why."""
    if not stopping.done():
        stopping.set_result(why)
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    running.clear()


def _blocked(progress: Progress, scheduler: Scheduler) -> Stop:
    """Nothing runs and steps still wait: a step they need failed (a log from before causes)."""
    for step_id, step in progress.steps.items():
        if step.error is not None and step.state is StepState.FAILED:
            return Stop(Cause.STEP_FAILED, step.error, step_id)
    raise AssertionError(f"the step graph is stuck: {scheduler!r}")
