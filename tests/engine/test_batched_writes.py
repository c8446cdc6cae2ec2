"""Events produced together are written together, and a call waits for its start on disk."""

from typing import Any

from maestro_server.definition import load_workflow
from maestro_server.engine.dependencies import Dependencies
from maestro_server.engine.runner import Runner
from maestro_server.model.execution import EventType, ExecutionState
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.store.base import LogEntries
from maestro_server.transports.base import Call
from tests.definition.test_load import SEED
from tests.engine.fakes import FakeClock, ScriptedInvoker, fail
from tests.engine.test_runner import INPUT, SUBSCRIPTION


class BatchSink:
    """Keeps each write as it came, to count them and to see what was durable when."""

    def __init__(self) -> None:
        self.writes: list[LogEntries] = []

    async def append(self, entries: LogEntries) -> None:
        self.writes.append(entries)

    def durable(self) -> list[tuple[EventType, str]]:
        return [(e.type, e.step_id) for w in self.writes for e in w.events]


async def test_a_saga_of_n_steps_is_n_plus_one_writes() -> None:
    """The seed's four steps: the first write starts the run and its first step, each next one
    holds a step's success with the next step's start, the last the success with the end."""
    sink = BatchSink()
    invoker = ScriptedInvoker(
        {"create_user": lambda c: {"id": "u-1"}, "setup_subscription": lambda c: SUBSCRIPTION}
    )
    result = await _runner(invoker, sink).run()
    assert result.state is ExecutionState.COMPLETED
    assert [[e.type for e in w.events] for w in sink.writes] == [
        [EventType.WORKFLOW_STARTED, EventType.STEP_STARTED],
        [EventType.STEP_SUCCEEDED, EventType.STEP_STARTED],
        [EventType.STEP_SUCCEEDED, EventType.STEP_STARTED],
        [EventType.STEP_SUCCEEDED, EventType.STEP_STARTED],
        [EventType.STEP_SUCCEEDED, EventType.WORKFLOW_COMPLETED],
    ]
    # Each request is written with the start of its step's first attempt.
    assert [sorted(w.requests) for w in sink.writes[:4]] == [
        ["ex-1:create_user"],
        ["ex-1:setup_subscription"],
        ["ex-1:add_to_crm"],
        ["ex-1:send_welcome_email"],
    ]
    assert sink.writes[-1].progress.state is ExecutionState.COMPLETED


async def test_every_call_goes_out_after_its_start_and_request_are_durable() -> None:
    """Forward attempts, retries and compensations alike: when the service is called, the log
    on disk already shows the attempt started, and its request is kept."""
    sink = BatchSink()
    seen: list[tuple[str, int]] = []

    def check(answer: Any) -> Any:
        def behaviour(call: Call) -> Any:
            key = call.request.idempotency_key
            step_id = key.split(":")[1]
            kind = EventType.COMPENSATION_STARTED if key.endswith(":compensate") else None
            last = [e for w in sink.writes for e in w.events][-1]
            assert last.step_id == step_id and last.attempt == call.attempt
            assert last.type is (kind or EventType.STEP_STARTED)
            assert any(key in w.requests for w in sink.writes)
            seen.append((key, call.attempt))
            return answer(call) if callable(answer) else answer

        return behaviour

    invoker = ScriptedInvoker(
        {
            "create_user": check({"id": "u-1"}),
            "setup_subscription": check(SUBSCRIPTION),
            "add_to_crm": check(fail("UNAVAILABLE", times=1)),
            "send_welcome_email": check(fail("INVALID_ARGUMENT")),
            "setup_subscription:compensate": check({}),
            "add_to_crm:compensate": check({}),
        }
    )
    result = await _runner(invoker, sink).run()
    assert result.state is ExecutionState.COMPENSATED
    assert ("ex-1:add_to_crm", 2) in seen and ("ex-1:setup_subscription:compensate", 1) in seen


def _runner(invoker: ScriptedInvoker, sink: BatchSink) -> Runner:
    clock = FakeClock()
    deps = Dependencies(invoker=invoker, sink=sink, breakers=BreakerRegistry(clock), clock=clock)
    return Runner(load_workflow(SEED), "ex-1", INPUT, deps)
