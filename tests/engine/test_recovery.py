"""Resuming an execution from its log after a crash (driven through the scripted invoker)."""

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro_server.definition import load_workflow
from maestro_server.engine.dependencies import Dependencies
from maestro_server.engine.runner import Resumption, Runner
from maestro_server.model.execution import Event, EventType, ExecutionState
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.store.base import LogEntries
from tests.definition.test_load import SEED
from tests.engine.fakes import FakeClock, ListSink, ScriptedInvoker, fail
from tests.engine.test_runner import INPUT, seed_invoker
from tests.engine.test_saga_properties import EXAMPLES, build, scenarios


class Crash(BaseException):
    """The process died: nothing after this is written."""


@dataclass
class CrashingSink:
    """Keeps the first `keep` events, then dies; what it kept is the durable log."""

    keep: int
    events: list[Event] = field(default_factory=list)
    requests: dict[str, Any] = field(default_factory=dict)

    async def append(self, entries: LogEntries) -> None:
        # Keeps a prefix of a batch too: every prefix of the log is a state some crash leaves.
        room = self.keep - len(self.events)
        if room > 0:
            self.events.extend(entries.events[:room])
            for key, request in entries.requests.items():
                self.requests.setdefault(key, request)
        if len(entries.events) > room:
            raise Crash


async def crash_then_resume(
    yaml: str, invoker: ScriptedInvoker, keep: int, data: Any = None
) -> tuple[ListSink, int, Any]:
    """Run until the log holds `keep` events, then resume a new runner from that log."""
    workflow = load_workflow(yaml)
    clock = FakeClock()
    crashing = CrashingSink(keep)
    first = Runner(
        workflow,
        "ex-1",
        data if data is not None else INPUT,
        Dependencies(
            invoker=invoker,
            sink=crashing,
            breakers=BreakerRegistry(clock),
            clock=clock,
            rng=random.Random(1),
        ),
    )
    with contextlib.suppress(BaseException):  # the crash surfaces in whatever was running
        await first.run()
    calls_before = len(invoker.calls)
    resumed = ListSink(events=list(crashing.events), requests=dict(crashing.requests))
    second = Runner(
        workflow,
        "ex-1",
        data if data is not None else INPUT,
        Dependencies(
            invoker=invoker,
            sink=resumed,
            breakers=BreakerRegistry(clock),
            clock=clock,
            rng=random.Random(2),
        ),
        resumption=Resumption(history=crashing.events, saved_requests=crashing.requests),
    )
    result = await second.run()
    return resumed, calls_before, result


async def test_resume_after_a_step_succeeded_does_not_call_it_again() -> None:
    """Crash right after setup_subscription succeeded: it is not sent again; the rest runs."""
    invoker = seed_invoker()
    sink, before, result = await crash_then_resume(SEED, invoker, keep=5)
    assert result.state is ExecutionState.COMPLETED
    after = [c.request.idempotency_key for c in invoker.calls[before:]]
    assert after == ["ex-1:add_to_crm", "ex-1:send_welcome_email"]
    assert [e.sequence for e in sink.events] == list(range(1, 11))


async def test_resume_of_a_step_in_flight_sends_it_again_with_the_same_key() -> None:
    """Crash after add_to_crm started: it is sent again (attempt 2) with the same key."""
    invoker = seed_invoker()
    sink, before, result = await crash_then_resume(SEED, invoker, keep=6)
    assert result.state is ExecutionState.COMPLETED
    resent = [(c.request.idempotency_key, c.attempt) for c in invoker.calls[before:]]
    assert resent[0] == ("ex-1:add_to_crm", 2)
    started = [
        e for e in sink.events if e.type is EventType.STEP_STARTED and e.step_id == "add_to_crm"
    ]
    assert [e.attempt for e in started] == [1, 2]


async def test_resume_during_compensation_continues_compensating() -> None:
    """Crash after the first compensation: the second still runs, the first is not repeated."""
    invoker = seed_invoker(send_welcome_email=fail("INVALID_ARGUMENT"))
    sink, before, result = await crash_then_resume(SEED, invoker, keep=11)
    assert result.state is ExecutionState.COMPENSATED
    after = [c.request.idempotency_key for c in invoker.calls[before:]]
    assert after == ["ex-1:setup_subscription:compensate"]
    assert sink.events[-1].type is EventType.WORKFLOW_COMPENSATED


async def test_resume_in_a_compensations_backoff_does_not_settle_its_step_again() -> None:
    """Crash while a compensation waits to retry: the step is compensating, not in flight, so
    the resumed saga neither fails it again nor undoes it twice."""
    invoker = seed_invoker(
        send_welcome_email=fail("INVALID_ARGUMENT"),
        **{"setup_subscription:compensate": fail("UNAVAILABLE", times=1)},
    )
    sink, _, result = await crash_then_resume(SEED, invoker, keep=13)
    retrying = sink.events[12]
    assert (retrying.type, retrying.step_id) == (EventType.STEP_RETRYING, "setup_subscription")
    assert result.state is ExecutionState.COMPENSATED
    failed = [e.step_id for e in sink.events if e.type is EventType.STEP_FAILED]
    assert failed == ["send_welcome_email"]
    undone = [e.step_id for e in sink.events if e.type is EventType.COMPENSATION_SUCCEEDED]
    assert undone == ["add_to_crm", "setup_subscription"]


async def test_resume_reuses_the_rendered_request() -> None:
    """A request rendered before the crash is sent as it was, even if rendering would differ."""
    yaml = SEED.replace('template: "welcome"', 'template: "{{ uuid() }}"')
    invoker = seed_invoker()
    _, _, result = await crash_then_resume(yaml, invoker, keep=8)  # email step started
    assert result.state is ExecutionState.COMPLETED
    sends = [c for c in invoker.calls if c.request.idempotency_key == "ex-1:send_welcome_email"]
    assert len(sends) == 2
    assert sends[0].request.payload == sends[1].request.payload


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.integers(1, 40))
async def test_crash_anywhere_then_resume_keeps_the_saga_invariants(
    scenario: dict[str, Any], keep: int
) -> None:
    """Whatever event the crash follows, the resumed execution ends terminal, its log is gap-free,
    and the compensations are exactly those of the completed (or in-doubt) steps, in reverse."""
    runner, _, invoker = build(scenario)
    workflow_yaml = runner.workflow.source
    sink, _, result = await crash_then_resume(workflow_yaml, invoker, keep, data={})
    events = sink.events
    assert result.state.terminal or events[-1].terminal
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].terminal and sum(e.terminal for e in events) == 1
    compensable = {s["id"] for s in scenario["steps"] if "compensate" in s}
    completion = [
        e.step_id
        for e in events
        if e.type is EventType.STEP_SUCCEEDED or (e.type is EventType.STEP_FAILED and e.in_doubt)
    ]
    first_seen = list(
        dict.fromkeys(e.step_id for e in events if e.type is EventType.COMPENSATION_STARTED)
    )
    if events[-1].type is EventType.WORKFLOW_COMPLETED:
        assert first_seen == []
    else:
        expected = [s for s in reversed(list(dict.fromkeys(completion))) if s in compensable]
        assert first_seen == expected


async def test_resume_while_compensating_after_the_output_failed_does_not_run_steps_again() -> None:
    """The output failed to render, compensation began, the server died: the resumed execution
    goes on compensating and calls no step forward again."""
    yaml = SEED.replace(
        'subscription_id: "{{ .subscription.id }}"\n',
        'subscription_id: "{{ .subscription.id }}"\n  missing: "{{ .input.nope }}"\n',
    )
    invoker = seed_invoker()
    _, before, result = await crash_then_resume(yaml, invoker, keep=11)
    assert result.state is ExecutionState.COMPENSATED
    after = [c.request.idempotency_key for c in invoker.calls[before:]]
    assert all(key.endswith(":compensate") for key in after), after


PARALLEL = """\
name: p
services:
  s: {type: grpc, endpoint: "s:1"}
steps:
  - {id: a, service: s, method: A, depends_on: [], compensate: {method: UndoA}}
  - {id: b, service: s, method: B, depends_on: [], compensate: {method: UndoB}}
"""


async def test_a_sibling_in_flight_at_the_crash_is_compensated() -> None:
    """`a` failed and was logged; the server died before `b`'s stop was: `b` may have acted,
    so after the restart it is marked in doubt and compensated."""

    async def slow(call: Any) -> Any:
        await asyncio.sleep(0.01)
        return {"ok": True}

    invoker = ScriptedInvoker({"a": fail("INVALID_ARGUMENT"), "b": slow})
    sink, _, result = await crash_then_resume(PARALLEL, invoker, keep=4, data={})
    assert result.state is ExecutionState.COMPENSATED
    b_failed = next(e for e in sink.events if e.type is EventType.STEP_FAILED and e.step_id == "b")
    assert b_failed.in_doubt
    undone = [
        c.request.idempotency_key
        for c in invoker.calls
        if c.request.idempotency_key.endswith(":compensate")
    ]
    assert undone == ["ex-1:b:compensate"]


async def test_the_workflow_timeout_counts_from_the_start_across_a_restart() -> None:
    """Resumed after its timeout has passed (by the wall clock since it started), the execution
    stops at once instead of being given a whole timeout again."""
    yaml = SEED.replace("name: user_onboarding\n", "name: user_onboarding\ntimeout: 1h\n", 1)
    workflow = load_workflow(yaml)
    clock = FakeClock()
    crashing = CrashingSink(keep=4)  # started, create_user done, setup_subscription started
    first = Runner(
        workflow,
        "ex-1",
        INPUT,
        Dependencies(
            invoker=seed_invoker(), sink=crashing, breakers=BreakerRegistry(clock), clock=clock
        ),
    )
    with contextlib.suppress(BaseException):
        await first.run()
    started = crashing.events[0].time
    resumed = ListSink(events=list(crashing.events), requests=dict(crashing.requests))
    second = Runner(
        workflow,
        "ex-1",
        INPUT,
        Dependencies(
            invoker=seed_invoker(),
            sink=resumed,
            breakers=BreakerRegistry(clock),
            clock=clock,
            now=lambda: started + timedelta(hours=2),
        ),
        resumption=Resumption(history=crashing.events, saved_requests=crashing.requests),
    )
    result = await second.run()
    assert result.state is ExecutionState.COMPENSATED
    assert result.error is not None and result.error.code == "DEADLINE_EXCEEDED"
