"""Sub-workflow steps: `workflow: {name: payment, version: "2"}` or `workflow: {file: x.yaml}`.

A sub-workflow step runs another workflow as a child execution instead of calling a service.
It takes no `service`, `method` or `retry` (the child is not retried as a whole: its own steps
have their retries) and no `wait` or `sleep`. It may have `input` (the child's input object),
`output` (the child's workflow output), `when`, `depends_on`, `for_each` (a child per element),
`continue_on_error`, `timeout` (how long the step waits for its child) and `compensate`: an
ordinary call, which must name its `service`; without it, the saga compensates the child.

A file is read relative to the workflow that names it, validated with it, and kept among its
files (with the child's own files under the child's folder), so that a resume rebuilds the
child from the parent's source alone. A workflow that reaches itself, through files or by its
own name, is a validation error; the server checks registered names when a workflow is
registered (see `api.sub_workflow_checks`) and bounds the depth when a child starts.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

from yaml.nodes import MappingNode, Node

from maestro_server.definition.files import is_relative_inside
from maestro_server.definition.reader import IDENTIFIER, Pairs, Reader, find_node
from maestro_server.errors import InvalidWorkflowError
from maestro_server.model.workflow import Step, SubWorkflow, Workflow

SUB_WORKFLOW_KEYS = ("workflow",)
REFERENCE_KEYS = ("name", "version", "file")
NOT_FOR_SUB_WORKFLOWS = ("service", "method", "retry", "wait", "sleep")
"""Keys of other kinds of steps, which a sub-workflow step has no use for."""


def read_sub_workflow(r: Reader, pairs: Pairs, path: str) -> SubWorkflow | None:
    """The workflow a step with `workflow` runs (None after an error, reported)."""
    for key in NOT_FOR_SUB_WORKFLOWS:
        if key in pairs:
            r.error(
                pairs[key][0],
                f"{path}.{key}",
                "sub-workflow-with-call",
                f"a sub-workflow step runs a workflow and takes no '{key}'",
            )
    if "compensate" in pairs:
        node = pairs["compensate"][1]
        if isinstance(node, MappingNode) and not any(k.value == "service" for k, _ in node.value):
            r.error(
                node,
                f"{path}.compensate",
                "missing-key",
                "the compensation of a sub-workflow step must name its 'service' (the step "
                "calls none); leave 'compensate' out to compensate the child execution",
            )
    node = pairs["workflow"][1]
    where = f"{path}.workflow"
    ref = r.mapping(node, where, "'workflow'", REFERENCE_KEYS)
    if ref is None:
        return None
    if "file" in ref:
        for key in ("name", "version"):
            if key in ref:
                r.error(
                    ref[key][0],
                    f"{where}.{key}",
                    "bad-value",
                    f"'workflow' names a registered workflow or a file, not both (no '{key}' "
                    "with 'file')",
                )
        name = r.string(ref["file"][1], f"{where}.file", "'file'")
        if name is None:
            return None
        if not is_relative_inside(name):
            r.error(
                ref["file"][1],
                f"{where}.file",
                "bad-path",
                f"file '{name}' must be a relative path inside the workflow's folder",
            )
            return None
        return SubWorkflow(file=posixpath.normpath(name))
    if not r.require(ref, node, where, "'workflow'", "name"):
        return None
    name = r.string(ref["name"][1], f"{where}.name", "'name'")
    version = r.get(ref, "version", r.string, f"{where}.version") or ""
    if name is not None and not IDENTIFIER.fullmatch(name):
        r.error(
            ref["name"][1],
            f"{where}.name",
            "bad-name",
            f"workflow name '{name}' must start with a letter and hold only letters, digits, "
            "'_' and '-' (at most 128)",
        )
        return None
    if name is None:
        return None
    return SubWorkflow(name=name, version=version, location=r.location(ref["name"][1]))


MAX_EXPANDED = 100
"""The most child workflows one workflow may run through its sub-workflow files, each counted
every time it is run (a file run by ten steps counts ten times, with its own children): the
bound on what validating, pointing and checking it may cost, whatever the files hold."""


@dataclass(slots=True)
class Loads:
    """The sub-workflow files read for one outermost workflow, shared by all its nestings.

    A file read again along the same chain of names is taken from here: validation reads each
    once, however many steps run it.
    """

    done: dict[tuple[str, tuple[str, ...]], Workflow | InvalidWorkflowError] = field(
        default_factory=dict
    )
    sizes: dict[int, int] = field(default_factory=dict)

    def expanded(self, workflow: Workflow) -> int:
        """How many child workflows it runs through files, each counted every time."""
        known = self.sizes.get(id(workflow))
        if known is None:
            known = sum(
                1 + self.expanded(step.workflow.definition)
                for step in workflow.steps
                if step.workflow is not None and step.workflow.definition is not None
            )
            self.sizes[id(workflow)] = known
        return known


@dataclass(frozen=True, slots=True)
class Nesting:
    """Where a workflow being read sits among the workflows that run it as a sub-workflow.

    `stack` holds their files relative to the outermost one's folder, outermost first, this
    one last; `names` their workflow names. A file or a name met again is recursion.
    """

    folder: str = ""
    """This workflow's folder, relative to the outermost one's."""
    stack: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    loads: Loads = field(default_factory=Loads, compare=False)


def recursion_problems(
    r: Reader,
    steps: Sequence[tuple[Step, Node]],
    nesting: Nesting,
    own_name: str | None,
) -> None:
    """Report steps that run, by name, a workflow that runs this one (or this one itself)."""
    names = (*nesting.names, own_name) if own_name else nesting.names
    for index, (step, node) in enumerate(steps):
        ref = step.workflow
        if ref is None or ref.file or ref.name not in names:
            continue
        chain = " → ".join((*names[names.index(ref.name) :], ref.name))
        r.error(
            find_node(node, ["workflow", "name"]),
            f"steps[{index}].workflow.name",
            "recursion",
            f"step '{step.id}' runs workflow '{ref.name}' inside itself (recursion: {chain})",
        )


def file_recursion(
    r: Reader, node: Node, path: str, *, step_id: str, key: str, nesting: Nesting
) -> bool:
    """Report a file that runs itself (through its sub-workflows); True when it does."""
    if key not in nesting.stack:
        return False
    chain = " → ".join((*nesting.stack[nesting.stack.index(key) :], key))
    r.error(
        node,
        path,
        "recursion",
        f"step '{step_id}' runs workflow file '{key}' inside itself (recursion: {chain})",
    )
    return True
