"""for_each steps: one attempt series per element, their saga, and a restart in the middle.

Driven through the scripted invoker (see fakes.py for why), which answers each call by its
idempotency key, `reserve[2]` or `reserve[2]:compensate`.
"""

import asyncio
import contextlib
import random
from typing import Any

import pytest

from maestro_server.definition import load_workflow
from maestro_server.engine.dependencies import Dependencies
from maestro_server.engine.runner import Resumption, Runner
from maestro_server.model.execution import Cause, EventType, ExecutionState, StepState
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.transports.base import Call
from tests.engine.fakes import FakeClock, ListSink, ScriptedInvoker, fail
from tests.engine.test_recovery import CrashingSink

ORDER = """
name: order
services:
  inventory: {type: http, endpoint: "http://inventory:8080", retry: {max_attempts: 1}}
  billing: {type: http, endpoint: "http://billing:8080"}
steps:
  - id: open
    service: billing
    method: POST /orders
    output: order
    compensate: {method: "DELETE /orders/{{ .order.id }}"}
  - id: reserve
    for_each: "{{ .input.items }}"
    concurrency: CONCURRENCY
    service: inventory
    method: POST /reservations
    input: {sku: "{{ .item.sku }}", position: "{{ .index }}", order: "{{ .order.id }}"}
    output: reservations
    compensate:
      method: DELETE /reservations/{{ .reservations.id }}
      input: {sku: "{{ .item.sku }}"}
  - id: charge
    service: billing
    method: POST /charges
    input: {count: "{{ .reservations | length }}"}
output: {reservations: "{{ .reservations }}"}
"""
ITEMS = [{"sku": f"sku-{n}"} for n in range(5)]


def reserved(call: Call) -> dict[str, Any]:
    return {"id": f"r-{call.request.payload['position']}"}


def order(concurrency: int = 1) -> str:
    return ORDER.replace("CONCURRENCY", str(concurrency))


def deps(invoker: ScriptedInvoker, sink: Any, **kwargs: Any) -> Dependencies:
    clock = FakeClock()
    return Dependencies(
        invoker=invoker,
        sink=sink,
        breakers=BreakerRegistry(clock),
        clock=clock,
        rng=random.Random(3),
        **kwargs,
    )


async def run(
    yaml: str, invoker: ScriptedInvoker, items: list[Any], **kwargs: Any
) -> tuple[Any, ListSink]:
    sink = ListSink()
    runner = Runner(load_workflow(yaml), "ex-1", {"items": items}, deps(invoker, sink, **kwargs))
    result = await runner.run()
    sequences = [e.sequence for e in sink.events]
    assert sequences == list(range(1, len(sequences) + 1)), "the log has a gap"
    return result, sink


def keys(invoker: ScriptedInvoker) -> list[str]:
    return [call.request.idempotency_key.split(":", 1)[1] for call in invoker.calls]


async def test_each_element_runs_under_its_own_key_and_the_output_is_the_list() -> None:
    """Elements run in order (concurrency 1), each bound to .item and .index; the output lists
    their outputs in the list's order, and later steps and the workflow's output read it."""
    invoker = ScriptedInvoker({f"reserve[{n}]": reserved for n in range(3)})
    result, sink = await run(order(), invoker, ITEMS[:3])
    assert result.state is ExecutionState.COMPLETED
    assert keys(invoker) == ["open", "reserve[0]", "reserve[1]", "reserve[2]", "charge"]
    assert invoker.calls[2].request.payload == {"sku": "sku-1", "position": 1, "order": "open-id"}
    assert invoker.calls[-1].request.payload == {"count": 3}
    assert result.output == {"reservations": [{"id": "r-0"}, {"id": "r-1"}, {"id": "r-2"}]}
    elements = [(e.type.value, e.element_index) for e in sink.events if e.step_id == "reserve"]
    assert elements == [
        *[(kind, n) for n in range(3) for kind in ("STEP_STARTED", "STEP_SUCCEEDED")],
        ("STEP_SUCCEEDED", None),
    ]
    whole = [e for e in sink.events if e.step_id == "reserve"][-1]
    assert whole.output == result.output["reservations"]


async def test_an_empty_list_succeeds_with_an_empty_list() -> None:
    """No element, no call: the step succeeds with [] and the saga has nothing of it to undo."""
    invoker = ScriptedInvoker()
    result, sink = await run(order(), invoker, [])
    assert result.state is ExecutionState.COMPLETED
    assert result.output == {"reservations": []}
    assert keys(invoker) == ["open", "charge"]
    assert [e.output for e in sink.events if e.step_id == "reserve"] == [[]]


async def test_an_element_failing_with_three_of_five_done_releases_exactly_those_three() -> None:
    """Element 3 fails for good: elements 0-2 are released in reverse order of completion,
    element 4 never runs, then the earlier step is undone."""
    script: dict[str, Any] = {f"reserve[{n}]": reserved for n in range(5)}
    script["reserve[3]"] = fail("FAILED_PRECONDITION")
    invoker = ScriptedInvoker(script)
    result, sink = await run(order(), invoker, ITEMS)
    assert result.state is ExecutionState.COMPENSATED
    assert keys(invoker) == [
        "open",
        "reserve[0]",
        "reserve[1]",
        "reserve[2]",
        "reserve[3]",
        "reserve[2]:compensate",
        "reserve[1]:compensate",
        "reserve[0]:compensate",
        "open:compensate",
    ]
    releases = [
        c.request for c in invoker.calls if c.request.idempotency_key.endswith("[1]:compensate")
    ]
    assert str(releases[0].method) == "DELETE /reservations/r-1"
    assert releases[0].payload == {"sku": "sku-1"}
    assert result.error is not None and result.error.code == "FAILED_PRECONDITION"
    last = sink.events[-1]
    assert last.type is EventType.WORKFLOW_COMPENSATED and last.step_id == "reserve"
    undone = [e.element_index for e in sink.events if e.type is EventType.COMPENSATION_SUCCEEDED]
    assert undone == [2, 1, 0, None]


async def test_a_list_longer_than_the_limit_fails_before_any_call() -> None:
    """The server's limit (here 4) is checked once the list is rendered, before any element."""
    invoker = ScriptedInvoker()
    result, _ = await run(order(), invoker, ITEMS, max_for_each_elements=4)
    assert result.state is ExecutionState.COMPENSATED
    assert keys(invoker) == ["open", "open:compensate"]
    assert result.error is not None and result.error.code == "TOO_MANY_ELEMENTS"
    assert "5 elements" in result.error.message and "at most 4" in result.error.message


async def test_a_template_that_is_not_a_list_fails_the_step() -> None:
    """for_each rendering to an object is a TEMPLATE_ERROR naming the step."""
    invoker = ScriptedInvoker()
    result, _ = await run(order(), invoker, {"sku": "one"})  # type: ignore[arg-type]
    assert result.error is not None and result.error.code == "TEMPLATE_ERROR"
    assert "for_each must render to a list, not dict" in result.error.message


async def test_when_is_evaluated_per_element() -> None:
    """An element whose `when` is false is skipped: not called, null in the output."""
    yaml = order().replace(
        "    output: reservations\n", "    output: reservations\n    when: '{{ .index != 1 }}'\n"
    )
    invoker = ScriptedInvoker({f"reserve[{n}]": reserved for n in range(3)})
    result, sink = await run(yaml, invoker, ITEMS[:3])
    assert result.output == {"reservations": [{"id": "r-0"}, None, {"id": "r-2"}]}
    assert "reserve[1]" not in keys(invoker)
    skipped = [e.element_index for e in sink.events if e.type is EventType.STEP_SKIPPED]
    assert skipped == [1]


async def test_concurrency_bounds_the_elements_in_flight() -> None:
    """With concurrency 3, never more than three elements are in flight, and three are."""
    in_flight = 0
    most = 0
    gate = asyncio.Event()

    async def slow(call: Call) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if most == 3:
            gate.set()
        await asyncio.wait_for(gate.wait(), 5)
        in_flight -= 1
        return reserved(call)

    invoker = ScriptedInvoker({f"reserve[{n}]": slow for n in range(10)})
    items = [{"sku": f"s{n}"} for n in range(10)]
    result, _ = await run(order(3), invoker, items)
    assert result.state is ExecutionState.COMPLETED
    assert most == 3
    assert result.output["reservations"] == [{"id": f"r-{n}"} for n in range(10)]


async def test_a_failing_element_cancels_the_running_ones_and_undoes_those_in_doubt() -> None:
    """Element 1 fails while 0 and 2 are in flight: they are cancelled, recorded in doubt,
    asked again under their own key and released; element 3 never starts."""
    started = asyncio.Event()
    count = 0

    async def hang(call: Call) -> Any:
        nonlocal count
        if call.attempt > 1:  # asked again: it had acted
            return reserved(call)
        count += 1
        if count == 2:
            started.set()
        await asyncio.Event().wait()

    async def late_failure(call: Call) -> Any:
        await asyncio.wait_for(started.wait(), 5)
        return fail("INVALID_ARGUMENT")(call)

    script = {"reserve[0]": hang, "reserve[1]": late_failure, "reserve[2]": hang}
    invoker = ScriptedInvoker(script)  # type: ignore[arg-type]
    result, sink = await run(order(3), invoker, ITEMS[:4])
    assert result.state is ExecutionState.COMPENSATED
    assert "reserve[3]" not in keys(invoker)
    cancelled = [
        (e.element_index, e.in_doubt)
        for e in sink.events
        if e.type is EventType.STEP_FAILED and e.error and e.error.code == "STEP_CANCELLED"
    ]
    assert sorted(cancelled) == [(0, True), (2, True)]
    compensations = [k for k in keys(invoker) if k.endswith(":compensate")]
    assert sorted(compensations[:2]) == ["reserve[0]:compensate", "reserve[2]:compensate"]
    assert compensations[2:] == ["open:compensate"]


@pytest.mark.parametrize("keep", range(4, 14))
async def test_a_restart_mid_for_each_runs_no_element_twice_under_different_keys(
    keep: int,
) -> None:
    """The process dies after `keep` events; a new runner from the log finishes the step:
    elements that ended are not sent again, one in flight is sent again under its key."""
    invoker = ScriptedInvoker({f"reserve[{n}]": reserved for n in range(5)})
    workflow = load_workflow(order(2))
    crashing = CrashingSink(keep)
    first = Runner(workflow, "ex-1", {"items": ITEMS}, deps(invoker, crashing))
    with contextlib.suppress(BaseException):
        await first.run()
    before = keys(invoker)
    resumed = ListSink(events=list(crashing.events), requests=dict(crashing.requests))
    second = Runner(
        workflow,
        "ex-1",
        {"items": ITEMS},
        deps(invoker, resumed),
        resumption=Resumption(crashing.events, crashing.requests),
    )
    result = await second.run()
    assert result.state is ExecutionState.COMPLETED
    assert result.output == {"reservations": [{"id": f"r-{n}"} for n in range(5)]}
    after = keys(invoker)[len(before) :]
    succeeded = {e.element_index for e in crashing.events if e.type is EventType.STEP_SUCCEEDED} - {
        None
    }
    assert not {f"reserve[{n}]" for n in succeeded} & set(after), "an ended element ran again"
    assert set(keys(invoker)) <= {"open", "charge", *(f"reserve[{n}]" for n in range(5))}
    started = {e.element_index for e in crashing.events if e.type is EventType.STEP_STARTED}
    in_flight = started - succeeded - {None}
    again = [c for c in invoker.calls[len(before) :] if c.request.idempotency_key.endswith("]")]
    for call in again:
        index = int(call.request.idempotency_key.rsplit("[", 1)[1].rstrip("]"))
        assert (call.attempt > 1) == (index in in_flight), "in flight: asked again, in doubt"
    final = second.records["reserve"]
    assert final.state is StepState.SUCCEEDED


async def test_a_cancel_mid_for_each_stops_the_elements_and_undoes_those_done() -> None:
    """Cancelled while elements 2 and 3 hang: they are recorded cancelled (in doubt), and
    every element that completed or may have is released before the first step."""
    hanging = asyncio.Event()
    count = 0

    async def hang(call: Call) -> Any:
        nonlocal count
        if call.attempt > 1:
            return reserved(call)
        count += 1
        if count == 2:
            hanging.set()
        await asyncio.Event().wait()

    script: dict[str, Any] = {"reserve[0]": reserved, "reserve[1]": reserved}
    script |= {"reserve[2]": hang, "reserve[3]": hang}
    invoker = ScriptedInvoker(script)
    sink = ListSink()
    runner = Runner(load_workflow(order(2)), "ex-1", {"items": ITEMS}, deps(invoker, sink))
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(hanging.wait(), 5)
    assert runner.cancel("changed my mind")
    result = await task
    assert result.state is ExecutionState.CANCELLED
    stopped = [
        (e.element_index, e.in_doubt, e.cause)
        for e in sink.events
        if e.type is EventType.STEP_FAILED and e.element_index is not None
    ]
    assert sorted(stopped) == [(2, True, Cause.CANCELLED), (3, True, Cause.CANCELLED)]
    undone = [k for k in keys(invoker) if k.endswith(":compensate")]
    assert sorted(undone[:4]) == [f"reserve[{n}]:compensate" for n in range(4)]
    assert undone[4:] == ["open:compensate"]
    assert "reserve[4]" not in keys(invoker)


@pytest.mark.parametrize("keep", range(6, 20))
async def test_a_restart_after_an_element_failed_releases_each_completed_element(
    keep: int,
) -> None:
    """Element 3 fails; the process dies after `keep` events, forward or in the saga. After
    the restart, every element that succeeded (or, in doubt, did when asked again) ends
    compensated, under its own key only."""
    script: dict[str, Any] = {f"reserve[{n}]": reserved for n in range(5)}
    script["reserve[3]"] = fail("FAILED_PRECONDITION")
    invoker = ScriptedInvoker(script)
    workflow = load_workflow(order(2))
    crashing = CrashingSink(keep)
    first = Runner(workflow, "ex-1", {"items": ITEMS}, deps(invoker, crashing))
    with contextlib.suppress(BaseException):
        await first.run()
    resumed = ListSink(events=list(crashing.events), requests=dict(crashing.requests))
    second = Runner(
        workflow,
        "ex-1",
        {"items": ITEMS},
        deps(invoker, resumed),
        resumption=Resumption(crashing.events, crashing.requests),
    )
    result = await second.run()
    if result.state is ExecutionState.COMPENSATION_FAILED:
        # Element 3 was in flight at the crash, so it may have acted; its service's answer on
        # asking again was the failure, which leaves it in doubt (as any step), and undoing
        # it needs the output it never gave.
        in_flight = [e for e in crashing.events if e.element_index == 3]
        assert in_flight and in_flight[-1].type is EventType.STEP_STARTED
        assert result.error is not None and "'reserve[3]' (OUTCOME_UNKNOWN" in result.error.message
    else:
        assert result.state is ExecutionState.COMPENSATED
    step = second.records["reserve"]
    succeeded = {
        e.element_index
        for e in resumed.events
        if e.type is EventType.STEP_SUCCEEDED and e.element_index is not None
    }
    assert succeeded and 3 not in succeeded
    assert {i for i, e in step.elements.items() if e.state is StepState.COMPENSATED} == succeeded
    compensated = {k for k in keys(invoker) if k.startswith("reserve") and "compensate" in k}
    assert compensated == {f"reserve[{n}]:compensate" for n in succeeded}
