"""A workflow as a Mermaid flowchart: steps, dependencies, and compensations as dashed edges."""

from __future__ import annotations

from maestro_server.model.workflow import Step, Workflow


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def _node_id(step: Step) -> str:
    return "step_" + step.id.replace("-", "_")


def to_mermaid(workflow: Workflow) -> str:
    """Render the workflow's step graph as Mermaid `flowchart TD` source."""
    lines = ["flowchart TD"]
    for step in workflow.steps:
        label = f"{step.id}<br/>{step.service}: {step.method}"
        if step.when is not None:
            label += f"<br/>when {step.when.source}"
        lines.append(f'    {_node_id(step)}["{_label(label)}"]')
    for step in workflow.steps:
        for dependency in step.depends_on:
            lines.append(f"    {_node_id(workflow.step(dependency))} --> {_node_id(step)}")
    for step in workflow.steps:
        if step.compensate is not None:
            undo = f"{_node_id(step)}_undo"
            label = f"undo {step.id}<br/>{step.compensate.service}: {step.compensate.method}"
            lines.append(f'    {undo}(["{_label(label)}"])')
            lines.append(f"    {_node_id(step)} -.-> {undo}")
    return "\n".join(lines) + "\n"
