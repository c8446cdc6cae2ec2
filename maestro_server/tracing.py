"""OpenTelemetry tracing, when the `tracing` extra is installed (and a no-op otherwise).

A span per execution and per attempt; the W3C `traceparent` of the attempt travels to the
downstream service in gRPC metadata or HTTP headers, and a `traceparent` sent with
ExecuteWorkflow or StartWorkflow becomes the execution's parent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

try:
    from opentelemetry import propagate, trace
except ImportError:  # the extra is not installed
    trace = None  # type: ignore[assignment]

_TRACER = trace.get_tracer("maestro") if trace is not None else None


def incoming(metadata: Any) -> dict[str, str]:
    """The trace headers of an incoming call (to start the execution's span under)."""
    return {
        key: str(value) for key, value in metadata or () if key in ("traceparent", "tracestate")
    }


@contextlib.contextmanager
def execution_span(name: str, execution_id: str, parent: Mapping[str, str]) -> Iterator[None]:
    """The span of one execution, current while it runs (its attempts are its children)."""
    if _TRACER is None:
        yield
        return
    parent_context = propagate.extract(dict(parent)) if parent else None
    with _TRACER.start_as_current_span(
        f"execution {name}",
        context=parent_context,
        attributes={"maestro.workflow": name, "maestro.execution_id": execution_id},
    ):
        yield


@contextlib.contextmanager
def attempt_span(service: str, method: str, attempt: int) -> Iterator[dict[str, str]]:
    """The span of one attempt; yields the headers that carry it downstream."""
    if _TRACER is None:
        yield {}
        return
    with _TRACER.start_as_current_span(
        f"{service} {method}",
        kind=trace.SpanKind.CLIENT,
        attributes={
            "maestro.service": service,
            "maestro.method": method,
            "maestro.attempt": attempt,
        },
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        try:
            yield carrier
        except BaseException as exc:
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
            raise
