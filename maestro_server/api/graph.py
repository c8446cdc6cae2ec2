"""A workflow's step graph as `maestro.v1.WorkflowStep` messages, for consoles and tools."""

from __future__ import annotations

from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server.durations import format_duration
from maestro_server.model.workflow import Sleep, Step, WaitForSignal, Workflow
from maestro_server.templating.values import Template


def workflow_graph(workflow: Workflow) -> list[pb.WorkflowStep]:
    """Every step with what it calls, what it waits for and what undoes it, in definition order."""
    steps = []
    for step in workflow.steps:
        message = pb.WorkflowStep(
            step_id=step.id,
            service=step.service,
            method=str(step.method) if step.pause is None and step.workflow is None else "",
            depends_on=list(step.depends_on),
            when=step.when.source if step.when is not None else "",
        )
        if step.for_each is not None:
            message.for_each = step.for_each.source
            message.for_each_as = step.for_each.name
            message.for_each_concurrency = step.for_each.concurrency
        if step.compensate is not None:
            message.compensation.CopyFrom(
                pb.WorkflowCompensation(
                    service=step.compensate.service, method=str(step.compensate.method)
                )
            )
        _pause(message, step)
        if step.workflow is not None:
            message.sub_workflow = step.workflow.source
        steps.append(message)
    return steps


def _pause(message: pb.WorkflowStep, step: Step) -> None:
    if isinstance(step.pause, WaitForSignal):
        message.wait_signal = step.pause.signal
        if step.pause.timeout is not None:
            message.wait_timeout.FromTimedelta(step.pause.timeout)
    elif isinstance(step.pause, Sleep):
        message.sleep = sleep_text(step.pause)


def sleep_text(sleep: Sleep) -> str:
    """A sleep as written: its duration (`30s`), or `until` (a template's source, or the time)."""
    if sleep.duration is not None:
        return format_duration(sleep.duration)
    until = sleep.until
    return until.source if isinstance(until, Template) else str(getattr(until, "value", ""))
