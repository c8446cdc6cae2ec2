"""`wait` and `sleep` steps: signals before, during and after the wait, timeouts, restarts.

Time is a manual clock: a sleep returns only when the test moves the clock past its end, so
no test waits for real time and none races it.
"""

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from maestro_server.definition import load_workflow
from maestro_server.engine.dependencies import Dependencies
from maestro_server.engine.runner import Resumption, Runner
from maestro_server.model.execution import Event, EventType, ExecutionState, StepState
from maestro_server.model.signals import Signal
from maestro_server.resilience.breaker import BreakerRegistry
from tests.engine.fakes import FakeClock, ListSink, ScriptedInvoker
from tests.engine.test_recovery import CrashingSink

START = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)

PAYMENT = """
name: pay
services:
  billing: {type: grpc, endpoint: "billing:50051"}
steps:
  - id: reserve
    service: billing
    method: Reserve
    output: reservation
    compensate: {method: Release, input: {id: "{{ .reservation.id }}"}}
  - id: await_payment
    wait: {signal: paid, timeout: 1h}
    output: payment
  - id: capture
    service: billing
    method: Capture
    input: {amount: "{{ .payment.amount }}"}
output: {amount: "{{ .payment.amount }}"}
"""

COOLING_OFF = """
name: cooling_off
services:
  billing: {type: grpc, endpoint: "billing:50051"}
steps:
  - id: cool_off
    sleep: 30s
  - id: not_before
    sleep: {until: "{{ .input.not_before }}"}
  - id: refund
    service: billing
    method: Refund
"""


class ManualClock:
    """Time that moves only when the test says; sleepers wake once it passes their end."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.elapsed

    def now(self) -> datetime:
        return START + timedelta(seconds=self.elapsed)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.elapsed + seconds, woken))
        await woken

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds
        for end, woken in self._sleepers:
            if end <= self.elapsed and not woken.done():
                woken.set_result(None)


def signal(name: str, signal_id: str, position: int, **payload: Any) -> Signal:
    return Signal("ex-1", name, signal_id, payload, START, position)


def runner_for(
    yaml: str,
    clock: ManualClock,
    sink: ListSink,
    invoker: ScriptedInvoker | None = None,
    *,
    data: Any = None,
    resumption: Resumption | None = None,
) -> Runner:
    return Runner(
        load_workflow(yaml),
        "ex-1",
        data if data is not None else {},
        Dependencies(
            invoker=invoker or ScriptedInvoker(),
            sink=sink,
            breakers=BreakerRegistry(clock),
            clock=clock,
            rng=random.Random(1),
            now=clock.now,
        ),
        resumption=resumption,
    )


async def until(condition: Callable[[], bool]) -> None:
    """Poll `condition` until it holds, for at most 10 s.

    Events reach the sink in batches, a few milliseconds after they are emitted (see the
    recorder), so this polls the loop rather than counting its turns.
    """
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.001)


def waiting(sink: ListSink, step_id: str) -> Callable[[], bool]:
    return lambda: (EventType.STEP_WAITING.value, step_id) in sink.types()


def of(sink: ListSink, kind: EventType) -> list[Event]:
    return [e for e in sink.events if e.type is kind]


async def test_a_signal_sent_before_the_step_waits_is_kept_and_taken() -> None:
    """The signal is there before the step starts: the step takes it at once."""
    clock, sink = ManualClock(), ListSink()
    runner = runner_for(PAYMENT, clock, sink)
    runner.deliver([signal("paid", "sig-1", 1, amount=42)])
    result = await runner.run()
    assert result.state is ExecutionState.COMPLETED
    assert result.output == {"amount": 42}
    assert sink.types()[1:6] == [
        ("STEP_STARTED", "reserve"),
        ("STEP_SUCCEEDED", "reserve"),
        ("STEP_WAITING", "await_payment"),
        ("SIGNAL_RECEIVED", "await_payment"),
        ("STEP_SUCCEEDED", "await_payment"),
    ]
    received = of(sink, EventType.SIGNAL_RECEIVED)[0]
    assert (received.signal_name, received.signal_id) == ("paid", "sig-1")
    waited = of(sink, EventType.STEP_WAITING)[0]
    assert waited.signal_name == "paid"
    assert waited.deadline == START + timedelta(hours=1)
    assert waited.state is ExecutionState.RUNNING
    assert of(sink, EventType.STEP_SUCCEEDED)[1].output == {"amount": 42}


async def test_a_signal_sent_while_the_step_waits_wakes_it() -> None:
    """The step waits (WAITING, the execution RUNNING) until the signal comes."""
    clock, sink = ManualClock(), ListSink()
    runner = runner_for(PAYMENT, clock, sink)
    task = asyncio.create_task(runner.run())
    await until(lambda: runner.waiting_for_signal)
    assert runner.records["await_payment"].state is StepState.WAITING
    assert runner.state is ExecutionState.RUNNING
    runner.deliver([signal("other", "sig-0", 1)])  # another name wakes nobody
    await asyncio.sleep(0)
    assert not task.done()
    runner.deliver([signal("paid", "sig-1", 2, amount=7)])
    result = await task
    assert result.state is ExecutionState.COMPLETED
    assert result.output == {"amount": 7}
    assert not runner.waiting_for_signal


async def test_signals_are_taken_in_order_each_once_and_late_ones_change_nothing() -> None:
    """Two waits for one name take the signals in the order sent; a third signal stays unused."""
    yaml = """
name: twice
services:
  billing: {type: grpc, endpoint: "billing:50051"}
steps:
  - id: first
    wait: {signal: paid}
    output: one
  - id: second
    wait: {signal: paid}
    output: two
output: {one: "{{ .one.n }}", two: "{{ .two.n }}"}
"""
    clock, sink = ManualClock(), ListSink()
    runner = runner_for(yaml, clock, sink)
    runner.deliver([signal("paid", "b", 2, n=2), signal("paid", "a", 1, n=1)])
    result = await runner.run()
    assert result.output == {"one": 1, "two": 2}
    runner.deliver([signal("paid", "c", 3, n=3)])  # after the waits: nothing takes it
    assert [e.signal_id for e in of(sink, EventType.SIGNAL_RECEIVED)] == ["a", "b"]


async def test_a_repeated_signal_id_is_one_signal() -> None:
    """The same id again (even with another payload) is not a second signal."""
    yaml = """
name: twice
services:
  billing: {type: grpc, endpoint: "billing:50051"}
steps:
  - id: first
    wait: {signal: paid}
    output: one
  - id: second
    wait: {signal: paid, timeout: 1m}
"""
    clock, sink = ManualClock(), ListSink()
    runner = runner_for(yaml, clock, sink)
    runner.deliver([signal("paid", "same", 1, n=1)])
    runner.deliver([signal("paid", "same", 2, n=2)])
    task = asyncio.create_task(runner.run())
    await until(lambda: clock.sleeps == [60.0])
    clock.advance(60)
    result = await task
    assert result.state is ExecutionState.FAILED
    assert of(sink, EventType.STEP_SUCCEEDED)[0].output == {"n": 1}
    assert result.error is not None and result.error.code == "DEADLINE_EXCEEDED"


async def test_a_wait_that_times_out_fails_and_the_saga_compensates() -> None:
    """No signal within the timeout: DEADLINE_EXCEEDED, and what was done is undone."""
    clock, sink = ManualClock(), ListSink()
    invoker = ScriptedInvoker()
    runner = runner_for(PAYMENT, clock, sink, invoker)
    task = asyncio.create_task(runner.run())
    await until(lambda: clock.sleeps == [3600.0])
    clock.advance(3599)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(1)
    result = await task
    assert result.state is ExecutionState.COMPENSATED
    assert result.error is not None
    assert result.error.code == "DEADLINE_EXCEEDED"
    assert result.error.message == "no signal 'paid' came within 1h"
    assert [c.request.idempotency_key for c in invoker.calls] == [
        "ex-1:reserve",
        "ex-1:reserve:compensate",
    ]
    assert invoker.calls[1].request.payload == {"id": "reserve-id"}


async def test_cancelling_a_waiting_execution_compensates() -> None:
    """A cancel stops the wait at once; the step is not in doubt (it did nothing)."""
    clock, sink = ManualClock(), ListSink()
    runner = runner_for(PAYMENT, clock, sink)
    task = asyncio.create_task(runner.run())
    await until(waiting(sink, "await_payment"))
    runner.cancel("changed my mind")
    result = await task
    assert result.state is ExecutionState.CANCELLED
    failed = of(sink, EventType.STEP_FAILED)[0]
    assert failed.step_id == "await_payment" and not failed.in_doubt
    assert ("COMPENSATION_SUCCEEDED", "reserve") in sink.types()


async def stopped_while_waiting(
    runner: Runner, clock: ManualClock, sink: ListSink, step_id: str
) -> list[Event]:
    """Run until `step_id` waits, then stop the process (the log stays as it is)."""
    task = asyncio.create_task(runner.run())
    await until(waiting(sink, step_id))
    await until(lambda: runner.waiting_for_signal or bool(clock.sleeps))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return list(sink.events)


async def test_a_timer_survives_a_restart_without_starting_again() -> None:
    """A restart 10s into a 30s sleep sleeps 20s more: the deadline is in the log."""
    clock, sink = ManualClock(), ListSink()
    data = {"not_before": (START + timedelta(minutes=5)).isoformat()}
    log = await stopped_while_waiting(
        runner_for(COOLING_OFF, clock, sink, data=data), clock, sink, "cool_off"
    )
    assert log[-1].type is EventType.STEP_WAITING
    assert log[-1].deadline == START + timedelta(seconds=30)
    clock.advance(10)  # the server is down for 10s
    resumed = ListSink(events=list(log))
    runner = runner_for(COOLING_OFF, clock, resumed, data=data, resumption=Resumption(history=log))
    task = asyncio.create_task(runner.run())
    await until(lambda: len(clock.sleeps) == 2)
    assert clock.sleeps == [30.0, 20.0]
    assert not any(e.type is EventType.STEP_WAITING for e in resumed.events[len(log) :])
    clock.advance(20)
    await until(lambda: len(clock.sleeps) == 3)
    assert clock.sleeps[-1] == 270.0  # until 5 minutes after the start
    clock.advance(270)
    result = await task
    assert result.state is ExecutionState.COMPLETED
    assert resumed.types()[-3:] == [
        ("STEP_STARTED", "refund"),
        ("STEP_SUCCEEDED", "refund"),
        ("WORKFLOW_COMPLETED", ""),
    ]


async def test_a_wait_survives_a_restart_and_takes_a_signal_sent_meanwhile() -> None:
    """Stopped while waiting; the signal sent while down is read with the log on resume."""
    clock, sink = ManualClock(), ListSink()
    log = await stopped_while_waiting(
        runner_for(PAYMENT, clock, sink), clock, sink, "await_payment"
    )
    clock.advance(600)
    resumed = ListSink(events=list(log))
    sent = [signal("paid", "sig-1", 1, amount=5)]
    runner = runner_for(PAYMENT, clock, resumed, resumption=Resumption(history=log, signals=sent))
    result = await runner.run()
    assert result.output == {"amount": 5}
    assert clock.sleeps == [3600.0]  # the resumed wait found its signal before any timer


async def test_a_wait_resumed_after_its_signal_was_taken_finishes_with_it() -> None:
    """SIGNAL_RECEIVED is in the log but not the success: the same signal, not a new one."""
    clock, sink = ManualClock(), ListSink()
    runner = runner_for(PAYMENT, clock, sink)
    runner.deliver([signal("paid", "sig-1", 1, amount=9)])
    await runner.run()
    cut = next(i for i, e in enumerate(sink.events) if e.type is EventType.SIGNAL_RECEIVED) + 1
    log = sink.events[:cut]
    resumed = ListSink(events=list(log))
    sent = [signal("paid", "sig-1", 1, amount=9), signal("paid", "sig-2", 2, amount=1)]
    again = runner_for(PAYMENT, clock, resumed, resumption=Resumption(history=log, signals=sent))
    result = await again.run()
    assert result.output == {"amount": 9}
    assert len(of(resumed, EventType.SIGNAL_RECEIVED)) == 1


async def test_a_sleep_until_a_past_time_ends_at_once_and_a_bad_time_fails() -> None:
    """`until` in the past: no wait; `until` that is not a time: the step fails, clearly."""
    clock, sink = ManualClock(), ListSink()
    data = {"not_before": "2020-01-01T00:00:00Z"}
    runner = runner_for(COOLING_OFF, clock, sink, data=data)
    task = asyncio.create_task(runner.run())
    await until(lambda: len(clock.sleeps) == 1)
    clock.advance(30)
    assert (await task).state is ExecutionState.COMPLETED
    assert clock.sleeps == [30.0]
    clock, sink = ManualClock(), ListSink()
    runner = runner_for(COOLING_OFF, clock, sink, data={"not_before": "soon"})
    task = asyncio.create_task(runner.run())
    await until(lambda: len(clock.sleeps) == 1)
    clock.advance(30)
    result = await task
    assert result.state is ExecutionState.FAILED
    assert result.error is not None and result.error.code == "TEMPLATE_ERROR"
    assert "'sleep.until' must render to an RFC 3339 time" in result.error.message


CRASHABLE = """
name: crashable
services:
  billing: {type: grpc, endpoint: "billing:50051"}
steps:
  - id: reserve
    service: billing
    method: Reserve
  - id: first
    wait: {signal: paid, timeout: 1h}
    output: one
  - id: pause
    sleep: 1s
  - id: second
    wait: {signal: paid}
    output: two
output: {one: "{{ .one.n }}", two: "{{ .two.n }}"}
"""


async def test_a_crash_at_any_point_takes_each_signal_once_in_order() -> None:
    """Whatever prefix of the log a crash leaves, the resumed run takes signal a for the first
    wait and b for the second, each SIGNAL_RECEIVED once, and waits each step once."""
    sent = [signal("paid", "a", 1, n=1), signal("paid", "b", 2, n=2)]

    def runner(sink: Any, resumption: Resumption | None = None) -> Runner:
        clock = FakeClock()  # sleeps end at once; the signals are there before any timer
        deps = Dependencies(
            invoker=ScriptedInvoker(), sink=sink, breakers=BreakerRegistry(clock), clock=clock
        )
        run = Runner(load_workflow(CRASHABLE), "ex-1", {}, deps, resumption=resumption)
        run.deliver(sent)
        return run

    whole = ListSink()
    await runner(whole).run()
    assert len(whole.events) == 12
    for keep in range(1, len(whole.events)):
        crashing = CrashingSink(keep)
        with contextlib.suppress(BaseException):  # the crash surfaces where it happens
            await runner(crashing).run()
        resumed = ListSink(events=list(crashing.events))
        result = await runner(resumed, Resumption(history=crashing.events)).run()
        assert result.output == {"one": 1, "two": 2}, keep
        received = [(e.step_id, e.signal_id) for e in of(resumed, EventType.SIGNAL_RECEIVED)]
        assert received == [("first", "a"), ("second", "b")], keep
        waited = [e.step_id for e in of(resumed, EventType.STEP_WAITING)]
        assert waited == ["first", "pause", "second"], keep
        assert [e.sequence for e in resumed.events] == list(range(1, len(resumed.events) + 1))
