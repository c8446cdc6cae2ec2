"""What an execution's events tell the operator: metrics, and a log line at the end."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from maestro_server.model.execution import Event, EventType
from maestro_server.model.workflow import Workflow

if TYPE_CHECKING:
    from maestro_server.metrics import Metrics  # prometheus_client: only where metrics are served

log = structlog.get_logger("maestro.engine")


class Observer:
    """Counts an execution's durable events into the metrics, and logs its start and end."""

    def __init__(self, workflow: Workflow, metrics: Metrics | None) -> None:
        self._workflow = workflow
        self._metrics = metrics

    def __call__(self, event: Event) -> None:
        """See one event."""
        if self._metrics is not None:
            self._count(self._metrics, event)
        if event.type is EventType.WORKFLOW_STARTED:
            log.info("execution started")
        elif event.terminal:
            error = event.error.message if event.error else None
            log.info("execution finished", state=event.state.value, error=error)

    def _count(self, metrics: Metrics, event: Event) -> None:
        workflow = self._workflow.name
        if event.type is EventType.WORKFLOW_STARTED:
            metrics.executions_started.labels(workflow).inc()
        elif event.terminal:
            metrics.executions_finished.labels(workflow, event.state.value).inc()
        elif event.type in (EventType.COMPENSATION_SUCCEEDED, EventType.COMPENSATION_FAILED):
            compensation = self._workflow.step(event.step_id).compensate
            service = compensation.service if compensation else ""
            outcome = "succeeded" if event.type is EventType.COMPENSATION_SUCCEEDED else "failed"
            metrics.compensations.labels(service, outcome).inc()
