"""New executions: a client's admitted, each run and created in the store with what resumes it.

A client's start is refused while the server drains, past its limit of executions in flight,
or with an id that cannot travel in idempotency keys, logs and URLs. A child execution is not
refused for draining or the limit: it belongs to an execution admitted already. The stored
record keeps the definition and the versions of the registered children pinned at start, so
that a resume anywhere runs the same workflow. It is written with the execution's first
events, in one transaction (see Recorder): the start answers once that is durable.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from maestro_server.definition.inputs import check_input
from maestro_server.engine.child_workflows import pin_versions
from maestro_server.engine.launcher import Launcher
from maestro_server.errors import (
    InvalidRequestError,
    Reason,
    ResourceExhaustedError,
    UnavailableError,
)
from maestro_server.model.execution import Event
from maestro_server.model.workflow import Workflow
from maestro_server.store.base import (
    ExecutionExists,
    ExecutionRecord,
    ExecutionSource,
    Store,
    execution_again,
)

# Ids travel in idempotency keys, logs and URLs: printable ASCII, no spaces, bounded.
_EXECUTION_ID = re.compile(r"[\x21-\x7e]{1,200}")


@dataclass(frozen=True, slots=True)
class StartOutcome:
    """The outcome of a start: the execution, and whether this call created it.

    `events`: those it was created with, when it was (durable; a watch begun now follows on
    from the last of them).
    """

    record: ExecutionRecord
    created: bool
    events: tuple[Event, ...] = ()


class Starter:
    """Creates executions in the store and has the launcher run the new ones."""

    def __init__(
        self,
        store: Store,
        launcher: Launcher,
        now: Callable[[], datetime],
        max_concurrent: int,
    ) -> None:
        self._store = store
        self._launcher = launcher
        self._now = now
        self._max_concurrent = max_concurrent
        self.draining = False
        """Whether the server shuts down: clients' starts are refused (see ExecutionManager)."""

    async def start(
        self,
        workflow: Workflow,
        data: Any,
        execution_id: str,
        trace_parent: Mapping[str, str] | None,
        endpoints: Mapping[str, str] | None,
    ) -> StartOutcome:
        """Admit a client's execution and start it (see ExecutionManager.start)."""
        if self.draining:
            raise UnavailableError(
                "the server is shutting down; start the execution elsewhere",
                reason=Reason.SERVER_DRAINING,
            )
        if execution_id and not _EXECUTION_ID.fullmatch(execution_id):
            raise InvalidRequestError(
                "execution_id",
                "execution_id must be 1 to 200 printable ASCII characters without spaces, not "
                f"{execution_id[:60]!r}{'…' if len(execution_id) > 60 else ''}",
            )
        execution_id = execution_id or str(uuid.uuid4())
        running = self._launcher.running
        if execution_id not in running and len(running) >= self._max_concurrent:
            raise ResourceExhaustedError(
                f"{self._max_concurrent} executions are running, the most this server runs at "
                "once; try again later",
                metadata={"limit": str(self._max_concurrent)},
            )
        return await self.create(workflow, data, execution_id, trace_parent, endpoints)

    async def create(
        self,
        workflow: Workflow,
        data: Any,
        execution_id: str,
        trace_parent: Mapping[str, str] | None,
        endpoints: Mapping[str, str] | None,
        *,
        parent_execution_id: str = "",
    ) -> StartOutcome:
        """Create the execution unless its id exists (then return that one), and run it.

        The run begins at once and creates the execution with its first events. When the id is
        taken, by an execution here or in the store, the stored one is the answer (see
        store.base.execution_again: the same workflow and input, or AlreadyExistsError).
        """
        data = check_input(data, "input", workflow)
        versions = await pin_versions(self._store, workflow)
        workflow = workflow.with_versions(versions)
        record = ExecutionRecord(
            execution_id=execution_id,
            workflow_name=workflow.name,
            workflow_version=workflow.version,
            workflow_hash=workflow.hash,
            input=data,
            created_at=self._now(),
            step_ids=tuple(step.id for step in workflow.steps),
            source=ExecutionSource(
                workflow.source,
                workflow.path,
                dict(workflow.files),
                dict(endpoints or {}),
                versions,
            ),
            parent_execution_id=parent_execution_id,
        )
        here = self._launcher.running.get(execution_id)
        mine = here is None
        if here is None:
            self._launcher.launch(
                workflow, execution_id, data, trace_parent=trace_parent, creation=record
            )
            here = self._launcher.running[execution_id]
        try:
            events = await asyncio.shield(here[0].created)  # a cancelled start leaves it be
        except ExecutionExists as exists:
            return StartOutcome(*execution_again(exists.existing, record))
        if mine:
            return StartOutcome(record, True, events)
        # It runs here already: a start again, perhaps while the first was being created.
        return StartOutcome(*execution_again(await self._store.get_execution(execution_id), record))
