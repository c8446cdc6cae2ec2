"""The executions of a server as its API sees them: start, cancel, signal, resume, drain.

The manager is the façade over the parts that run executions: `starter` (admission, and
creation in the store), `launcher` (runners in background tasks), `recovery` (runs taken on
from their logs) and `upkeep` (leases, retention). It also runs the child executions of
sub-workflow steps: `children` (child_executions.py) is the engine's `Children`, and the
manager lends it what runs executions (`ChildRunner`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from maestro_server.engine.child_executions import ChildExecutions
from maestro_server.engine.dependencies import DEFAULT_MAX_FOR_EACH_ELEMENTS, Dependencies
from maestro_server.engine.launcher import Launcher
from maestro_server.engine.recovery import Recovery
from maestro_server.engine.signalling import signal_to_send
from maestro_server.engine.starter import Starter, StartOutcome
from maestro_server.engine.upkeep import keep_leases, keep_retention
from maestro_server.model.signals import Signal
from maestro_server.model.workflow import DEFAULT_MAX_WORKFLOW_DEPTH, Workflow
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.resilience.clock import Clock, SystemClock
from maestro_server.store.base import ExecutionRecord, Store
from maestro_server.transports.base import Invoker

if TYPE_CHECKING:
    from maestro_server.metrics import Metrics  # prometheus_client: only where metrics are served

log = structlog.get_logger("maestro.executions")


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
        self._metrics = metrics
        clock = clock or SystemClock()
        self.breakers = BreakerRegistry(clock)
        self._now = now
        self.children = ChildExecutions(
            store, self, max_depth=max_workflow_depth, endpoints=endpoints or {}
        )
        """Runs the child executions of sub-workflow steps (the engine's `Children`)."""
        self._launcher = Launcher(
            Dependencies(
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
        )
        self._running = self._launcher.running
        """The executions in flight here (the launcher's, read for admission and to tell them)."""
        self._starter = Starter(store, self._launcher, now, max_concurrent)
        self._recovery = Recovery(store, self._launcher)

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
        return await self._starter.start(workflow, data, execution_id, trace_parent, endpoints)

    async def create_child(
        self,
        workflow: Workflow,
        data: Any,
        child_id: str,
        endpoints: Mapping[str, str],
        parent_id: str,
    ) -> None:
        """See ChildRunner.create_child."""
        await self._starter.create(
            workflow, data, child_id, None, endpoints, parent_execution_id=parent_id
        )

    async def recover(self) -> int:
        """Resume from their logs the unfinished executions this process may take; how many.

        At the start, and when another replica died (see Recovery.recover).
        """
        return await self._recovery.recover()

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

    async def resume(self, execution_id: str) -> ExecutionRecord:
        """Retry the failed compensations of a COMPENSATION_FAILED execution.

        AbortedError when another resume of it is under way, here or on another replica.
        """
        return await self._recovery.resume(execution_id)

    async def keep_leases(self, interval: float) -> None:
        """Renew the leases of running executions, forever (see upkeep.keep_leases).

        Also where cancels and signals sent through other replicas reach the runners here,
        and where the executions of a replica that died are taken over.
        """
        await keep_leases(
            self._store,
            self._launcher,
            interval,
            draining=lambda: self._starter.draining,
            recover=self.recover,
            counted=self._metrics.lease_rounds.inc if self._metrics else lambda: None,
        )

    async def keep_retention(self, retention: float, interval: float = 3600.0) -> None:
        """Forever: remove executions that ended more than `retention` seconds ago."""
        await keep_retention(self._store, self._now, retention, interval)

    async def drain(self, grace: float) -> None:
        """Refuse new executions and give running ones `grace` seconds to finish."""
        self._starter.draining = True
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
        """See ChildRunner.reopen_completed (and Recovery.reopen_completed)."""
        await self._recovery.reopen_completed(record)
