"""Sub-workflow steps: child executions in the store, their sagas, and their parent's.

The manager runs parents and children over the memory store (the SQL stores keep the same
contract, tests/store); calls go to the scripted invoker, whose keys name the child's steps
by the child's id: `charge:hold` is step `hold` of child `o1:charge`.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from maestro_server.definition import load_workflow
from maestro_server.engine.manager import ExecutionManager
from maestro_server.engine.runner import Resumption, Runner
from maestro_server.model.execution import (
    Cause,
    ErrorInfo,
    Event,
    EventType,
    ExecutionState,
    StepState,
)
from maestro_server.model.progress import replay
from maestro_server.model.workflow import Workflow
from maestro_server.store.base import (
    ExecutionRecord,
    LogEntries,
    SavedExecution,
    stored_workflow,
)
from maestro_server.store.memory import MemoryStore
from tests.engine.fakes import ListSink, ScriptedInvoker, fail
from tests.engine.test_for_each import deps
from tests.engine.test_recovery import Crash, CrashingSink

PAYMENT = """\
name: payment
services:
  bank: {type: http, endpoint: "http://bank:8080", retry: {max_attempts: 1}}
steps:
  - id: hold
    service: bank
    method: POST /holds
    input: {amount: "{{ .input.amount }}"}
    output: hold
    compensate: {method: "DELETE /holds/{{ .hold.id }}"}
  - id: capture
    service: bank
    method: POST /captures
    output: capture
    compensate: {method: POST /refunds}
output: {capture: "{{ .capture.id }}"}
"""

ORDER = """\
name: order
services:
  shop: {type: http, endpoint: "http://shop:8080", retry: {max_attempts: 1}}
steps:
  - id: open
    service: shop
    method: POST /orders
    compensate: {method: POST /orders/cancel}
  - id: charge
    workflow: WORKFLOW
    input: {amount: "{{ .input.amount }}"}
    output: payment
  - id: ship
    service: shop
    method: POST /shipments
    input: {capture: "{{ .payment.capture }}"}
output: {payment: "{{ .payment }}"}
"""


def order(workflow: str = "{file: payment.yaml}") -> Workflow:
    return load_workflow(
        ORDER.replace("WORKFLOW", workflow),
        path="order.yaml",
        files={"payment.yaml": PAYMENT.encode()},
    )


async def finished(store: MemoryStore, execution_id: str) -> ExecutionRecord:
    """The execution once it ended (following its log through the store)."""
    async with asyncio.timeout(10):
        async for _ in store.watch(execution_id, 0):
            pass
    return await store.get_execution(execution_id)


async def settled(store: MemoryStore, execution_id: str, state: ExecutionState) -> list[Event]:
    """The log once the execution reached `state` (a compensated child ends twice)."""
    async with asyncio.timeout(10):
        while (await store.get_execution(execution_id)).state is not state:
            async for event in store.watch(
                execution_id, (await store.get_execution(execution_id)).last_sequence
            ):
                if event.terminal:
                    break
    return await store.read_events(execution_id)


def keys(invoker: ScriptedInvoker) -> list[str]:
    return [call.request.idempotency_key.split(":", 1)[1] for call in invoker.calls]


async def run(
    workflow: Workflow, script: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[MemoryStore, ScriptedInvoker, ExecutionRecord]:
    store = MemoryStore()
    invoker = ScriptedInvoker(script or {})
    manager = ExecutionManager(store, invoker, **kwargs)
    await manager.start(workflow, {"amount": 12}, "o1")
    return store, invoker, await finished(store, "o1")


async def test_a_child_that_completes_gives_its_output_to_the_step() -> None:
    """The child is an execution of its own, `<parent>:<step>`, naming its parent; its
    workflow output is the step's output, read by later steps and the parent's output."""
    store, invoker, parent = await run(order())
    assert parent.state is ExecutionState.COMPLETED
    assert parent.output == {"payment": {"capture": "charge:capture-id"}}
    assert keys(invoker) == ["open", "charge:hold", "charge:capture", "ship"]
    assert invoker.calls[1].request.payload == {"amount": 12}
    child = await store.get_execution("o1:charge")
    assert (child.state, child.parent_execution_id) == (ExecutionState.COMPLETED, "o1")
    assert child.workflow_name == "payment"
    assert parent.steps["charge"].child_execution_id == "o1:charge"
    charge = [e for e in await store.read_events("o1") if e.step_id == "charge"]
    assert [(e.type, e.child_execution_id) for e in charge] == [
        (EventType.STEP_STARTED, "o1:charge"),
        (EventType.STEP_WAITING, "o1:charge"),  # the child exists by then
        (EventType.STEP_SUCCEEDED, "o1:charge"),
    ]
    page = await store.list_executions("", frozenset(), 0, "", parent_execution_id="o1")
    assert [r.execution_id for r in page.items] == ["o1:charge"]


async def test_a_child_that_fails_fails_the_step_and_the_parent_compensates() -> None:
    """The child undoes itself (its hold released); the step fails for good, naming the child
    and its error, and the parent undoes its earlier steps, not the child again."""
    store, invoker, parent = await run(order(), {"charge:capture": fail("INVALID_ARGUMENT")})
    assert parent.state is ExecutionState.COMPENSATED
    child = await store.get_execution("o1:charge")
    assert child.state is ExecutionState.COMPENSATED
    assert keys(invoker) == [
        "open",
        "charge:hold",
        "charge:capture",
        "charge:hold:compensate",
        "open:compensate",
    ]
    error = parent.steps["charge"].error
    assert error is not None and error.code == "CHILD_FAILED"
    assert "'o1:charge' ended compensated: INVALID_ARGUMENT" in error.message
    assert parent.steps["charge"].state is StepState.FAILED


async def test_a_parent_that_compensates_undoes_its_completed_child_in_reverse_order() -> None:
    """A later step fails: the completed child turns COMPENSATING, its steps are undone in
    reverse order, it ends COMPENSATED; then the parent's earlier step."""
    store, invoker, parent = await run(order(), {"ship": fail("INVALID_ARGUMENT")})
    assert parent.state is ExecutionState.COMPENSATED
    assert keys(invoker)[3:] == [
        "ship",
        "charge:capture:compensate",
        "charge:hold:compensate",
        "open:compensate",
    ]
    events = await settled(store, "o1:charge", ExecutionState.COMPENSATED)
    assert [e.type for e in events].count(EventType.WORKFLOW_COMPLETED) == 1
    assert events[-1].type is EventType.WORKFLOW_COMPENSATED
    assert parent.steps["charge"].state is StepState.COMPENSATED


class ForgetsChildDefinitions(MemoryStore):
    """A store whose children's definitions no longer load when read again (as after an
    upgrade that refuses them): a completed child cannot be reopened."""

    async def saved_executions(self, execution_ids: Sequence[str]) -> list[SavedExecution]:
        found = await super().saved_executions(execution_ids)
        return [
            replace(s, record=replace(s.record, source=replace(s.record.source, yaml="steps: [")))
            if s.record.source is not None and s.record.parent_execution_id
            else s
            for s in found
        ]


async def test_a_child_that_cannot_be_reopened_ends_the_parent_compensation_failed() -> None:
    """The parent's saga cannot reopen its completed child: rather than crash the parent's
    runner, or ask again and again, the step's compensation fails and so does the parent's,
    for an operator; the child is left COMPLETED, its effects named."""
    store = ForgetsChildDefinitions()
    invoker = ScriptedInvoker({"ship": fail("INVALID_ARGUMENT")})
    await ExecutionManager(store, invoker).start(order(), {"amount": 12}, "o1")
    parent = await finished(store, "o1")
    assert parent.state is ExecutionState.COMPENSATION_FAILED
    error = parent.steps["charge"].error
    assert error is not None and error.code == "COMPENSATION_FAILED"
    assert "'o1:charge' cannot be reopened to compensate" in error.message
    assert (await store.get_execution("o1:charge")).state is ExecutionState.COMPLETED
    assert keys(invoker) == ["open", "charge:hold", "charge:capture", "ship", "open:compensate"]


async def test_a_child_that_cannot_be_compensated_fails_the_parents_compensation() -> None:
    """The child's refund fails for good: it ends COMPENSATION_FAILED, and so does the
    parent's compensation of that step."""
    script = {"ship": fail("INVALID_ARGUMENT"), "charge:capture:compensate": fail("INTERNAL")}
    store, _, parent = await run(order(), script)
    assert parent.state is ExecutionState.COMPENSATION_FAILED
    child = await store.get_execution("o1:charge")
    assert child.state is ExecutionState.COMPENSATION_FAILED
    error = parent.steps["charge"].error
    assert error is not None and "'o1:charge' could not be compensated" in error.message


async def test_for_each_runs_a_child_per_element() -> None:
    """Each element is a child `<parent>:<step>[<index>]`; the output lists their outputs."""
    workflow = load_workflow(
        """\
name: batch
services:
  shop: {type: http, endpoint: "http://shop:8080"}
steps:
  - id: pay
    for_each: "{{ .input.amounts }}"
    concurrency: 2
    workflow: {file: payment.yaml}
    input: {amount: "{{ .item }}"}
    output: payments
output: {payments: "{{ .payments }}"}
""",
        files={"payment.yaml": PAYMENT.encode()},
    )
    store = MemoryStore()
    manager = ExecutionManager(store, ScriptedInvoker())
    await manager.start(workflow, {"amounts": [1, 2, 3]}, "b1")
    parent = await finished(store, "b1")
    assert parent.state is ExecutionState.COMPLETED
    assert parent.output == {"payments": [{"capture": f"pay[{n}]:capture-id"} for n in range(3)]}
    page = await store.list_executions("", frozenset(), 0, "", parent_execution_id="b1")
    assert sorted(r.execution_id for r in page.items) == [f"b1:pay[{n}]" for n in range(3)]
    assert parent.steps["pay"].elements[2].child_execution_id == "b1:pay[2]"


WAITING_CHILD = """\
name: approval
services:
  shop: {type: http, endpoint: "http://shop:8080"}
steps:
  - id: approved
    wait: {signal: approved}
"""


async def test_cancelling_the_parent_cancels_its_running_child() -> None:
    """The cancel reaches the child through the store; both end CANCELLED."""
    workflow = load_workflow(
        "name: p\nservices: {shop: {type: http, endpoint: 'http://shop:8080'}}\nsteps:\n  - id: approve\n    workflow: {file: a.yaml}\n",
        files={"a.yaml": WAITING_CHILD.encode()},
    )
    store = MemoryStore()
    manager = ExecutionManager(store, ScriptedInvoker())
    await manager.start(workflow, {}, "p1")
    async with asyncio.timeout(10):
        while (await store.list_executions("", frozenset(), 0, "", "p1")).items == []:
            await asyncio.sleep(0)  # the child is created right after the parent's STEP_STARTED
        async for event in store.watch("p1:approve", 0):
            if event.type is EventType.STEP_WAITING:
                break
    await manager.cancel("p1", "changed my mind")
    assert (await finished(store, "p1")).state is ExecutionState.CANCELLED
    child = await finished(store, "p1:approve")
    assert child.state is ExecutionState.CANCELLED


async def test_a_second_start_finds_the_same_child() -> None:
    """Starting a child is create-if-absent: a restarted parent never makes a second one."""
    store, _, _ = await run(order())
    manager = ExecutionManager(store, ScriptedInvoker())
    step = order().step("charge")
    assert step.workflow is not None
    await manager.children.start_child("o1", "o1:charge", step.workflow, {"amount": 12})
    page = await store.list_executions("", frozenset(), 0, "")
    assert sorted(r.execution_id for r in page.items) == ["o1", "o1:charge"]


async def test_a_child_deeper_than_the_limit_fails_its_step() -> None:
    """With a depth limit of 1, no child may start: the step fails, nothing was created."""
    store, _, parent = await run(order(), max_workflow_depth=1)
    assert parent.state is ExecutionState.COMPENSATED
    error = parent.steps["charge"].error
    assert error is not None and error.code == "WORKFLOW_DEPTH_EXCEEDED"
    with pytest.raises(Exception, match="does not exist"):
        await store.get_execution("o1:charge")


async def test_a_registered_child_runs_the_version_latest_when_the_parent_started() -> None:
    """The version is pinned with the parent's source: a later registration changes nothing."""
    store = MemoryStore()
    payment = load_workflow(PAYMENT.replace("name: payment", "name: payment\nversion: '1'"))
    await store.put_workflow(stored_workflow(payment, "payment.yaml", payment_time()))
    manager = ExecutionManager(store, ScriptedInvoker())
    await manager.start(order("{name: payment}"), {"amount": 5}, "o1")
    parent = await store.get_execution("o1")
    assert parent.source is not None and parent.source.versions == {"payment": "1"}
    assert (await finished(store, "o1")).state is ExecutionState.COMPLETED
    assert (await store.get_execution("o1:charge")).workflow_version == "1"


def payment_time() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 1, 1, tzinfo=UTC)


async def test_a_completed_childs_compensation_resumes_after_a_crash_midway() -> None:
    """The reopened child's log is its truth: a runner that dies after the first compensation
    leaves it COMPENSATING; resumed from that log, it undoes only what is left and ends
    COMPENSATED, each compensation sent once."""
    payment = load_workflow(PAYMENT)
    invoker = ScriptedInvoker()
    done = ListSink()
    await Runner(payment, "c1", {"amount": 1}, deps(invoker, done)).run()
    crashing = CrashingSink(len(done.events) + 2)  # capture undone; hold not yet started
    crashing.events.extend(done.events)
    crashing.requests.update(done.requests)
    undoing = Runner(
        payment,
        "c1",
        {"amount": 1},
        deps(invoker, crashing),
        resumption=Resumption(list(done.events), dict(done.requests), undo=True),
    )
    with pytest.raises(Crash):
        await undoing.run()
    first = crashing.events[len(done.events)]
    assert (first.type, first.cause) == (EventType.COMPENSATION_STARTED, Cause.PARENT_COMPENSATING)
    assert replay(crashing.events).state is ExecutionState.COMPENSATING
    resumed_sink = ListSink()
    resumed = Runner(
        payment,
        "c1",
        {"amount": 1},
        deps(invoker, resumed_sink),
        resumption=Resumption(list(crashing.events), dict(crashing.requests)),
    )
    result = await resumed.run()
    assert result.state is ExecutionState.COMPENSATED
    assert keys(invoker) == ["hold", "capture", "capture:compensate", "hold:compensate"]


async def test_undoing_a_child_again_changes_nothing() -> None:
    """A child already COMPENSATED counts as undone: no event, no call."""
    store, invoker, _ = await run(order(), {"ship": fail("INVALID_ARGUMENT")})
    before = await store.read_events("o1:charge")
    calls = len(invoker.calls)
    manager = ExecutionManager(store, invoker)
    told: list[str] = []

    async def undoing() -> None:
        told.append("undoing")

    assert await manager.children.undo_child("o1", "o1:charge", "again", undoing) is None
    assert told == []  # nothing was on its way
    assert await store.read_events("o1:charge") == before
    assert len(invoker.calls) == calls


async def test_a_later_failure_compensates_every_child_of_a_for_each_step() -> None:
    """Each element's child is undone, in reverse order of completion, then the parent ends."""
    workflow = load_workflow(
        """\
name: batch
services:
  shop: {type: http, endpoint: "http://shop:8080", retry: {max_attempts: 1}}
steps:
  - id: pay
    for_each: "{{ .input.amounts }}"
    workflow: {file: payment.yaml}
    input: {amount: "{{ .item }}"}
  - id: ship
    service: shop
    method: POST /shipments
""",
        files={"payment.yaml": PAYMENT.encode()},
    )
    store = MemoryStore()
    invoker = ScriptedInvoker({"ship": fail("INVALID_ARGUMENT")})
    manager = ExecutionManager(store, invoker)
    await manager.start(workflow, {"amounts": [1, 2]}, "b1")
    parent = await finished(store, "b1")
    assert parent.state is ExecutionState.COMPENSATED
    for index in (0, 1):
        child = await store.get_execution(f"b1:pay[{index}]")
        assert child.state is ExecutionState.COMPENSATED
    undone = [k for k in keys(invoker) if k.endswith(":compensate")]
    assert undone == [
        "pay[1]:capture:compensate",
        "pay[1]:hold:compensate",
        "pay[0]:capture:compensate",
        "pay[0]:hold:compensate",
    ]


async def test_a_child_that_outlasts_the_step_timeout_is_cancelled() -> None:
    """The step's timeout bounds the wait: the child is cancelled, the step fails with
    DEADLINE_EXCEEDED, and the parent's saga finds the child undone."""
    workflow = load_workflow(
        "name: p\nservices: {shop: {type: http, endpoint: 'http://shop:8080'}}\nsteps:\n"
        "  - id: approve\n    workflow: {file: a.yaml}\n    timeout: 20ms\n",
        files={"a.yaml": WAITING_CHILD.encode()},
    )
    store = MemoryStore()
    manager = ExecutionManager(store, ScriptedInvoker())
    await manager.start(workflow, {}, "p1")
    parent = await finished(store, "p1")
    assert parent.state is ExecutionState.COMPENSATED
    error = parent.steps["approve"].error
    assert error is not None and error.code == "DEADLINE_EXCEEDED"
    assert (await store.get_execution("p1:approve")).state is ExecutionState.CANCELLED


async def test_resuming_the_parent_retries_its_childs_failed_compensation() -> None:
    """The child's refund failed for good; once the bank answers, an operator's resume of the
    parent resumes the child too: both end COMPENSATED, the refund sent again under its key."""
    refunds = {"fail": True}

    def refund(call: Any) -> Any:
        if refunds["fail"]:
            return fail("INTERNAL")(call)
        return {"id": "refunded"}

    store, invoker, parent = await run(
        order(), {"ship": fail("INVALID_ARGUMENT"), "charge:capture:compensate": refund}
    )
    assert parent.state is ExecutionState.COMPENSATION_FAILED
    refunds["fail"] = False
    manager = ExecutionManager(store, invoker)
    await manager.resume("o1")
    assert (await settled(store, "o1", ExecutionState.COMPENSATED))[-1].type is (
        EventType.WORKFLOW_COMPENSATED
    )
    assert (await store.get_execution("o1:charge")).state is ExecutionState.COMPENSATED
    assert keys(invoker).count("charge:hold:compensate") == 1


async def test_a_child_left_compensation_failed_is_not_reported_compensated_by_its_parent() -> None:
    """The child fails and cannot undo its hold: it may have left effects, so the parent's
    step is in doubt; the parent's saga retries the child's compensation once (as a resume
    would) and, still failing, ends COMPENSATION_FAILED rather than COMPENSATED (G5)."""
    script = {
        "charge:capture": fail("INVALID_ARGUMENT"),
        "charge:hold:compensate": fail("INTERNAL"),
    }
    store, invoker, parent = await run(order(), script)
    child = await store.get_execution("o1:charge")
    assert child.state is ExecutionState.COMPENSATION_FAILED
    assert parent.state is ExecutionState.COMPENSATION_FAILED
    assert parent.steps["charge"].state is StepState.COMPENSATION_FAILED
    assert "open:compensate" in keys(invoker)  # the parent's other steps are undone still


OWN_COMPENSATE = """\
name: order
services:
  shop: {type: http, endpoint: "http://shop:8080", retry: {max_attempts: 1}}
steps:
  - id: charge
    workflow: {file: payment.yaml}
    input: {amount: "{{ .input.amount }}"}
    output: payment
    compensate:
      service: shop
      method: POST /refunds
      input: {capture: "{{ .payment.capture }}"}
"""


async def test_a_steps_own_compensation_waits_for_its_cancelled_child_to_end() -> None:
    """The parent is cancelled while its child waits: the step is in doubt, and its own
    `compensate` must not run while the child may still act. The child, cancelled, undoes
    itself (it ends CANCELLED): nothing is left for the step's compensation to undo."""
    workflow = load_workflow(
        OWN_COMPENSATE.replace("payment.yaml", "a.yaml")
        .replace('input: {capture: "{{ .payment.capture }}"}', "")
        .replace('    input: {amount: "{{ .input.amount }}"}\n', ""),
        files={"a.yaml": WAITING_CHILD.encode()},
    )
    store = MemoryStore()
    child_states: list[ExecutionState] = []

    async def refund(call: Any) -> Any:
        child_states.append((await store.get_execution("o1:charge")).state)
        return {}

    invoker = ScriptedInvoker({"charge:compensate": refund})
    manager = ExecutionManager(store, invoker)
    await manager.start(workflow, {}, "o1")
    async with asyncio.timeout(10):
        while (await store.list_executions("", frozenset(), 0, "", "o1")).items == []:
            await asyncio.sleep(0)
        async for event in store.watch("o1:charge", 0):
            if event.type is EventType.STEP_WAITING:
                break
    await manager.cancel("o1", "changed my mind")
    assert (await finished(store, "o1")).state is ExecutionState.CANCELLED
    assert (await finished(store, "o1:charge")).state is ExecutionState.CANCELLED
    assert all(state.terminal for state in child_states), child_states
    assert child_states == []  # the child undid itself


async def test_a_step_in_doubt_compensates_with_the_output_of_a_child_that_completed() -> None:
    """The parent stopped while its child ran, but the child completed anyway: the step's own
    compensation runs with the child's output (as a call in doubt is asked again first)."""
    workflow = load_workflow(OWN_COMPENSATE, files={"payment.yaml": PAYMENT.encode()})
    step = workflow.step("charge")
    assert step.workflow is not None
    store = MemoryStore()
    invoker = ScriptedInvoker()
    manager = ExecutionManager(store, invoker)
    await manager.children.start_child("o1", "o1:charge", step.workflow, {"amount": 12})
    assert (await finished(store, "o1:charge")).state is ExecutionState.COMPLETED
    t = payment_time()
    stopped = ErrorInfo("STEP_CANCELLED", "execution cancelled: changed my mind")
    log = [
        Event("o1", 1, t, EventType.WORKFLOW_STARTED, ExecutionState.RUNNING),
        Event(
            "o1",
            2,
            t,
            EventType.STEP_STARTED,
            ExecutionState.RUNNING,
            "charge",
            attempt=1,
            child_execution_id="o1:charge",
        ),
        Event(
            "o1",
            3,
            t,
            EventType.STEP_WAITING,
            ExecutionState.RUNNING,
            "charge",
            child_execution_id="o1:charge",
        ),
        Event(
            "o1",
            4,
            t,
            EventType.STEP_FAILED,
            ExecutionState.COMPENSATING,
            "charge",
            attempt=1,
            error=stopped,
            in_doubt=True,
            cause=Cause.CANCELLED,
        ),
    ]
    sink = ListSink()
    runner = Runner(
        workflow,
        "o1",
        {"amount": 12},
        deps(invoker, sink, children=manager.children),
        resumption=Resumption(log, {}),
    )
    result = await runner.run()
    assert result.state is ExecutionState.CANCELLED
    refunds = [c for c in invoker.calls if c.request.idempotency_key == "o1:charge:compensate"]
    assert [c.request.payload for c in refunds] == [{"capture": "charge:capture-id"}]
    assert (await store.get_execution("o1:charge")).state is ExecutionState.COMPLETED


async def test_elements_own_compensation_is_not_run_for_children_that_undid_themselves() -> None:
    """A for_each of children with its own `compensate`, cancelled while both children wait:
    each element is in doubt until its child ends; both children end CANCELLED, so no element
    is compensated (nothing was left to undo)."""
    workflow = load_workflow(
        """\
name: batch
services:
  shop: {type: http, endpoint: "http://shop:8080", retry: {max_attempts: 1}}
steps:
  - id: approve
    for_each: "{{ .input.items }}"
    concurrency: 2
    workflow: {file: a.yaml}
    compensate: {service: shop, method: POST /unapprove}
""",
        files={"a.yaml": WAITING_CHILD.encode()},
    )
    store = MemoryStore()
    invoker = ScriptedInvoker()
    manager = ExecutionManager(store, invoker)
    await manager.start(workflow, {"items": [1, 2]}, "b1")
    async with asyncio.timeout(10):
        for index in (0, 1):
            child = f"b1:approve[{index}]"
            while child not in [
                r.execution_id
                for r in (await store.list_executions("", frozenset(), 0, "", "b1")).items
            ]:
                await asyncio.sleep(0)  # created right after the element's STEP_STARTED
            async for event in store.watch(child, 0):
                if event.type is EventType.STEP_WAITING:
                    break
    await manager.cancel("b1", "changed my mind")
    assert (await finished(store, "b1")).state is ExecutionState.CANCELLED
    for index in (0, 1):
        assert (await finished(store, f"b1:approve[{index}]")).state is ExecutionState.CANCELLED
    assert [k for k in keys(invoker) if k.endswith("compensate")] == []


async def test_a_parent_never_cancels_or_compensates_an_execution_that_is_not_its_child() -> None:
    """A client's own execution already holds the id `o1:charge`: the parent's step can only
    fail to start it. Stopped in doubt there (here: cancelled, as a restart finds it), the
    parent's saga leaves that execution alone: not cancelled, not reopened, not undone."""
    store = MemoryStore()
    invoker = ScriptedInvoker()
    manager = ExecutionManager(store, invoker)
    await manager.start(load_workflow(PAYMENT), {"amount": 1}, "o1:charge")
    assert (await finished(store, "o1:charge")).state is ExecutionState.COMPLETED
    workflow = order()
    t = payment_time()
    stopped = ErrorInfo("STEP_CANCELLED", "execution cancelled: changed my mind")
    log = [
        Event("o1", 1, t, EventType.WORKFLOW_STARTED, ExecutionState.RUNNING),
        Event("o1", 2, t, EventType.STEP_STARTED, ExecutionState.RUNNING, "open", attempt=1),
        Event("o1", 3, t, EventType.STEP_SUCCEEDED, ExecutionState.RUNNING, "open", attempt=1),
        Event(
            "o1", 4, t, EventType.STEP_STARTED, ExecutionState.RUNNING, "charge", attempt=1,
            child_execution_id="o1:charge",
        ),
        Event(
            "o1", 5, t, EventType.STEP_FAILED, ExecutionState.COMPENSATING, "charge", attempt=1,
            error=stopped, in_doubt=True, cause=Cause.CANCELLED,
        ),
    ]  # fmt: skip
    calls = len(invoker.calls)
    runner = Runner(
        workflow,
        "o1",
        {"amount": 12},
        deps(invoker, ListSink(), children=manager.children),
        resumption=Resumption(log, {}),
    )
    assert (await runner.run()).state is ExecutionState.CANCELLED
    assert keys(invoker)[calls:] == ["open:compensate"]
    other = await store.get_execution("o1:charge")
    assert (other.state, other.cancel_reason) == (ExecutionState.COMPLETED, None)


class RenewsAcrossAReopen(MemoryStore):
    """Leases as a shared store keeps them: an execution that ended has no owner, so a renewal
    does not keep it. The renewal that first asks about the child `o1:charge` is answered
    (the child not owned: it had completed when the renewal ran) only once the parent's saga
    has reopened the child, which then runs under a new runner."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()
        self.reopened = asyncio.Event()
        self.answered = asyncio.Event()

    async def renew_leases(self, execution_ids: list[str]) -> set[str]:
        if "o1:charge" not in execution_ids or self.asked.is_set():
            return set(execution_ids)
        self.asked.set()
        await self.reopened.wait()
        asyncio.get_running_loop().call_soon(self.answered.set)  # once the answer is used
        return set(execution_ids) - {"o1:charge"}

    async def append(self, entries: LogEntries) -> None:
        await super().append(entries)
        if any(e.cause is Cause.PARENT_COMPENSATING for e in entries.events):
            self.reopened.set()


async def test_a_renewal_that_missed_a_finished_child_does_not_stop_its_reopened_runner() -> None:
    """The renewal asked about the child's first runner, which ended (completed) meanwhile;
    the parent's saga reopened the child under a new runner. Not owned when the renewal ran,
    the child is not taken for lost now: its new runner compensates it, and the parent ends."""
    store = RenewsAcrossAReopen()

    async def capture(call: Any) -> Any:
        await store.asked.wait()  # the renewal has the child's first runner in hand
        return {"id": "c1"}

    async def refund(call: Any) -> Any:
        await store.answered.wait()  # in flight when the renewal's answer is acted on
        return {}

    script = {
        "charge:capture": capture,
        "charge:capture:compensate": refund,
        "ship": fail("INVALID_ARGUMENT"),
    }
    manager = ExecutionManager(store, ScriptedInvoker(script))
    upkeep = asyncio.create_task(manager.keep_leases(0))
    try:
        await manager.start(order(), {"amount": 12}, "o1")
        parent = await finished(store, "o1")
    finally:
        upkeep.cancel()
    assert parent.state is ExecutionState.COMPENSATED
    assert (await store.get_execution("o1:charge")).state is ExecutionState.COMPENSATED


async def test_a_restarted_saga_cancels_a_running_child_before_its_steps_own_compensation() -> None:
    """The server stopped while the step's child waited and a sibling step had failed: after
    the restart the step is in doubt, its child still running. The saga cancels the child and
    waits for its end (rather than for ever) before deciding on the step's compensation."""
    workflow = load_workflow(
        """\
name: p
services:
  shop: {type: http, endpoint: "http://shop:8080", retry: {max_attempts: 1}}
steps:
  - id: approve
    workflow: {file: a.yaml}
    compensate: {service: shop, method: POST /unapprove}
  - id: other
    depends_on: []
    service: shop
    method: POST /other
""",
        files={"a.yaml": WAITING_CHILD.encode()},
    )
    step = workflow.step("approve")
    assert step.workflow is not None and step.workflow.definition is not None
    store = MemoryStore()
    invoker = ScriptedInvoker()
    manager = ExecutionManager(store, invoker)
    await manager.children.start_child("p1", "p1:approve", step.workflow, {})
    async with asyncio.timeout(10):
        async for event in store.watch("p1:approve", 0):
            if event.type is EventType.STEP_WAITING:
                break
    t = payment_time()
    failed = ErrorInfo("INVALID_ARGUMENT", "scripted", "shop")
    log = [
        Event("p1", 1, t, EventType.WORKFLOW_STARTED, ExecutionState.RUNNING),
        Event(
            "p1", 2, t, EventType.STEP_STARTED, ExecutionState.RUNNING, "approve", attempt=1,
            child_execution_id="p1:approve",
        ),
        Event(
            "p1", 3, t, EventType.STEP_WAITING, ExecutionState.RUNNING, "approve",
            child_execution_id="p1:approve",
        ),
        Event("p1", 4, t, EventType.STEP_STARTED, ExecutionState.RUNNING, "other", attempt=1),
        Event(
            "p1", 5, t, EventType.STEP_FAILED, ExecutionState.COMPENSATING, "other", attempt=1,
            error=failed, cause=Cause.STEP_FAILED,
        ),
    ]  # fmt: skip
    runner = Runner(
        workflow,
        "p1",
        {},
        deps(invoker, ListSink(), children=manager.children),
        resumption=Resumption(log, {}),
    )
    async with asyncio.timeout(10):
        result = await runner.run()
    assert result.state is ExecutionState.COMPENSATED
    assert (await store.get_execution("p1:approve")).state is ExecutionState.CANCELLED
    assert [k for k in keys(invoker) if k.endswith("compensate")] == []
