"""The executions this process runs: each a runner in a background task, launched new or resumed.

A resumed execution runs on from where its log stands, with the definition it started with
(compiled once per content by `definitions`). The launcher keeps what the rest of the manager
asks about them: which run here, which crashed here, and which were resumed since the last
lease renewal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import structlog

from maestro_server.engine.definitions import Definitions
from maestro_server.engine.dependencies import Dependencies, EventSink
from maestro_server.engine.runner import Resumption, Runner
from maestro_server.model.workflow import Workflow
from maestro_server.store.base import ExecutionRecord, SavedExecution

log = structlog.get_logger("maestro.executions")


class Launcher:
    """Runs executions as background tasks that outlive the request that started them."""

    def __init__(self, deps: Dependencies) -> None:
        """Run executions with `deps` (their events go to `deps.sink`, the store)."""
        self._deps = deps
        self._definitions = Definitions()
        self.running: dict[str, tuple[Runner, asyncio.Task[Any]]] = {}
        """The executions in flight here, by id: each one's runner and task."""
        self.crashed: set[str] = set()
        """Executions that crashed here, or could not be resumed (a definition that no longer
        loads): this process's recovery passes them by; an operator's resume does not."""
        self.unheard: set[str] = set()
        """Executions resumed here since the last renewal: a signal or cancel stored while
        they were read from the store may have found no runner to hand it to."""

    def runs(self, execution_id: str) -> bool:
        """Whether the execution, as the store holds it, runs here.

        Not while a start's creation of it is pending: if the store holds it, that creation
        will be refused and its run stops (a client starting it again while it is resumed).
        """
        run = self.running.get(execution_id)
        return run is not None and _stored(run[0].created)

    def stored(self) -> dict[str, tuple[Runner, asyncio.Task[Any]]]:
        """The executions in flight here that the store holds.

        All but new ones whose creation (with their first events) is not durable yet.
        """
        return {i: run for i, run in self.running.items() if _stored(run[0].created)}

    @property
    def sink(self) -> EventSink:
        """Where runs write their events unless told otherwise: the store."""
        return self._deps.sink

    def launch(
        self,
        workflow: Workflow,
        execution_id: str,
        data: Any,
        *,
        resumption: Resumption | None = None,
        trace_parent: Mapping[str, str] | None = None,
        sink: EventSink | None = None,
        cancel_reason: str | None = None,
        creation: ExecutionRecord | None = None,
    ) -> asyncio.Task[Any]:
        """Run an execution in the background (cancelled at once if a client asked for it).

        A new one (`creation`) is created with its first events; if that fails (its id is
        taken), its run stops there: it has written nothing and called nothing.
        """
        runner = Runner(
            workflow,
            execution_id,
            data,
            self._deps if sink is None else replace(self._deps, sink=sink),
            resumption=resumption,
            trace_parent=trace_parent,
            creation=creation,
        )
        if cancel_reason is not None:
            runner.cancel(cancel_reason)
        task = asyncio.create_task(self._run(runner), name=f"execution {execution_id}")
        self.running[execution_id] = (runner, task)
        runner.created.add_done_callback(lambda done: _refusal(done) is not None and task.cancel())
        return task

    def resume_saved(
        self,
        saved: SavedExecution,
        *,
        retry_compensations: bool = False,
        sink: EventSink | None = None,
        undo: bool = False,
    ) -> asyncio.Task[Any]:
        """Run an execution on from where its log stands, with the definition it started with.

        The services the server pointed elsewhere when it started are pointed there again.
        """
        record = saved.record
        assert record.source is not None
        self.unheard.add(record.execution_id)
        return self.launch(
            self._definitions.workflow(record.source),
            record.execution_id,
            record.input,
            resumption=Resumption(
                saved.events, saved.requests, retry_compensations, saved.signals, undo=undo
            ),
            sink=sink,
            cancel_reason=record.cancel_reason,
        )

    async def _run(self, runner: Runner) -> None:
        try:
            await runner.run()
        except Exception as exc:
            if _refusal(runner.created) is exc:
                return  # the store refused its creation (it wrote nothing): its start hears why
            # A bug: the execution cannot finish; keep the server alive.
            log.exception(
                "execution crashed; it will not be resumed by this process",
                execution_id=runner.execution_id,
            )
            self.crashed.add(runner.execution_id)
        finally:
            if self.running.get(runner.execution_id, (None,))[0] is runner:
                del self.running[runner.execution_id]


def _refusal(created: asyncio.Future[Any]) -> BaseException | None:
    """Why a run's creation failed (then it must not run on); None if pending or created."""
    return created.exception() if created.done() and not created.cancelled() else None


def _stored(created: asyncio.Future[Any]) -> bool:
    """Whether a run's execution is in the store (its creation, if it had one, is durable)."""
    return created.done() and not created.cancelled() and created.exception() is None
