"""A workflow's step graph as `maestro.v1.WorkflowStep` messages, for consoles and tools."""

from __future__ import annotations

from maestro_server._proto.maestro.v1 import orchestrator_pb2 as pb
from maestro_server.model.workflow import Workflow


def workflow_graph(workflow: Workflow) -> list[pb.WorkflowStep]:
    """Every step with what it calls, what it waits for and what undoes it, in definition order."""
    steps = []
    for step in workflow.steps:
        message = pb.WorkflowStep(
            step_id=step.id,
            service=step.service,
            method=str(step.method),
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
        steps.append(message)
    return steps
