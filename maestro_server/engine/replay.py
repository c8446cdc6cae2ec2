"""Picking up an execution from its log: where it stands, and what its templates saw."""

from __future__ import annotations

from collections.abc import Iterable

from maestro_server.engine.context import ExecutionContext
from maestro_server.model.execution import Event
from maestro_server.model.progress import Progress, replay


def restore(events: Iterable[Event], context: ExecutionContext) -> Progress:
    """The progress after `events`, with every step that ended made visible to templates.

    A step that succeeded keeps its output through compensation: the compensation reads it.
    """
    progress = replay(events)
    for step in context.workflow.steps:
        step_progress = progress.step(step.id)
        if step_progress.ended_forward:
            context.record(step, step_progress.output)
    return progress
