"""The child executions of a run in this process (`maestro execute` of a file with sub-workflows).

They run in a store in memory, as the run itself does. The `--signal` flags are given to each
child too, as it starts: on the command line there is no child id to address a signal to, and
the `wait` step a signal is meant for may be a child's (examples/order: the payment's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from maestro_server.engine.manager import ExecutionManager
from maestro_server.errors import FailedPreconditionError
from maestro_server.model.signals import Signal
from maestro_server.model.workflow import Workflow
from maestro_server.store.base import Store
from maestro_server.transports.base import Invoker


class EmbeddedChildren(ExecutionManager):
    """An ExecutionManager whose children take the run's `--signal` flags when they start."""

    def __init__(
        self, store: Store, invoker: Invoker, signals: Sequence[Signal], **options: Any
    ) -> None:
        super().__init__(store, invoker, **options)
        self._signals = tuple(signals)

    async def create_child(
        self,
        workflow: Workflow,
        data: Any,
        child_id: str,
        endpoints: Mapping[str, str],
        parent_id: str,
    ) -> None:
        """See ChildRunner.create_child; then the run's signals, in order, under their ids."""
        await super().create_child(workflow, data, child_id, endpoints, parent_id)
        for signal in self._signals:
            try:
                await self.signal(child_id, signal.name, dict(signal.payload), signal.signal_id)
            except FailedPreconditionError:  # the child has ended already: nothing to take
                return
