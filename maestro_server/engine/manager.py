"""The executions of a server: admission, running them in the background, cancelling, draining.

It also runs the child executions of sub-workflow steps: `children` (child_executions.py) is
the engine's `Children`, and the manager lends it what runs executions (`ChildRunner`).
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from maestro_server.definition.inputs import check_input
from maestro_server.engine.child_executions import ChildExecutions
from maestro_server.engine.child_workflows import pin_versions
from maestro_server.engine.definitions import Definitions
from maestro_server.engine.dependencies import (
    DEFAULT_MAX_FOR_EACH_ELEMENTS,
    Dependencies,
    EventSink,
)
from maestro_server.engine.runner import Resumption, Runner
from maestro_server.engine.signalling import deliver_new_signals, signal_to_send
from maestro_server.engine.sinks import FirstAppend
from maestro_server.errors import (
    AbortedError,
    FailedPreconditionError,
    InvalidRequestError,
    Reason,
    ResourceExhaustedError,
    UnavailableError,
)
from maestro_server.model.execution import ExecutionState
from maestro_server.model.progress import reopen
from maestro_server.model.signals import Signal
from maestro_server.model.workflow import DEFAULT_MAX_WORKFLOW_DEPTH, Workflow
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.resilience.clock import Clock, SystemClock
from maestro_server.store.base import ExecutionRecord, ExecutionSource, SavedExecution, Store
from maestro_server.transports.base import Invoker

if TYPE_CHECKING:
    from maestro_server.metrics import Metrics  # prometheus_client: only where metrics are served

log = structlog.get_logger("maestro.executions")
# Ids travel in idempotency keys, logs and URLs: printable ASCII, no spaces, bounded.
_EXECUTION_ID = re.compile(r"[\x21-\x7e]{1,200}")
RECOVERY_BATCH = 500
"""Executions read whole at once when resuming many: big enough that reading costs a few
statements per batch, small enough that a batch's rows are not all in memory at once."""


@dataclass(frozen=True, slots=True)
class StartOutcome:
    """The outcome of a start: the execution, and whether this call created it."""

    record: ExecutionRecord
    created: bool


class ExecutionManager:
    """Starts executions as background tasks that outlive the request that started them."""

    def __init__(
        self,
        store: Store,
        invoker: Invoker,
        *,
        max_concurrent: int = 1000,
        clock: Clock | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        secrets: Mapping[str, str] | None = None,
        metrics: Metrics | None = None,
        max_for_each_elements: int = DEFAULT_MAX_FOR_EACH_ELEMENTS,
        max_workflow_depth: int = DEFAULT_MAX_WORKFLOW_DEPTH,
        endpoints: Mapping[str, str] | None = None,
    ) -> None:
        """Run executions over `store`, calling services through `invoker`.

        `endpoints`: this server's addresses for services (`--endpoint`), applied to the
        workflows of child executions as the API applies them to the ones it starts.
        """
        self._store = store
        self._max_concurrent = max_concurrent
        clock = clock or SystemClock()
        self.breakers = BreakerRegistry(clock)
        self._now = now
        self.children = ChildExecutions(
            store, self, max_depth=max_workflow_depth, endpoints=endpoints or {}
        )
        """Runs the child executions of sub-workflow steps (the engine's `Children`)."""
        self._deps = Dependencies(
            invoker,
            store,
            self.breakers,
            clock,
            random.Random(),
            now,
            secrets or {},
            metrics,
            max_for_each_elements,
            self.children,
        )
        self._running: dict[str, tuple[Runner, asyncio.Task[Any]]] = {}
        self._draining = False
        self._crashed: set[str] = set()
        self._resuming: set[str] = set()
        self._definitions = Definitions()
        self._unheard: set[str] = set()
        """Executions resumed here since the last renewal: a signal or cancel stored while
        they were read from the store may have found no runner to hand it to."""

    @property
    def running(self) -> int:
        """How many executions are in flight."""
        return len(self._running)

    @property
    def waiting(self) -> int:
        """How many of them have a step waiting for a signal."""
        return sum(runner.waiting_for_signal for runner, _ in self._running.values())

    async def start(
        self,
        workflow: Workflow,
        data: Any,
        execution_id: str = "",
        trace_parent: Mapping[str, str] | None = None,
        endpoints: Mapping[str, str] | None = None,
    ) -> StartOutcome:
        """Admit and start an execution.

        A known id with the same workflow and input is returned as it is (idempotent start).
        `endpoints` are the services the server pointed elsewhere in `workflow` (by name), kept
        with the execution so that a resume calls the same addresses.
        """
        if self._draining:
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
        if execution_id not in self._running and len(self._running) >= self._max_concurrent:
            raise ResourceExhaustedError(
                f"{self._max_concurrent} executions are running, the most this server runs at "
                "once; try again later",
                metadata={"limit": str(self._max_concurrent)},
            )
        return await self._create(workflow, data, execution_id, trace_parent, endpoints)

    async def _create(
        self,
        workflow: Workflow,
        data: Any,
        execution_id: str,
        trace_parent: Mapping[str, str] | None,
        endpoints: Mapping[str, str] | None,
        *,
        parent_execution_id: str = "",
    ) -> StartOutcome:
        """Create the execution unless its id exists (then return that one), and run it."""
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
        stored, created = await self._store.create_execution(record)
        if created:
            self._launch(workflow, execution_id, data, trace_parent=trace_parent)
        return StartOutcome(stored, created)

    async def create_child(
        self,
        workflow: Workflow,
        data: Any,
        child_id: str,
        endpoints: Mapping[str, str],
        parent_id: str,
    ) -> None:
        """See ChildRunner.create_child."""
        await self._create(workflow, data, child_id, None, endpoints, parent_execution_id=parent_id)

    def _launch(
        self,
        workflow: Workflow,
        execution_id: str,
        data: Any,
        *,
        resumption: Resumption | None = None,
        trace_parent: Mapping[str, str] | None = None,
        sink: EventSink | None = None,
        cancel_reason: str | None = None,
    ) -> asyncio.Task[Any]:
        """Run an execution in the background (cancelled at once if a client asked for it)."""
        runner = Runner(
            workflow,
            execution_id,
            data,
            self._deps if sink is None else replace(self._deps, sink=sink),
            resumption=resumption,
            trace_parent=trace_parent,
        )
        if cancel_reason is not None:
            runner.cancel(cancel_reason)
        task = asyncio.create_task(self._run(runner), name=f"execution {execution_id}")
        self._running[execution_id] = (runner, task)
        return task

    def _resume_saved(
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
        self._unheard.add(record.execution_id)
        return self._launch(
            self._definitions.workflow(record.source),
            record.execution_id,
            record.input,
            resumption=Resumption(
                saved.events, saved.requests, retry_compensations, saved.signals, undo=undo
            ),
            sink=sink,
            cancel_reason=record.cancel_reason,
        )

    def _busy(self, execution_id: str) -> bool:
        """Whether the execution runs here, crashed here, or an operator's resume has it."""
        return (
            execution_id in self._running
            or execution_id in self._crashed
            or execution_id in self._resuming
        )

    async def recover(self) -> int:
        """Resume from their logs the unfinished executions this process may take; how many.

        At the start, and when another replica died and its leases lapsed. A claim is an id;
        the claimed executions are read whole a batch at a time (`saved_executions`: a few
        statements per batch, not four per execution), and executions of one definition share
        its compiled workflow.
        """
        claimed = [c.execution_id for c in await self._store.claim_executions()]
        resumed = 0
        for first in range(0, len(claimed), RECOVERY_BATCH):
            batch = [i for i in claimed[first : first + RECOVERY_BATCH] if not self._busy(i)]
            for saved in await self._store.saved_executions(batch):
                record = saved.record
                if self._busy(record.execution_id):  # started or resumed during the read
                    continue
                if record.source is None or record.state.terminal:
                    continue
                try:
                    self._resume_saved(saved)
                except Exception:  # e.g. a definition this version no longer loads: skip it
                    log.exception(
                        "execution cannot be resumed; it stays unfinished for an operator",
                        execution_id=record.execution_id,
                    )
                    self._crashed.add(record.execution_id)
                    continue
                resumed += 1
        if resumed:
            log.info("executions resumed", count=resumed)
        return resumed

    async def _run(self, runner: Runner) -> None:
        try:
            await runner.run()
        except Exception:  # a bug: the execution cannot finish; keep the server alive
            log.exception(
                "execution crashed; it will not be resumed by this process",
                execution_id=runner.execution_id,
            )
            self._crashed.add(runner.execution_id)
        finally:
            if self._running.get(runner.execution_id, (None,))[0] is runner:
                del self._running[runner.execution_id]

    async def cancel(self, execution_id: str, reason: str) -> ExecutionRecord:
        """Stop an execution's forward progress; it compensates what it did.

        The request is recorded with the execution first, so it holds wherever the execution
        runs: here the runner is told at once; another replica acts on it at its next lease
        renewal, and a process that takes the execution over (after a crash) when it resumes
        it. Idempotent: an execution already cancelling, compensating or ended is returned as
        it stands.
        """
        record = await self._store.request_cancel(execution_id, reason or "cancelled by a client")
        running = self._running.get(execution_id)
        if running is not None and record.cancel_reason is not None:
            running[0].cancel(record.cancel_reason)
        return record

    async def signal(
        self, execution_id: str, name: str, payload: dict[str, Any], signal_id: str = ""
    ) -> tuple[Signal, bool]:
        """Send a signal to an execution; returns (the stored signal, whether it is new).

        Stored first, so it holds wherever the execution runs: here the runner gets it at once;
        another replica finds it at its next lease renewal. The same `signal_id` again changes
        nothing. NotFoundError, FailedPreconditionError (finished), InvalidRequestError.
        """
        sent = signal_to_send(execution_id, name, payload, signal_id, self._now())
        stored, created = await self._store.add_signal(sent)
        running = self._running.get(execution_id)
        if created and running is not None:
            running[0].deliver([stored])
        return stored, created

    def _cancel_requested(self, requests: Mapping[str, str]) -> None:
        """Tell the runners here that clients (through any replica) asked to cancel them."""
        for execution_id, reason in requests.items():
            running = self._running.get(execution_id)
            if running is not None:
                running[0].cancel(reason)

    async def resume(self, execution_id: str) -> ExecutionRecord:
        """Retry the failed compensations of a COMPENSATION_FAILED execution.

        AbortedError when another resume of it is under way, here or on another replica.
        """
        if execution_id in self._resuming:  # checked and reserved with no await in between
            raise _being_resumed(execution_id)
        self._resuming.add(execution_id)
        try:
            return await self._resume(execution_id)
        finally:
            self._resuming.discard(execution_id)

    async def _resume(self, execution_id: str) -> ExecutionRecord:
        record = await self._store.get_execution(execution_id)
        if record.state is not ExecutionState.COMPENSATION_FAILED or record.source is None:
            raise FailedPreconditionError(
                f"execution {execution_id!r} is {record.state.value.lower()}; only a "
                "compensation_failed execution can be resumed",
                reason=Reason.EXECUTION_NOT_RESUMABLE,
                metadata={"executionId": execution_id, "state": record.state.value},
            )
        finishing = self._running.get(execution_id)
        if finishing is not None:  # its terminal event is written; its task is just ending
            await asyncio.gather(finishing[1], return_exceptions=True)
        if execution_id in self._running or not await self._store.claim_execution(execution_id):
            raise _being_resumed(execution_id)
        # Another replica may have resumed it between the read and the claim.
        found = await self._store.saved_executions([execution_id])
        if not found or found[0].record.state is not ExecutionState.COMPENSATION_FAILED:
            raise _being_resumed(execution_id)
        record = found[0].record
        reopened = FirstAppend(self._deps.sink)
        task = self._resume_saved(found[0], retry_compensations=True, sink=reopened)
        await asyncio.wait([reopened.appended, task], return_when=asyncio.FIRST_COMPLETED)
        return replace(record, progress=reopen(record.progress))

    async def keep_leases(self, interval: float) -> None:
        """Renew the leases of running executions, forever.

        Executions another process took over are given up. Cancels and signals that clients
        sent through other replicas are passed to the runners here; where no other process
        writes to the store, only those of executions resumed since the last renewal are asked
        about (an idle server with 10,000 executions waiting reads nothing). Only when another
        process's lease has lapsed (it died) are its executions claimed and resumed: a renewal
        reads nothing else, and where one process owns the store there is nothing to take over.
        """
        while True:
            await asyncio.sleep(interval)
            unheard, self._unheard = self._unheard, set()
            try:
                renewing = dict(self._running)
                owned = await self._store.renew_leases(list(renewing))
                # Only the runners asked about: one started during the renewal is not lost,
                # nor one that replaced a runner that ended meanwhile (a completed child
                # reopened by its parent's saga: not owned when the renewal ran).
                for execution_id, (runner, _) in renewing.items():
                    running = self._running.get(execution_id)
                    if running is not None and running[0] is runner and execution_id not in owned:
                        task = running[1]
                        log.warning(
                            "lease lost; another replica runs the execution now",
                            execution_id=execution_id,
                        )
                        task.cancel()  # the runner stops without writing
                # Where this process is the store's only writer, every signal and cancel came
                # through it and was handed over, but to a runner being resumed at the time.
                asked = owned if self._store.shared else owned & unheard
                if asked:
                    self._cancel_requested(await self._store.cancel_requests(sorted(asked)))
                runners = {i: r for i, (r, _) in self._running.items() if i in asked}
                await deliver_new_signals(self._store, runners)
                if not self._draining and await self._store.lapsed():
                    await self.recover()
            except Exception:  # the store may be down for a while: try again next round
                self._unheard |= unheard
                log.exception("lease upkeep failed")

    async def keep_retention(self, retention: float, interval: float = 3600.0) -> None:
        """Forever: remove executions that ended more than `retention` seconds ago."""
        while True:
            try:
                cutoff = self._now() - timedelta(seconds=retention)
                removed = await self._store.delete_finished_before(cutoff)
                if removed:
                    log.info("old executions removed", count=removed, before=cutoff.isoformat())
            except Exception:  # the store may be down for a while: try again next round
                log.exception("retention failed")
            await asyncio.sleep(interval)

    async def drain(self, grace: float) -> None:
        """Refuse new executions and give running ones `grace` seconds to finish."""
        self._draining = True
        tasks = [task for _, task in self._running.values()]
        if not tasks:
            return
        log.info("draining", running=len(tasks), grace=grace)
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            log.warning(
                "executions still running at the end of the grace period were stopped",
                count=len(pending),
            )
            await asyncio.gather(*pending, return_exceptions=True)

    async def reopen_completed(self, record: ExecutionRecord) -> None:
        """Reopen a COMPLETED child and run its saga here, until its first event is durable.

        Returns without reopening when another replica still holds it (after a pause, so the
        caller asks again soon), or when it is no longer COMPLETED.
        """
        execution_id = record.execution_id
        finishing = self._running.get(execution_id)
        if finishing is not None:  # its terminal event is written; its task is just ending
            await asyncio.gather(finishing[1], return_exceptions=True)
        if execution_id in self._running:
            return
        if not await self._store.claim_execution(execution_id):
            await asyncio.sleep(_CLAIM_AGAIN)  # another replica holds it still: ask again soon
            return
        found = await self._store.saved_executions([execution_id])
        if not found or found[0].record.state is not ExecutionState.COMPLETED:
            return
        reopened = FirstAppend(self._deps.sink)
        task = self._resume_saved(found[0], sink=reopened, undo=True)
        await asyncio.wait([reopened.appended, task], return_when=asyncio.FIRST_COMPLETED)


_CLAIM_AGAIN = 1.0
"""Seconds before asking again for a completed child another replica still holds a lease on."""


def _being_resumed(execution_id: str) -> AbortedError:
    return AbortedError(
        f"execution {execution_id!r} is being resumed already",
        metadata={"executionId": execution_id},
    )
