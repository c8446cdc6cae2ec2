"""Which steps of an execution may start: the step graph by dependency counts, no I/O."""

from __future__ import annotations

from maestro_server.model.execution import StepState
from maestro_server.model.progress import Progress, StepProgress
from maestro_server.model.workflow import Step, Workflow


def lets_dependents_go(step: Step, progress: StepProgress) -> bool:
    """Whether a step is finished for the steps that depend on it.

    It succeeded, was skipped, or failed with `continue_on_error`.
    """
    if progress.state in (StepState.SUCCEEDED, StepState.SKIPPED):
        return True
    return progress.state is StepState.FAILED and step.continue_on_error


class Scheduler:
    """The forward part of one execution: what is ready, what waits, when it is done.

    A step is ready once every step it depends on lets it go; independent steps are ready
    together. It counts unfinished dependencies, so each completion costs only its dependents.
    """

    def __init__(self, workflow: Workflow, progress: Progress) -> None:
        finished = {
            step.id for step in workflow.steps if lets_dependents_go(step, progress.step(step.id))
        }
        self._dependents: dict[str, list[str]] = {}
        for step in workflow.steps:
            for dependency in step.depends_on:
                self._dependents.setdefault(dependency, []).append(step.id)
        # How many unfinished dependencies each unfinished step waits for; 0 means ready.
        self._waiting = {
            step.id: sum(d not in finished for d in step.depends_on)
            for step in workflow.steps
            if step.id not in finished
        }
        self._started: set[str] = set()

    def ready(self) -> list[str]:
        """The steps that may start now and have not been handed out; marks them started."""
        ready = [s for s, count in self._waiting.items() if count == 0 and s not in self._started]
        self._started.update(ready)
        return ready

    def finished(self, step_id: str) -> None:
        """A started step let its dependents go."""
        del self._waiting[step_id]
        for dependent in self._dependents.get(step_id, ()):
            if dependent in self._waiting:
                self._waiting[dependent] -= 1

    @property
    def done(self) -> bool:
        """Whether every step has finished."""
        return not self._waiting
