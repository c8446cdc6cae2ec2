"""Cross-checks of a parsed workflow: ids, services, outputs, dependencies and what templates read.

A template may read `.input`, `.execution`, `.workflow`, and the outputs of the steps that finish
before it by dependency (`depends_on`, or the previous step by default): a step's `input`,
`method` and `when` see its ancestors; its compensation also sees the step itself; the
workflow's `output` sees every step; service `headers` see no step at all. Inside a `for_each`
step's `input`, `when` and `compensate` (not its `for_each` list), its element (`as`, default
`item`) and `.index` are bound too; nowhere else.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from yaml.nodes import Node

from maestro_server.definition.reader import Reader, did_you_mean, find_node
from maestro_server.model.workflow import ELEMENT_INDEX, RESERVED_NAMES, Service, Step
from maestro_server.templating.environment import ENVIRONMENT
from maestro_server.templating.values import Template

_OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BUILTINS = frozenset({"input", "execution", "workflow"}) | frozenset(ENVIRONMENT.globals)


class Scope(enum.Enum):
    """Which part of the workflow a template sits in, deciding what it may read."""

    STEP = "step"
    FOR_EACH = "for_each"
    """The list of a `for_each` step: sees what the step's input sees, but no element."""
    COMPENSATION = "compensation"
    WORKFLOW_OUTPUT = "output"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class TemplateSite:
    """A compiled template and where it came from."""

    template: Template
    node: Node
    path: str
    step_id: str | None
    scope: Scope


def validate(
    reader: Reader,
    steps: Sequence[tuple[Step, Node]],
    services: Mapping[str, Service],
    sites: Sequence[TemplateSite],
) -> None:
    """Record a diagnostic for every cross-reference problem."""
    by_id: dict[str, tuple[Step, Node]] = {}
    for index, (step, node) in enumerate(steps):
        path = f"steps[{index}]"
        if step.id in by_id:
            first = reader.location(by_id[step.id][1])
            reader.error(
                find_node(node, ["id"]),
                f"{path}.id",
                "duplicate-id",
                f"duplicate step id '{step.id}' (first defined at line {first.line})",
            )
            continue
        by_id[step.id] = (step, node)
        if step.service and step.service not in services:
            reader.error(
                find_node(node, ["service"]),
                f"{path}.service",
                "unknown-service",
                f"unknown service '{step.service}'{did_you_mean(step.service, services)}",
            )
    producers = _outputs(reader, steps)
    _dependencies(reader, steps, by_id)
    ancestors = {step_id: _ancestors(step_id, by_id) for step_id in by_id}
    element_names = _element_names(reader, steps, producers)
    for site in sites:
        if _element_reads(reader, site, by_id, element_names):
            continue
        _references(reader, site, by_id, producers, ancestors)


def _outputs(reader: Reader, steps: Sequence[tuple[Step, Node]]) -> dict[str, str]:
    """Output name → id of the step that produces it."""
    producers: dict[str, str] = {}
    for index, (step, node) in enumerate(steps):
        name = step.output
        if name is None:
            continue
        where, path = find_node(node, ["output"]), f"steps[{index}].output"
        if not _OUTPUT_NAME.fullmatch(name):
            reader.error(
                where,
                path,
                "bad-name",
                f"output name '{name}' must be an identifier (letters, digits, '_') so "
                f"templates can read it as .{name}",
            )
        elif name in RESERVED_NAMES:
            reader.error(
                where,
                path,
                "reserved-name",
                f"output name '{name}' is reserved ({', '.join(sorted(RESERVED_NAMES))})",
            )
        elif name in producers:
            reader.error(
                where,
                path,
                "duplicate-output",
                f"duplicate output name '{name}' (already the output of step '{producers[name]}')",
            )
        else:
            producers[name] = step.id
    return producers


def _element_names(
    reader: Reader, steps: Sequence[tuple[Step, Node]], producers: Mapping[str, str]
) -> dict[str, str]:
    """Names bound inside some for_each step (its `as` and `index`) → the first such step.

    An output of the same name would be hidden inside that step: refused at the output.
    """
    names: dict[str, str] = {}
    for step, _ in steps:
        if step.for_each is not None:
            names.setdefault(step.for_each.name, step.id)
            names.setdefault(ELEMENT_INDEX, step.id)
    for index, (step, node) in enumerate(steps):
        if step.output is not None and step.output in names:
            reader.error(
                find_node(node, ["output"]),
                f"steps[{index}].output",
                "reserved-name",
                f"output name '{step.output}' is bound to the element inside for_each step "
                f"'{names[step.output]}': choose another name",
            )
    return {name: step_id for name, step_id in names.items() if name not in producers}


def _element_reads(
    reader: Reader,
    site: TemplateSite,
    by_id: Mapping[str, tuple[Step, Node]],
    element_names: Mapping[str, str],
) -> bool:
    """Report reads of an element where none is bound; True when there were any."""
    found = by_id.get(site.step_id or "")
    step = found[0] if found is not None else None
    for_each = step.for_each if step is not None else None
    bound: frozenset[str] = frozenset()
    if for_each is not None and site.scope in (Scope.STEP, Scope.COMPENSATION):
        bound = frozenset({for_each.name, ELEMENT_INDEX})
    reads = {ref.name for ref in site.template.references if ref.name in element_names}
    for name in sorted(reads - bound):
        if site.scope is Scope.FOR_EACH:
            where = (
                f"the for_each list of step '{site.step_id}' cannot read .{name}: "
                "it makes the elements"
            )
        else:
            where = (
                f"template reads .{name}, which is bound only inside a for_each step (its "
                f"input, when and compensate; e.g. step '{element_names[name]}')"
            )
        reader.error(site.node, site.path, "element-outside-for-each", where)
    return bool(reads - bound)  # one error per template is enough


def _dependencies(
    reader: Reader, steps: Sequence[tuple[Step, Node]], by_id: Mapping[str, tuple[Step, Node]]
) -> None:
    for index, (step, node) in enumerate(steps):
        for position, dependency in enumerate(step.depends_on):
            if dependency not in by_id:
                where = find_node(node, ["depends_on", position])
                reader.error(
                    where,
                    f"steps[{index}].depends_on[{position}]",
                    "unknown-step",
                    f"step '{step.id}' depends on unknown step "
                    f"'{dependency}'{did_you_mean(dependency, by_id)}",
                )
    # Depth-first search; a back edge closes a cycle, reported once from its first step.
    state: dict[str, int] = {}
    reported: set[frozenset[str]] = set()

    def visit(step_id: str, trail: list[str]) -> None:
        state[step_id] = 1
        trail.append(step_id)
        for dependency in by_id[step_id][0].depends_on:
            if dependency not in by_id:
                continue
            if state.get(dependency) == 1:
                cycle = trail[trail.index(dependency) :]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    first_node = by_id[cycle[0]][1]
                    where = find_node(first_node, ["depends_on"])
                    chain = " → ".join([*cycle, cycle[0]]) + " (each depends on the next)"
                    reader.error(
                        where,
                        f"{_path(steps, cycle[0])}.depends_on",
                        "dependency-cycle",
                        f"dependency cycle: {chain}",
                    )
            elif dependency not in state:
                visit(dependency, trail)
        trail.pop()
        state[step_id] = 2

    for step_id in by_id:
        if step_id not in state:
            visit(step_id, [])


def _ancestors(step_id: str, by_id: Mapping[str, tuple[Step, Node]]) -> frozenset[str]:
    seen: set[str] = set()
    stack = list(by_id[step_id][0].depends_on)
    while stack:
        current = stack.pop()
        if current in seen or current not in by_id:
            continue
        seen.add(current)
        stack.extend(by_id[current][0].depends_on)
    seen.discard(step_id)
    return frozenset(seen)


def _references(
    reader: Reader,
    site: TemplateSite,
    by_id: Mapping[str, tuple[Step, Node]],
    producers: Mapping[str, str],
    ancestors: Mapping[str, frozenset[str]],
) -> None:
    bound: frozenset[str] = frozenset()
    found = by_id.get(site.step_id or "")
    step = found[0] if found is not None else None
    if step is not None and step.for_each is not None and site.scope is not Scope.FOR_EACH:
        bound = frozenset({step.for_each.name, ELEMENT_INDEX})
    if site.scope is Scope.WORKFLOW_OUTPUT:
        visible = frozenset(by_id)
    elif site.scope is Scope.SERVICE or site.step_id is None or site.step_id not in ancestors:
        visible = frozenset()
    elif site.scope is Scope.COMPENSATION:
        visible = ancestors[site.step_id] | {site.step_id}
    else:
        visible = ancestors[site.step_id]
    visible_outputs = {name for name, producer in producers.items() if producer in visible}
    for ref in sorted(site.template.references, key=lambda r: (r.name, r.step or "")):
        if ref.name in _BUILTINS or ref.name in bound:
            continue
        if ref.name == "secrets":
            if site.scope is not Scope.SERVICE:
                reader.error(
                    site.node,
                    site.path,
                    "secret-outside-headers",
                    "secrets may be read only in service headers (sent with each call, "
                    "never stored or shown in events)",
                )
            continue
        if ref.name == "steps":
            if ref.step is None or ref.step in visible:
                continue
            if ref.step not in by_id:
                message = f"template reads .steps.{ref.step}, but there is no step '{ref.step}'"
                message += did_you_mean(ref.step, by_id)
            else:
                message = _not_before(site, f".steps.{ref.step}", ref.step)
            reader.error(site.node, site.path, "unknown-reference", message)
            continue
        if ref.name in visible_outputs:
            continue
        if ref.name in producers:
            message = _not_before(site, f".{ref.name}", producers[ref.name])
        elif (
            site.scope is Scope.COMPENSATION
            and site.step_id is not None
            and site.step_id in by_id
            and by_id[site.step_id][0].output is None
        ):
            message = (
                f"the compensation of step '{site.step_id}' reads .{ref.name}, but step "
                f"'{site.step_id}' names no output (add `output: {ref.name}` to the step, "
                f"or read .steps.{site.step_id}.output)"
            )
        else:
            known = sorted({"input", "execution", "workflow", *visible_outputs})
            message = (
                f"template reads .{ref.name}, which is not defined here "
                f"(known: {', '.join(known)}){did_you_mean(ref.name, known)}"
            )
            if ref.name in ("item", ELEMENT_INDEX):
                message += f"; .{ref.name} is bound only inside a for_each step"
        reader.error(site.node, site.path, "unknown-reference", message)


def _not_before(site: TemplateSite, what: str, producer: str) -> str:
    if site.scope is Scope.SERVICE:
        return (
            f"service headers cannot read {what}: they may read only .input, .execution "
            "and .workflow"
        )
    return (
        f"template reads {what}, the output of step '{producer}', which does not run before "
        f"step '{site.step_id}' (add '{producer}' to its depends_on)"
    )


def _path(steps: Sequence[tuple[Step, Node]], step_id: str) -> str:
    index = next(i for i, (step, _) in enumerate(steps) if step.id == step_id)
    return f"steps[{index}]"
