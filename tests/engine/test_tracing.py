"""OpenTelemetry: a span per execution and per attempt; `traceparent` reaches the service."""

import random
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from maestro_server.definition import load_workflow
from maestro_server.engine.dependencies import Dependencies
from maestro_server.engine.runner import Runner
from maestro_server.model.execution import ExecutionState
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.resilience.clock import SystemClock
from maestro_server.transports.registry import Transports
from tests.engine.fakes import ListSink
from tests.transports.http_server import ScriptedHttp, scripted_http

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: OpenTelemetry allows one provider
    return exporter


@pytest.fixture
def http() -> Iterator[ScriptedHttp]:
    with scripted_http() as server:
        yield server


async def test_spans_and_traceparent(exporter: InMemorySpanExporter, http: ScriptedHttp) -> None:
    """The execution span (under the caller's trace) holds one span per attempt, and each
    request carries that attempt's traceparent."""
    exporter.clear()
    http.answer("POST /a", 200, {"ok": True})
    http.answer("POST /b", 200, {"ok": True})
    workflow = load_workflow(f"""\
name: traced
services:
  api: {{type: http, endpoint: "{http.url}"}}
steps:
  - {{id: a, service: api, method: POST /a}}
  - {{id: b, service: api, method: POST /b}}
""")
    parent = {"traceparent": f"00-{PARENT_TRACE}-00f067aa0ba902b7-01"}
    async with Transports() as transports:
        clock = SystemClock()
        result = await Runner(
            workflow,
            "t-1",
            {},
            Dependencies(
                invoker=transports,
                sink=ListSink(),
                breakers=BreakerRegistry(clock),
                clock=clock,
                rng=random.Random(0),
            ),
            trace_parent=parent,
        ).run()
    assert result.state is ExecutionState.COMPLETED
    (execution,) = [s for s in exporter.get_finished_spans() if s.name == "execution traced"]
    assert format(execution.context.trace_id, "032x") == PARENT_TRACE
    attempts = [s for s in exporter.get_finished_spans() if s.name == "api POST"]
    assert len(attempts) == 2
    assert all(
        s.parent is not None and s.parent.span_id == execution.context.span_id for s in attempts
    )
    sent = [r.headers["traceparent"] for r in http.received]
    attempt_ids = {format(s.context.span_id, "016x") for s in attempts}
    assert {header.split("-")[2] for header in sent} == attempt_ids
    assert all(header.split("-")[1] == PARENT_TRACE for header in sent)
