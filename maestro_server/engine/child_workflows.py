"""Which workflow a sub-workflow step runs, and how deep children may nest.

- A registered sub-workflow that names no version runs the version that was the latest when
  its parent started: `pin_versions` resolves them then, and the parent keeps them with its
  source (`ExecutionSource.versions`), so a resume, or a version registered later, changes
  nothing. Unknown names refuse the start (NOT_FOUND).
- A file sub-workflow was read and validated with its parent (`SubWorkflow.definition`); its
  YAML and files travel with the parent's source, so a resume rebuilds it without the disk.
- Depth: a top-level execution is at depth 1, its children at 2, … A child that would nest
  deeper than the server's limit (`maestro serve --max-workflow-depth`, default 8) is refused,
  and its step fails. Recursion itself is caught when a workflow is validated (files) or
  registered (names); the depth limit is the backstop for what validation cannot see.
"""

from __future__ import annotations

from collections.abc import Mapping

from maestro_server.definition import load_workflow
from maestro_server.definition.endpoint_map import point_services
from maestro_server.errors import NotFoundError
from maestro_server.model.workflow import SubWorkflow, Workflow
from maestro_server.store.base import ExecutionLog, WorkflowStore


async def pin_versions(store: WorkflowStore, workflow: Workflow) -> dict[str, str]:
    """The latest registered version of each sub-workflow the workflow names without one.

    NotFoundError (naming the step) for a name that is not registered.
    """
    versions: dict[str, str] = {}
    for step in workflow.steps:
        ref = step.workflow
        if ref is None or ref.file or ref.version or ref.name in versions:
            continue
        try:
            versions[ref.name] = (await store.get_workflow(ref.name)).version
        except NotFoundError as exc:
            raise NotFoundError(
                f"step '{step.id}' runs workflow '{ref.name}', which is not registered",
                reason=exc.error_reason,
                metadata={**exc.metadata, "stepId": step.id},
            ) from None
    return versions


class ChildWorkflows:
    """Resolves the workflow of a child execution, caching registered ones (immutable)."""

    def __init__(self, store: WorkflowStore, endpoints: Mapping[str, str]) -> None:
        self._store = store
        self._endpoints = dict(endpoints)
        self._registered: dict[tuple[str, str], Workflow] = {}

    async def resolve(self, ref: SubWorkflow) -> tuple[Workflow, dict[str, str]]:
        """The child's workflow (pointed at this server's endpoints), and its services pointed.

        NotFoundError for a registered one that is not (or no longer) registered.
        """
        if ref.definition is not None:
            workflow = ref.definition
        else:
            key = (ref.name, ref.version)
            cached = self._registered.get(key)
            if cached is None:
                stored = await self._store.get_workflow(ref.name, ref.version)
                cached = load_workflow(stored.yaml, path=stored.path, files=dict(stored.files))
                self._registered[key] = cached
            workflow = cached
        return point_services(workflow, self._endpoints)


async def depth_of(log: ExecutionLog, execution_id: str, limit: int) -> int:
    """How deep an execution nests (1 for a top-level one), counting at most `limit` + 1.

    An execution the store does not keep (`maestro execute` runs the top one in memory) is a
    top-level one.
    """
    depth = 1
    while depth <= limit:
        try:
            record = await log.get_execution(execution_id)
        except NotFoundError:
            break
        if not record.parent_execution_id:
            break
        depth += 1
        execution_id = record.parent_execution_id
    return depth
