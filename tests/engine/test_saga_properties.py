"""Saga invariants under random workflows and random failure schedules (hypothesis).

Driven through the scripted invoker (see fakes.py): each example runs a whole execution on a
virtual clock, so hundreds of schedules take a few seconds.
"""

import asyncio
import os
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro_server.definition import load_workflow
from maestro_server.engine.dependencies import Dependencies
from maestro_server.engine.runner import Runner
from maestro_server.model.execution import EventType, ExecutionState
from maestro_server.resilience.breaker import BreakerRegistry
from maestro_server.transports.base import Call, CallError
from tests.engine.fakes import FakeClock, ListSink, ScriptedInvoker

EXAMPLES = int(os.environ.get("MAESTRO_FUZZ_EXAMPLES", "200"))

OUTCOMES = st.sampled_from(["ok", "ok", "ok", "permanent", "flaky", "down", "timeout", "hang"])


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 6))
    steps = []
    for index in range(count):
        step: dict[str, Any] = {"id": f"s{index}", "service": "svc", "method": f"M{index}"}
        if index and draw(st.booleans()):
            step["depends_on"] = sorted(
                draw(st.sets(st.sampled_from([f"s{i}" for i in range(index)])))
            )
        if draw(st.booleans()):
            step["compensate"] = {"method": f"Undo{index}"}
        if draw(st.integers(0, 9)) == 0:
            step["continue_on_error"] = True
        if draw(st.integers(0, 9)) == 0:
            step["when"] = "{{ false }}"
        steps.append(step)
    return {
        "steps": steps,
        "forward": {s["id"]: draw(OUTCOMES) for s in steps},
        "undo": {
            s["id"]: draw(st.sampled_from(["ok", "ok", "ok", "flaky", "broken"])) for s in steps
        },
    }


def behaviour(outcome: str) -> Any:
    async def answer(call: Call) -> Any:
        service = call.request.service.name
        if outcome == "permanent":
            raise CallError("INVALID_ARGUMENT", "no", service=service)
        if outcome == "flaky" and call.attempt == 1:
            raise CallError("UNAVAILABLE", "blip", service=service)
        if outcome in ("down", "broken"):
            raise CallError("UNAVAILABLE", "down", service=service)
        if outcome == "timeout":
            raise CallError("DEADLINE_EXCEEDED", "slow", service=service, maybe_executed=True)
        if outcome == "hang":  # in flight long enough for a failing sibling to cancel it
            await asyncio.sleep(0.02)
        return {"ok": True}

    return answer


def build(scenario: dict[str, Any]) -> tuple[Runner, ListSink, ScriptedInvoker]:
    import yaml

    document = {
        "name": "prop",
        "timeout": "10m",
        "services": {
            "svc": {
                "type": "grpc",
                "endpoint": "svc:1",
                "circuit_breaker": {"enabled": False},
                "retry": {"max_attempts": 3, "initial_backoff": "1ms"},
            }
        },
        "steps": scenario["steps"],
    }
    script = {sid: behaviour(o) for sid, o in scenario["forward"].items()}
    script |= {f"{sid}:compensate": behaviour(o) for sid, o in scenario["undo"].items()}
    invoker = ScriptedInvoker(script)
    sink = ListSink()
    clock = FakeClock()
    runner = Runner(
        load_workflow(yaml.safe_dump(document)),
        "ex",
        {},
        Dependencies(
            invoker=invoker,
            sink=sink,
            breakers=BreakerRegistry(clock),
            clock=clock,
            rng=random.Random(0),
        ),
    )
    return runner, sink, invoker


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
async def test_saga_invariants(scenario: dict[str, Any]) -> None:
    """Terminal state, gap-free log, and compensation of exactly the completed steps, in reverse."""
    runner, sink, invoker = build(scenario)
    compensable = {s["id"] for s in scenario["steps"] if "compensate" in s}
    result = await runner.run()

    events = sink.events
    assert result.state.terminal
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].terminal and sum(e.terminal for e in events) == 1

    # Where each step first completed or fell in doubt (asking again keeps that place).
    completion = list(
        dict.fromkeys(
            event.step_id
            for event in events
            if event.type is EventType.STEP_SUCCEEDED
            or (event.type is EventType.STEP_FAILED and event.in_doubt)
        )
    )
    compensations = [e.step_id for e in events if e.type is EventType.COMPENSATION_STARTED]
    first_seen = list(dict.fromkeys(compensations))
    if result.state is ExecutionState.COMPLETED:
        assert first_seen == []
    else:
        assert first_seen == [sid for sid in reversed(completion) if sid in compensable]
        started_undo = next(
            (i for i, e in enumerate(events) if e.type is EventType.COMPENSATION_STARTED),
            len(events),
        )
        assert not any(
            e.type is EventType.STEP_STARTED and not e.probe for e in events[started_undo:]
        ), "no forward attempt after compensation began, but asking again about a step in doubt"
    for event in events:
        if event.type is EventType.STEP_SKIPPED:
            assert event.step_id not in first_seen
    attempts: dict[str, int] = {}
    for call in invoker.calls:
        attempts[call.request.idempotency_key] = max(
            attempts.get(call.request.idempotency_key, 0), call.attempt
        )
    for key, count in attempts.items():
        step_id = key.split(":")[1]
        # A step in doubt is asked again with its compensation's patience (10 attempts).
        limit = 10 if key.endswith(":compensate") else 3 + 10 * (step_id in compensable)
        assert count <= limit, key
    if result.state is ExecutionState.COMPENSATION_FAILED:
        assert set(result.failed_compensations) == {
            e.step_id for e in events if e.type is EventType.COMPENSATION_FAILED
        }
