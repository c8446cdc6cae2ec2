"""Concurrency, circuit breaking, `when` and `continue_on_error` against real servers."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from demo_services import billing
from demo_services.grpc_server import start

from maestro_server.definition import load_workflow
from maestro_server.engine.dependencies import Dependencies
from maestro_server.engine.runner import Runner
from maestro_server.model.execution import EventType, ExecutionState
from maestro_server.resilience.breaker import BreakerRegistry, BreakerState
from maestro_server.resilience.clock import SystemClock
from maestro_server.transports.registry import Transports
from tests.engine.fakes import ListSink, state_of
from tests.transports.servers import echo_server


@pytest.fixture
async def billing_service() -> AsyncIterator[tuple[billing.Billing, str]]:
    servicer = billing.Billing()
    server, port = await start([billing.SERVICE], billing.add(servicer), 0)
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(None)


async def test_parallel_branches_overlap_at_the_server() -> None:
    """Two branches after a common root are in flight at the same time, as the server sees it."""
    async with echo_server() as (endpoint, echo), Transports() as transports:
        workflow = load_workflow(f"""\
name: fan_out
services:
  echo: {{type: grpc, endpoint: "{endpoint}"}}
steps:
  - {{id: root, service: echo, method: testing.v1.EchoService/Echo, input: {{text: go}}}}
  - {{id: left, service: echo, method: Barrier, input: {{parties: 2}}, depends_on: [root], output: left}}
  - {{id: right, service: echo, method: Barrier, input: {{parties: 2}}, depends_on: [root], output: right}}
  - {{id: join, service: echo, method: testing.v1.EchoService/Echo, depends_on: [left, right],
     input: {{text: "{{{{ .left.max_in_flight }}}}-{{{{ .right.max_in_flight }}}}"}}}}
output: {{seen: "{{{{ .steps.join.output.text }}}}"}}
""")
        clock = SystemClock()
        runner = Runner(
            workflow,
            "fan-1",
            {},
            Dependencies(
                invoker=transports, sink=ListSink(), breakers=BreakerRegistry(clock), clock=clock
            ),
        )
        result = await runner.run()
    assert result.state is ExecutionState.COMPLETED
    assert result.output == {"seen": "2-2"}, "both branches were in flight together"
    assert echo.max_in_flight == 2


BREAKER_WORKFLOW = """\
name: breaker
services:
  billing:
    type: grpc
    endpoint: "{endpoint}"
    retry: {{max_attempts: 1}}
    timeout: 100ms  # less than the open time: an attempt gives up waiting for the breaker
    circuit_breaker: {{window_size: 2, minimum_calls: 2, open_duration: 300ms, half_open_calls: 1}}
steps:
  - {{id: subscribe, service: billing, method: CreateSubscription, input: {{user_id: u, plan: pro}}}}
"""


async def test_breaker_opens_fails_fast_half_opens_and_closes(
    billing_service: tuple[billing.Billing, str],
) -> None:
    """Two outages open it; then calls stop reaching the service; after its open time one trial
    goes through and, succeeding, closes it."""
    servicer, endpoint = billing_service
    workflow = load_workflow(BREAKER_WORKFLOW.format(endpoint=endpoint))
    clock = SystemClock()
    breakers = BreakerRegistry(clock)
    breaker = breakers.get("billing", endpoint, workflow.services["billing"].circuit_breaker)

    async def run(execution_id: str) -> ExecutionState:
        runner = Runner(
            workflow,
            execution_id,
            {},
            Dependencies(invoker=transports, sink=ListSink(), breakers=breakers, clock=clock),
        )
        return (await runner.run()).state

    servicer.faults.fail("CreateSubscription", "UNAVAILABLE")
    async with Transports() as transports:
        assert await run("b-1") is ExecutionState.FAILED
        assert state_of(breaker) is BreakerState.CLOSED
        assert await run("b-2") is ExecutionState.FAILED
        assert state_of(breaker) is BreakerState.OPEN
        delivered = len(servicer.ledger.calls)
        assert await run("b-3") is ExecutionState.FAILED
        assert len(servicer.ledger.calls) == delivered, "an open breaker lets nothing through"

        servicer.faults.clear()
        deadline = time.monotonic() + 5
        while state_of(breaker) is BreakerState.OPEN:
            assert time.monotonic() < deadline, "the breaker never half-opened"
            await asyncio.sleep(0.02)
        assert await run("b-4") is ExecutionState.COMPLETED
        assert state_of(breaker) is BreakerState.CLOSED
    assert [c["key"] for c in servicer.ledger.calls] == [
        "b-1:subscribe",
        "b-2:subscribe",
        "b-4:subscribe",
    ]


async def test_when_and_continue_on_error(billing_service: tuple[billing.Billing, str]) -> None:
    """A false `when` never calls the service; a tolerated failure lets the next step run."""
    servicer, endpoint = billing_service
    workflow = load_workflow(f"""\
name: flags
services:
  billing: {{type: grpc, endpoint: "{endpoint}"}}
steps:
  - id: skipped
    service: billing
    method: CreateSubscription
    when: "{{{{ .input.extra }}}}"
    input: {{user_id: u, plan: pro}}
  - id: tolerated
    service: billing
    method: CreateSubscription
    input: {{user_id: u, plan: no-such-plan}}
    continue_on_error: true
  - id: last
    service: billing
    method: CreateSubscription
    input: {{user_id: u, plan: team}}
    output: sub
output: {{plan: "{{{{ .sub.plan_name }}}}"}}
""")
    sink = ListSink()
    async with Transports() as transports:
        clock = SystemClock()
        runner = Runner(
            workflow,
            "flags-1",
            {"extra": False},
            Dependencies(
                invoker=transports, sink=sink, breakers=BreakerRegistry(clock), clock=clock
            ),
        )
        result = await runner.run()
    assert result.state is ExecutionState.COMPLETED
    assert result.output == {"plan": "Team"}
    assert [c["key"] for c in servicer.ledger.calls] == ["flags-1:tolerated", "flags-1:last"]
    failed = next(e for e in sink.events if e.type is EventType.STEP_FAILED)
    assert failed.step_id == "tolerated"
    assert failed.error is not None and failed.error.code == "INVALID_ARGUMENT"
