"""The saga engine's behaviour, driven through a scripted invoker (see fakes.py for why)."""

import asyncio
import random
from typing import Any

import pytest

from maestro_server.definition import load_workflow
from maestro_server.engine.dependencies import Dependencies
from maestro_server.engine.runner import Runner
from maestro_server.model.execution import ExecutionResult, ExecutionState, StepState
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.resilience.clock import SystemClock
from tests.definition.test_load import SEED
from tests.engine.fakes import FakeClock, ListSink, ScriptedInvoker, fail, unreachable

INPUT = {"email": "ada@example.com", "password": "pw", "name": "Ada", "plan": "pro"}
SUBSCRIPTION = {"id": "s-1", "tier": "gold", "plan_name": "Pro"}


def seed_invoker(**script: Any) -> ScriptedInvoker:
    """The seed's services answering with what later templates read, unless scripted otherwise."""
    return ScriptedInvoker({"setup_subscription": lambda c: SUBSCRIPTION, **script})


def make_runner(yaml: str, invoker: ScriptedInvoker, **kwargs: Any) -> tuple[Runner, ListSink]:
    sink = ListSink()
    clock = kwargs.pop("clock", FakeClock()) or SystemClock()
    runner = Runner(
        load_workflow(yaml),
        "ex-1",
        kwargs.pop("input", INPUT),
        Dependencies(
            invoker=invoker,
            sink=sink,
            breakers=BreakerRegistry(clock),
            clock=clock,
            rng=random.Random(7),
        ),
        **kwargs,
    )
    return runner, sink


async def run(
    yaml: str, invoker: ScriptedInvoker, **kwargs: Any
) -> tuple[ExecutionResult, ListSink]:
    runner, sink = make_runner(yaml, invoker, **kwargs)
    result = await runner.run()
    sequences = [e.sequence for e in sink.events]
    assert sequences == list(range(1, len(sequences) + 1)), "the log has a gap"
    assert sink.events[-1].terminal and not any(e.terminal for e in sink.events[:-1])
    return result, sink


async def test_seed_saga_completes() -> None:
    """Every step runs in order with rendered inputs; the output is rendered at the end."""
    invoker = ScriptedInvoker(
        {
            "create_user": lambda c: {"id": "u-1"},
            "setup_subscription": lambda c: {"id": "s-1", "tier": "gold", "plan_name": "Pro"},
            "add_to_crm": lambda c: {"id": "c-1"},
        }
    )
    result, sink = await run(SEED, invoker)
    assert result.state is ExecutionState.COMPLETED
    assert result.output == {"user_id": "u-1", "subscription_id": "s-1"}
    assert [c.request.idempotency_key for c in invoker.calls] == [
        "ex-1:create_user",
        "ex-1:setup_subscription",
        "ex-1:add_to_crm",
        "ex-1:send_welcome_email",
    ]
    assert invoker.calls[1].request.payload == {"user_id": "u-1", "plan": "pro"}
    assert invoker.calls[2].request.payload == {
        "user_id": "u-1",
        "email": "ada@example.com",
        "subscription_tier": "gold",
    }
    assert sink.types() == [
        ("WORKFLOW_STARTED", ""),
        ("STEP_STARTED", "create_user"),
        ("STEP_SUCCEEDED", "create_user"),
        ("STEP_STARTED", "setup_subscription"),
        ("STEP_SUCCEEDED", "setup_subscription"),
        ("STEP_STARTED", "add_to_crm"),
        ("STEP_SUCCEEDED", "add_to_crm"),
        ("STEP_STARTED", "send_welcome_email"),
        ("STEP_SUCCEEDED", "send_welcome_email"),
        ("WORKFLOW_COMPLETED", ""),
    ]
    assert sink.events[-1].output == result.output


@pytest.mark.parametrize(
    ("failing", "compensated", "state"),
    [
        pytest.param("create_user", [], ExecutionState.FAILED, id="first step: nothing to undo"),
        pytest.param(
            "setup_subscription",
            [],
            ExecutionState.FAILED,
            id="second step: the first has no compensation",
        ),
        pytest.param(
            "add_to_crm",
            ["setup_subscription"],
            ExecutionState.COMPENSATED,
            id="third step: subscription cancelled",
        ),
        pytest.param(
            "send_welcome_email",
            ["add_to_crm", "setup_subscription"],
            ExecutionState.COMPENSATED,
            id="last step: both undone in reverse",
        ),
    ],
)
async def test_each_step_failing_in_turn(
    failing: str, compensated: list[str], state: ExecutionState
) -> None:
    """A step failing for good compensates exactly the completed steps, in reverse order."""
    invoker = seed_invoker(**{failing: fail("INVALID_ARGUMENT")})
    result, _sink = await run(SEED, invoker)
    assert result.state is state
    undone = [
        c.request.idempotency_key
        for c in invoker.calls
        if c.request.idempotency_key.endswith(":compensate")
    ]
    assert undone == [f"ex-1:{s}:compensate" for s in compensated]
    failed_attempts = [c for c in invoker.calls if c.request.idempotency_key == f"ex-1:{failing}"]
    assert len(failed_attempts) == 1, "a non-retryable error is not retried"
    assert result.error is not None and result.error.code == "INVALID_ARGUMENT"
    crm = [c for c in invoker.calls if c.request.idempotency_key == "ex-1:add_to_crm:compensate"]
    if crm:
        assert str(crm[0].request.method) == "DELETE /contacts/add_to_crm-id"


async def test_transient_failures_are_retried_with_the_same_key() -> None:
    """UNAVAILABLE twice, then success: three attempts, one key, backoff within bounds."""
    clock = FakeClock()
    invoker = seed_invoker(create_user=fail("UNAVAILABLE", times=2, then={"id": "u"}))
    result, sink = await run(SEED, invoker, clock=clock)
    assert result.state is ExecutionState.COMPLETED
    attempts = [c for c in invoker.calls if c.request.idempotency_key == "ex-1:create_user"]
    assert [c.attempt for c in attempts] == [1, 2, 3]
    assert len({id(c.request) for c in attempts}) == 1, "the request is rendered once"
    retrying = [e for e in sink.events if e.type.value == "STEP_RETRYING"]
    assert [e.attempt for e in retrying] == [1, 2]
    assert all(e.error is not None and e.error.code == "UNAVAILABLE" for e in retrying)
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 0.2 and 0 <= clock.sleeps[1] <= 0.4
    delays = [e.retry_delay.total_seconds() for e in retrying if e.retry_delay]
    assert delays == pytest.approx(clock.sleeps, abs=1e-6)


async def test_retries_stop_at_max_attempts() -> None:
    """A retryable error that never clears fails the step after max_attempts."""
    invoker = ScriptedInvoker({"create_user": fail("UNAVAILABLE")})
    result, _ = await run(SEED, invoker)
    assert result.state is ExecutionState.FAILED
    assert len(invoker.calls) == 3


async def test_in_doubt_step_is_compensated() -> None:
    """A step whose last attempt timed out after sending may have acted: it is compensated."""
    invoker = seed_invoker(add_to_crm=fail("DEADLINE_EXCEEDED", maybe_executed=True))
    result, _ = await run(SEED, invoker)
    assert result.state is ExecutionState.COMPENSATION_FAILED  # its own output is unknown
    undone = [
        c.request.idempotency_key
        for c in invoker.calls
        if "compensate" in c.request.idempotency_key
    ]
    assert undone == ["ex-1:setup_subscription:compensate"]
    assert result.failed_compensations == ("add_to_crm",)


# The seed, with a CRM compensation that does not need the contact's id.
BY_KEY = SEED.replace(
    "DELETE /contacts/{{ .crm_contact.id }}", "DELETE /contacts/by-key/{{ .execution.id }}"
)


async def test_in_doubt_step_with_a_compensation_that_needs_no_output() -> None:
    """An in-doubt step is undone first, before the steps that completed earlier."""
    invoker = seed_invoker(add_to_crm=fail("DEADLINE_EXCEEDED", maybe_executed=True))
    result, _ = await run(BY_KEY, invoker)
    assert result.state is ExecutionState.COMPENSATED
    undone = [
        c.request.idempotency_key
        for c in invoker.calls
        if "compensate" in c.request.idempotency_key
    ]
    assert undone == ["ex-1:add_to_crm:compensate", "ex-1:setup_subscription:compensate"]


async def test_failed_compensation_is_named_and_the_others_still_run() -> None:
    """A compensation that fails for good does not stop the ones before it."""
    invoker = seed_invoker(
        **{
            "send_welcome_email": fail("INVALID_ARGUMENT"),
            "add_to_crm:compensate": fail("HTTP_500"),
        }
    )
    result, sink = await run(SEED, invoker)
    assert result.state is ExecutionState.COMPENSATION_FAILED
    assert result.failed_compensations == ("add_to_crm",)
    assert result.error is not None and "add_to_crm" in result.error.message
    crm_undo = [
        c for c in invoker.calls if c.request.idempotency_key == "ex-1:add_to_crm:compensate"
    ]
    assert len(crm_undo) == 10, "compensations use their own, more patient policy"
    assert any(
        c.request.idempotency_key == "ex-1:setup_subscription:compensate" for c in invoker.calls
    )
    last = sink.events[-1]
    assert last.type.value == "WORKFLOW_FAILED" and last.state is ExecutionState.COMPENSATION_FAILED


WHEN = """\
name: w
services:
  s: {type: grpc, endpoint: "s:1"}
steps:
  - {id: a, service: s, method: A, output: a, compensate: {method: UndoA}}
  - {id: b, service: s, method: B, output: b, when: "{{ .input.send }}", compensate: {method: UndoB}}
  - {id: c, service: s, method: C, input: {b: "{{ .b }}"}, continue_on_error: true, compensate: {method: UndoC}}
  - {id: d, service: s, method: D}
output: {b: "{{ .b }}", c: "{{ .steps.c.output }}"}
"""


async def test_when_skips_and_continue_on_error_goes_on() -> None:
    """A skipped step is not run nor compensated; a tolerated failure does not stop the saga."""
    invoker = ScriptedInvoker({"c": fail("INVALID_ARGUMENT")})
    result, sink = await run(WHEN, invoker, input={"send": False})
    assert result.state is ExecutionState.COMPLETED
    assert result.output == {"b": None, "c": None}
    assert ("STEP_SKIPPED", "b") in sink.types()
    assert ("STEP_FAILED", "c") in sink.types()
    assert [c.request.idempotency_key for c in invoker.calls] == ["ex-1:a", "ex-1:c", "ex-1:d"]
    assert invoker.calls[1].request.payload == {"b": None}


async def test_skipped_step_is_never_compensated() -> None:
    """When a later step fails, the skipped step is left alone."""
    invoker = ScriptedInvoker({"d": fail("NOT_FOUND")})
    result, _ = await run(WHEN, invoker, input={"send": False})
    assert result.state is ExecutionState.COMPENSATED
    undone = [
        c.request.idempotency_key
        for c in invoker.calls
        if "compensate" in c.request.idempotency_key
    ]
    assert undone == ["ex-1:c:compensate", "ex-1:a:compensate"]


PARALLEL = """\
name: p
services:
  s: {type: grpc, endpoint: "s:1"}
steps:
  - {id: root, service: s, method: R, compensate: {method: UndoR}}
  - {id: slow, service: s, method: Slow, depends_on: [root], compensate: {method: UndoSlow}}
  - {id: quick_fail, service: s, method: F, depends_on: [root]}
  - {id: after, service: s, method: After, depends_on: [slow, quick_fail]}
"""


async def test_failure_cancels_running_siblings_and_compensates_the_in_flight_one() -> None:
    """Parallel branches run together; a failure cancels the sibling whose call is in flight."""
    slow_started = asyncio.Event()

    async def slow(call: Any) -> Any:
        slow_started.set()
        if call.attempt > 1:
            raise unreachable(call)  # asked again once stopped: the service cannot be reached
        await asyncio.Event().wait()  # never answers

    async def quick_fail(call: Any) -> Any:
        await slow_started.wait()  # proves both run at once
        raise fail("FAILED_PRECONDITION")(call)

    invoker = ScriptedInvoker({"slow": slow, "quick_fail": quick_fail})
    runner, sink = make_runner(PARALLEL, invoker)
    result = await runner.run()
    assert result.state is ExecutionState.COMPENSATED
    assert runner.records["slow"].state is StepState.COMPENSATED
    assert runner.records["slow"].in_doubt
    undone = [
        c.request.idempotency_key
        for c in invoker.calls
        if "compensate" in c.request.idempotency_key
    ]
    assert undone == ["ex-1:slow:compensate", "ex-1:root:compensate"]
    assert "ex-1:after" not in [c.request.idempotency_key for c in invoker.calls]
    slow_failed = [e for e in sink.events if e.type.value == "STEP_FAILED" and e.step_id == "slow"]
    assert slow_failed[0].error is not None and slow_failed[0].error.code == "STEP_CANCELLED"


async def test_cancel_stops_and_compensates() -> None:
    """Cancelling an execution stops forward progress and compensates what was done."""
    blocked = asyncio.Event()

    async def hang(call: Any) -> Any:
        blocked.set()
        if call.attempt > 1:
            raise unreachable(call)  # asked again once cancelled: the service cannot be reached
        await asyncio.Event().wait()

    invoker = seed_invoker(add_to_crm=hang)
    runner, sink = make_runner(BY_KEY, invoker)
    task = asyncio.create_task(runner.run())
    await blocked.wait()
    assert runner.cancel("operator request")
    result = await task
    assert result.state is ExecutionState.CANCELLED
    assert sink.events[-1].type.value == "WORKFLOW_CANCELLED"
    undone = [
        c.request.idempotency_key
        for c in invoker.calls
        if "compensate" in c.request.idempotency_key
    ]
    assert undone == ["ex-1:add_to_crm:compensate", "ex-1:setup_subscription:compensate"]
    assert not runner.cancel("again"), "a finished execution cannot be cancelled"


async def test_workflow_timeout_compensates() -> None:
    """The workflow timeout stops the steps and compensates."""

    async def hang(call: Any) -> Any:
        await asyncio.Event().wait()

    yaml = SEED.replace('version: "1.0"', 'version: "1.0"\ntimeout: 50ms')
    invoker = seed_invoker(send_welcome_email=hang)
    result, _ = await run(yaml, invoker, clock=None)
    assert result.state is ExecutionState.COMPENSATED
    assert result.error is not None and result.error.code == "DEADLINE_EXCEEDED"
    assert "workflow timeout" in result.error.message


async def test_missing_value_at_run_time_fails_the_step_with_its_field() -> None:
    """A template reading a field the response lacks fails that step, naming step and field."""
    invoker = ScriptedInvoker({"setup_subscription": lambda c: {"id": "s-1"}})  # no 'tier'
    result, _sink = await run(SEED, invoker)
    assert result.state is ExecutionState.COMPENSATED
    assert result.error is not None and result.error.code == "TEMPLATE_ERROR"
    assert "step 'add_to_crm', field 'input.subscription_tier'" in result.error.message
    assert "ex-1:add_to_crm" not in [c.request.idempotency_key for c in invoker.calls]


async def test_open_breaker_holds_the_attempt_back_until_it_half_opens() -> None:
    """Once a service's breaker opens, calls stop reaching it; the next attempt waits for the
    breaker instead of being spent against it, then goes through as the trial call."""
    yaml = """\
name: b
services:
  s:
    type: grpc
    endpoint: "s:1"
    circuit_breaker: {window_size: 2, minimum_calls: 2, open_duration: 5s, half_open_calls: 1}
    retry: {max_attempts: 4, initial_backoff: 10ms, max_backoff: 10ms}
steps:
  - {id: a, service: s, method: A}
"""
    clock = FakeClock()
    invoker = ScriptedInvoker({"a": fail("UNAVAILABLE", times=2, then={"ok": True})})
    result, sink = await run(yaml, invoker, clock=clock)
    assert result.state is ExecutionState.COMPLETED
    assert [c.attempt for c in invoker.calls] == [1, 2, 3], "attempt 3 waited, not refused"
    codes = [e.error.code for e in sink.events if e.type.value == "STEP_RETRYING" and e.error]
    assert codes == ["UNAVAILABLE", "UNAVAILABLE"]
    assert sum(clock.sleeps[1:]) == pytest.approx(5.0), (
        "the step waited for the breaker to half-open"
    )


async def test_doubt_sticks_across_attempts() -> None:
    """An attempt that may have acted keeps the step in doubt, even if a later one is refused."""
    outcomes = iter(
        [fail("DEADLINE_EXCEEDED", maybe_executed=True), fail("UNAVAILABLE"), fail("UNAVAILABLE")]
    )
    invoker = seed_invoker(add_to_crm=lambda call: next(outcomes)(call))  # noqa: PLW0108 - one outcome per call
    result, _ = await run(BY_KEY, invoker)
    assert result.state is ExecutionState.COMPENSATED
    undone = [
        c.request.idempotency_key
        for c in invoker.calls
        if "compensate" in c.request.idempotency_key
    ]
    assert undone == ["ex-1:add_to_crm:compensate", "ex-1:setup_subscription:compensate"]


async def test_a_transport_bug_fails_the_step_not_the_execution() -> None:
    """An unexpected exception from a transport is an INTERNAL error of that attempt."""

    def explode(call: Any) -> Any:
        raise RuntimeError("boom")

    result, sink = await run(BY_KEY, seed_invoker(add_to_crm=explode))
    assert result.state is ExecutionState.COMPENSATED
    failed = next(e for e in sink.events if e.type.value == "STEP_FAILED")
    assert failed.error is not None and failed.error.code == "INTERNAL"
    assert "RuntimeError: boom" in failed.error.message


async def test_a_downstream_cancelled_is_tolerated_like_any_error() -> None:
    """A service answering CANCELLED is not Maestro stopping the step: continue_on_error holds."""
    invoker = ScriptedInvoker({"c": fail("CANCELLED")})
    result, _ = await run(WHEN, invoker, input={"send": True})
    assert result.state is ExecutionState.COMPLETED
