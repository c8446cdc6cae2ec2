"""The `.input` values an execution cannot do without, found when the workflow loads.

A value is needed when a template reads it whatever happens: in a step without `when` (or in a
`when` itself), in the workflow's output, or in the headers of a service such a step calls; and
outside `default`, `index`, `is defined`, conditional branches and loops. A start whose input
lacks one is refused before anything is stored or called (definition/inputs.py). Where such a
value goes unchanged into a gRPC field, the field's type is kept too.
"""

from __future__ import annotations

from maestro_server.definition.calls import CallCheck
from maestro_server.definition.fields import Slot, scalar_kind
from maestro_server.definition.paths import describe_slot, origin
from maestro_server.definition.validate import Scope, TemplateSite
from maestro_server.model.workflow import InputRead


def input_reads(check: CallCheck) -> tuple[InputRead, ...]:
    """Every needed `.input` path, with who reads it and the type a field wants of it."""
    # A for_each step renders its input per element: an empty list renders none of it.
    always = [step for step, _ in check.steps if step.when is None and step.for_each is None]
    unconditional = {step.id for step in always}
    called = {step.service for step in always}
    per_element = {step.id for step, _ in check.steps if step.for_each is not None}
    found: list[InputRead] = []
    for site in check.sites:
        if not _always_rendered(site, unconditional, called, per_element):
            continue
        analysis = check.analyses.get(id(site.template))
        if analysis is None:
            continue
        for read in analysis.reads:
            if read.root != "input" or read.optional or read.conditional or not read.keys:
                continue
            slot = check.expected.get(id(site.template)) if analysis.path == read else None
            kind, field = (
                (_tag(slot), f"{origin(slot)} ({describe_slot(slot)})") if slot else ("", "")
            )
            found.append(InputRead(read.keys, _reader(site), kind or None, field))
    return tuple(dict.fromkeys(found))


def _always_rendered(
    site: TemplateSite, unconditional: set[str], called: set[str], per_element: set[str]
) -> bool:
    if site.scope in (Scope.WORKFLOW_OUTPUT, Scope.FOR_EACH):
        return True
    if site.step_id in per_element:
        return False
    if site.scope is Scope.SERVICE:
        return site.path.split(".")[1] in called
    if site.scope is Scope.STEP:
        return site.step_id in unconditional or site.path.endswith(".when")
    return False  # a compensation runs only if something fails


def _reader(site: TemplateSite) -> str:
    field = site.template.field
    if site.scope is Scope.WORKFLOW_OUTPUT:
        return f"the workflow's {field}"
    if site.scope is Scope.SERVICE:
        return f"service '{site.path.split('.')[1]}' ({field})"
    return f"step '{site.step_id}' ({field})"


def _tag(slot: Slot) -> str:
    if slot.shape == "scalar":
        return scalar_kind(slot)
    return "array" if slot.shape == "list" else "object"
