"""Registered sub-workflows, checked against the store when a workflow is registered or started.

Every name (and version) a workflow runs must be registered, and none may run it again.

Validation alone sees files (recursion through files and a workflow naming itself, see
definition/sub_workflows.py); registered names need the store. A workflow that reaches its own
name through registered ones is recursion whatever the versions: each run would start the
same chain again. Problems are diagnostics at the step's position, like validation's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from maestro_server.definition import load_workflow
from maestro_server.diagnostics import Diagnostic
from maestro_server.errors import InvalidWorkflowError, NotFoundError
from maestro_server.model.workflow import Step, SubWorkflow, Workflow
from maestro_server.store.base import StoredWorkflow

_MAX_VISITED = 1000
"""Registered workflows read at most per check: a bound on what one request makes us read."""


class WorkflowLookup(Protocol):
    """What the checks read: a registered definition (the latest when `version` is empty)."""

    async def get_workflow(self, name: str, version: str = "") -> StoredWorkflow:
        """NotFoundError when there is none."""
        ...


class Registering:
    """The store's workflows, with those being registered together (`maestro serve --workflows`).

    One file may name another registered after it, and a cycle among them is recursion.
    Theirs come first: each is the latest of its name once registered.
    """

    def __init__(self, store: WorkflowLookup, workflows: Sequence[StoredWorkflow]) -> None:
        self._store = store
        self._workflows = list(workflows)

    async def get_workflow(self, name: str, version: str = "") -> StoredWorkflow:
        """See WorkflowLookup.get_workflow."""
        for workflow in reversed(self._workflows):  # the last registered is the latest
            if workflow.name == name and (not version or workflow.version == version):
                return workflow
        return await self._store.get_workflow(name, version)


def registered_refs(workflow: Workflow) -> Iterator[tuple[Step, SubWorkflow, str]]:
    """The registered sub-workflows a workflow runs, its file children's included.

    Each with its step and where in its file it is named (`steps[2].workflow.name`).
    """
    for index, step in enumerate(workflow.steps):
        ref = step.workflow
        if ref is None:
            continue
        if ref.definition is not None:
            yield from registered_refs(ref.definition)
        elif not ref.file:
            yield step, ref, f"steps[{index}].workflow.name"


async def check_registered_children(store: WorkflowLookup, workflow: Workflow) -> None:
    """InvalidWorkflowError for unknown registered sub-workflows, or ones that run `workflow`."""
    problems: list[Diagnostic] = []
    for step, ref, path in registered_refs(workflow):
        try:
            child = await _load(store, ref.name, ref.version)
        except NotFoundError:
            what = f"workflow '{ref.name}'" + (f" version '{ref.version}'" if ref.version else "")
            problems.append(
                Diagnostic(
                    ref.location or step.location,
                    f"step '{step.id}' runs {what}, which is not registered on this server",
                    "unknown-workflow",
                    path,
                )
            )
            continue
        chain = await _path_to(store, child, workflow.name)
        if chain is not None:
            problems.append(
                Diagnostic(
                    ref.location or step.location,
                    f"step '{step.id}' runs workflow '{ref.name}' inside itself (recursion: "
                    f"{' → '.join((workflow.name, *chain))})",
                    "recursion",
                    path,
                )
            )
    if problems:
        raise InvalidWorkflowError(problems)


async def _load(store: WorkflowLookup, name: str, version: str) -> Workflow:
    stored = await store.get_workflow(name, version)
    return load_workflow(stored.yaml, path=stored.path, files=dict(stored.files))


async def _path_to(store: WorkflowLookup, start: Workflow, target: str) -> list[str] | None:
    """The names from `start` to a workflow named `target`, through registered sub-workflows."""
    todo: list[tuple[Workflow, list[str]]] = [(start, [start.name])]
    seen = {start.name}
    while todo and len(seen) < _MAX_VISITED:
        current, path = todo.pop()
        if current.name == target:
            return path
        for _, ref, _ in registered_refs(current):
            if ref.name == target:
                return [*path, target]
            if ref.name in seen:
                continue
            seen.add(ref.name)
            try:
                todo.append((await _load(store, ref.name, ref.version), [*path, ref.name]))
            except NotFoundError:
                continue  # reported when that one is registered or started
    return None
