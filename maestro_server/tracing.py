"""OpenTelemetry tracing, when the `tracing` extra is installed (and a no-op otherwise).

A span per execution and per attempt; the W3C `traceparent` of the attempt travels to the
downstream service in gRPC metadata or HTTP headers, and a `traceparent` sent with
ExecuteWorkflow or StartWorkflow becomes the execution's parent.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

_cached: tuple[Any, Any] = (None, None)
_PROVIDER_VARIABLE = "OTEL_PYTHON_TRACER_PROVIDER"
"""OpenTelemetry's own way to name a provider without code (opentelemetry.environment_variables)."""


def _tracer() -> Any:
    """The tracer, or None while no OpenTelemetry SDK is configured.

    Spans would be no-ops then, and cost 10 µs a step all the same. A provider is set by code
    that imported `opentelemetry.trace`, or named by OTEL_PYTHON_TRACER_PROVIDER: with neither,
    there is none, and OpenTelemetry is not imported (it costs `maestro execute` 8 ms).
    """
    global _cached  # noqa: PLW0603 - one cache for the process, like the provider itself
    if "opentelemetry.trace" not in sys.modules and _PROVIDER_VARIABLE not in os.environ:
        return None
    try:
        from opentelemetry import trace  # noqa: PLC0415 - see above
    except ImportError:  # the extra is not installed
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        return None
    if _cached[0] is not provider:
        _cached = (provider, provider.get_tracer("maestro"))
    return _cached[1]


def incoming(metadata: Any) -> dict[str, str]:
    """The trace headers of an incoming call (to start the execution's span under)."""
    return {
        key: str(value) for key, value in metadata or () if key in ("traceparent", "tracestate")
    }


@contextlib.contextmanager
def execution_span(name: str, execution_id: str, parent: Mapping[str, str]) -> Iterator[None]:
    """The span of one execution, current while it runs (its attempts are its children)."""
    tracer = _tracer()
    if tracer is None:
        yield
        return
    from opentelemetry import propagate  # noqa: PLC0415 - imported by _tracer already

    parent_context = propagate.extract(dict(parent)) if parent else None
    with tracer.start_as_current_span(
        f"execution {name}",
        context=parent_context,
        attributes={"maestro.workflow": name, "maestro.execution_id": execution_id},
    ):
        yield


@contextlib.contextmanager
def attempt_span(service: str, method: str, attempt: int) -> Iterator[dict[str, str]]:
    """The span of one attempt; yields the headers that carry it downstream."""
    tracer = _tracer()
    if tracer is None:
        yield {}
        return
    from opentelemetry import propagate, trace  # noqa: PLC0415 - imported by _tracer already

    with tracer.start_as_current_span(
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
