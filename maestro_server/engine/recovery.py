"""Executions run on from their logs once this process holds them: taken over, retried, reopened.

Three ways an ended or abandoned run goes on: the unfinished executions this process may take
(at its start, or when another replica died) are resumed a batch at a time; an operator's
resume retries the failed compensations of a COMPENSATION_FAILED execution; and the parent of a
COMPLETED child reopens it to run its saga. Each is read whole through `saved_executions` and
handed to the launcher.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import structlog

from maestro_server.engine.launcher import Launcher
from maestro_server.engine.sinks import FirstAppend
from maestro_server.errors import AbortedError, FailedPreconditionError, Reason
from maestro_server.model.execution import ExecutionState
from maestro_server.model.progress import reopen
from maestro_server.store.base import ExecutionRecord, Store

log = structlog.get_logger("maestro.executions")
RECOVERY_BATCH = 500
"""Executions read whole at once when resuming many: big enough that reading costs a few
statements per batch, small enough that a batch's rows are not all in memory at once."""
_CLAIM_AGAIN = 1.0
"""Seconds before asking again for a completed child another replica still holds a lease on."""


class Recovery:
    """Resumes executions from their logs, each by one process at a time."""

    def __init__(self, store: Store, launcher: Launcher) -> None:
        self._store = store
        self._launcher = launcher
        self._resuming: set[str] = set()
        """Executions an operator's resume has in hand (reserved here before it awaits)."""

    def _busy(self, execution_id: str) -> bool:
        """Whether the execution runs here, crashed here, or an operator's resume has it."""
        return (
            self._launcher.runs(execution_id)
            or execution_id in self._launcher.crashed
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
                    self._launcher.resume_saved(saved)
                except Exception:  # e.g. a definition this version no longer loads: skip it
                    log.exception(
                        "execution cannot be resumed; it stays unfinished for an operator",
                        execution_id=record.execution_id,
                    )
                    self._launcher.crashed.add(record.execution_id)
                    continue
                resumed += 1
        if resumed:
            log.info("executions resumed", count=resumed)
        return resumed

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
        running = self._launcher.running
        finishing = running.get(execution_id)
        if finishing is not None:  # its terminal event is written; its task is just ending
            await asyncio.gather(finishing[1], return_exceptions=True)
        if execution_id in running or not await self._store.claim_execution(execution_id):
            raise _being_resumed(execution_id)
        # Another replica may have resumed it between the read and the claim.
        found = await self._store.saved_executions([execution_id])
        if not found or found[0].record.state is not ExecutionState.COMPENSATION_FAILED:
            raise _being_resumed(execution_id)
        record = found[0].record
        reopened = FirstAppend(self._launcher.sink)
        task = self._launcher.resume_saved(found[0], retry_compensations=True, sink=reopened)
        await asyncio.wait([reopened.appended, task], return_when=asyncio.FIRST_COMPLETED)
        return replace(record, progress=reopen(record.progress))

    async def reopen_completed(self, record: ExecutionRecord) -> None:
        """Reopen a COMPLETED child and run its saga here, until its first event is durable.

        Returns without reopening when another replica still holds it (after a pause, so the
        caller asks again soon), or when it is no longer COMPLETED. FailedPreconditionError when
        it cannot run here: it crashed here (when reopened before, too), or its definition no
        longer loads; asking again would only fail again.
        """
        execution_id = record.execution_id
        if execution_id in self._launcher.crashed:
            raise _cannot_reopen(execution_id, "it crashed in this process")
        running = self._launcher.running
        finishing = running.get(execution_id)
        if finishing is not None:  # its terminal event is written; its task is just ending
            await asyncio.gather(finishing[1], return_exceptions=True)
        if execution_id in running:
            return
        if not await self._store.claim_execution(execution_id):
            await asyncio.sleep(_CLAIM_AGAIN)  # another replica holds it still: ask again soon
            return
        found = await self._store.saved_executions([execution_id])
        if not found or found[0].record.state is not ExecutionState.COMPLETED:
            return
        reopened = FirstAppend(self._launcher.sink)
        try:
            task = self._launcher.resume_saved(found[0], sink=reopened, undo=True)
        except Exception as exc:  # a definition this version no longer loads
            log.exception("completed child cannot be reopened", execution_id=execution_id)
            raise _cannot_reopen(execution_id, f"{type(exc).__name__}: {exc}") from None
        await asyncio.wait([reopened.appended, task], return_when=asyncio.FIRST_COMPLETED)
        if execution_id in self._launcher.crashed:
            raise _cannot_reopen(execution_id, "it crashed in this process")


def _cannot_reopen(execution_id: str, why: str) -> FailedPreconditionError:
    return FailedPreconditionError(
        f"completed execution {execution_id!r} cannot be reopened to compensate: {why}",
        metadata={"executionId": execution_id},
    )


def _being_resumed(execution_id: str) -> AbortedError:
    return AbortedError(
        f"execution {execution_id!r} is being resumed already",
        metadata={"executionId": execution_id},
    )
