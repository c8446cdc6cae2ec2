"""A workflow as a Mermaid flowchart: steps, dependencies, and compensations as dashed edges.

A sub-workflow step is a rounded box (a subroutine box when it runs per element, as any
for_each step); without a `compensate` of its own, its undo is compensating its child.
"""

from __future__ import annotations

from maestro_server.api.graph import sleep_text
from maestro_server.durations import format_duration
from maestro_server.model.workflow import Sleep, Step, WaitForSignal, Workflow


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def _node_id(step: Step) -> str:
    return "step_" + step.id.replace("-", "_")


# A wait for a signal is a hexagon, a sleep a parallelogram; a call a rectangle.
_SHAPES = {WaitForSignal: ("{{", "}}"), Sleep: ("[/", "/]")}


def _what(step: Step) -> str:
    pause = step.pause
    if isinstance(pause, WaitForSignal):
        timeout = f" (timeout {format_duration(pause.timeout)})" if pause.timeout else ""
        return f"wait for signal {pause.signal}{timeout}"
    if isinstance(pause, Sleep):
        until = "" if pause.duration is not None else "until "
        return f"sleep {until}{sleep_text(pause)}"
    if step.workflow is not None:
        return f"runs workflow {step.workflow.source}"
    return f"{step.service}: {step.method}"


def to_mermaid(workflow: Workflow) -> str:
    """Render the workflow's step graph as Mermaid `flowchart TD` source."""
    lines = ["flowchart TD"]
    for step in workflow.steps:
        label = f"{step.id}<br/>{_what(step)}"
        for_each = step.for_each
        if for_each is not None:
            at_once = f", {for_each.concurrency} at a time" if for_each.concurrency > 1 else ""
            label += f"<br/>for each {for_each.name} in {for_each.source}{at_once}"
        if step.when is not None:
            label += f"<br/>when {step.when.source}"
        # A for_each step is drawn as a subroutine box: it runs once per element.
        opening, closing = (
            ("[[", "]]") if for_each is not None else _SHAPES.get(type(step.pause), ("[", "]"))
        )
        if step.workflow is not None and for_each is None:
            opening, closing = "(", ")"  # a child execution: a rounded box
        lines.append(f'    {_node_id(step)}{opening}"{_label(label)}"{closing}')
    for step in workflow.steps:
        for dependency in step.depends_on:
            lines.append(f"    {_node_id(workflow.step(dependency))} --> {_node_id(step)}")
    for step in workflow.steps:
        if step.compensate is not None:
            undo = f"{_node_id(step)}_undo"
            label = f"undo {step.id}<br/>{step.compensate.service}: {step.compensate.method}"
            lines.append(f'    {undo}(["{_label(label)}"])')
            lines.append(f"    {_node_id(step)} -.-> {undo}")
        elif step.workflow is not None:
            undo = f"{_node_id(step)}_undo"
            lines.append(f'    {undo}(["{_label(f"undo {step.id}<br/>compensate the child")}"])')
            lines.append(f"    {_node_id(step)} -.-> {undo}")
    return "\n".join(lines) + "\n"
