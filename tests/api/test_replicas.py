"""Two `maestro serve` replicas on one PostgreSQL: when one dies, the other finishes its work."""

import asyncio
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator

import grpc
from demo_services import billing

from maestro_client import (
    AbortedError,
    EventType,
    ExecutionState,
    MaestroClient,
    WorkflowEvent,
    WorkflowSource,
)
from tests.api.conftest import INPUT, maestro_serve, onboarding_yaml, refused_compensation_yaml
from tests.postgres import empty_tables

EXECUTIONS = 6


async def test_a_replica_takes_over_when_the_other_dies(
    fresh_services: dict[str, str], postgres_url: str
) -> None:
    """Executions started on A, which is killed mid-flight, are finished by B after A's lease
    lapses; each runs on one replica at a time (fenced appends), each effect happens once."""
    empty_tables(postgres_url)  # executions earlier tests left unfinished are not ours
    store = f"--store={postgres_url}"
    yaml = onboarding_yaml(fresh_services)
    ids = [f"replica-{n}" for n in range(EXECUTIONS)]
    with maestro_serve(store, "--lease", "1s") as a, maestro_serve(store, "--lease", "1s") as b:
        async with MaestroClient(a.address) as client:
            for n, execution_id in enumerate(ids):
                data = {**INPUT, "email": f"replica{n}@example.com"}
                await client.start(yaml, data, execution_id=execution_id)
            first = [e async for e in _first_events(client, ids[0], 3)]
            running = [i for i in ids if (await client.get(i)).state is ExecutionState.RUNNING]
        a.process.kill()
        assert running, "A died with executions in flight"
        a.process.wait(timeout=10)
        assert first[-1].sequence == 3
        async with MaestroClient(b.address) as client:
            deadline = time.monotonic() + 60
            while True:
                states = {i: (await client.get(i)).state for i in ids}
                if all(s is ExecutionState.COMPLETED for s in states.values()):
                    break
                assert time.monotonic() < deadline, f"B did not finish A's executions: {states}"
                await asyncio.sleep(0.1)
            logs = {i: [e async for e in client.watch(i)] for i in ids}
    for events in logs.values():
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        succeeded = Counter(e.step_id for e in events if e.type == EventType.STEP_SUCCEEDED)
        assert set(succeeded.values()) == {1}, "no step completed twice"
    with grpc.insecure_channel(fresh_services["billing_service"]) as channel:
        subscriptions = (
            billing.services.BillingServiceStub(channel)
            .ListSubscriptions(billing.protos.ListSubscriptionsRequest())
            .subscriptions
        )
    assert len(subscriptions) == EXECUTIONS
    assert max(Counter(s.user_id for s in subscriptions).values()) == 1


async def _first_events(
    client: MaestroClient, execution_id: str, count: int
) -> AsyncIterator[WorkflowEvent]:
    async for event in client.watch(execution_id):
        yield event
        if event.sequence >= count:
            return


CANCELLABLE = """\
name: cancellable
services:
  email: {{type: grpc, endpoint: "{email}"}}
  hole: {{type: http, endpoint: "{hole}"}}
steps:
  - id: greet
    service: email
    method: SendTemplate
    input: {{to: ada@example.com, template: welcome}}
    compensate:
      method: SendTemplate
      input: {{to: ada@example.com, template: sorry}}
      retry: {{max_attempts: 1}}
  - id: wait
    service: hole
    method: POST /wait
    timeout: 60s
    retry: {{max_attempts: 1}}
"""


async def test_cancel_and_resume_through_the_replica_that_does_not_run_it(
    fresh_services: dict[str, str], postgres_url: str
) -> None:
    """A runs an execution stuck in a call; B receives the cancel, and again (a retried cancel
    is OK): A stops it and compensates. An execution A ended COMPENSATION_FAILED is resumed
    through B, which runs it on; two resumes at once: one wins, the other is ABORTED."""
    empty_tables(postgres_url)
    store = f"--store={postgres_url}"
    with (
        socket.create_server(("127.0.0.1", 0)) as hole,
        maestro_serve(store, "--lease", "1s") as a,
        maestro_serve(store, "--lease", "1s") as b,
    ):
        yaml = CANCELLABLE.format(
            email=fresh_services["email_service"], hole=f"http://127.0.0.1:{hole.getsockname()[1]}"
        )
        async with MaestroClient(a.address) as on_a, MaestroClient(b.address) as on_b:
            handle = await on_a.start(yaml, {}, execution_id="cancel-remote")
            seen = [e async for e in _until(on_a.watch(handle.execution_id), "wait")]
            first = await on_b.cancel(handle.execution_id, "changed my mind")
            again = await on_b.cancel(handle.execution_id, "twice")
            assert first.state in (ExecutionState.RUNNING, ExecutionState.COMPENSATING)
            assert again.state in (ExecutionState.RUNNING, ExecutionState.COMPENSATING)
            rest = [e async for e in on_b.watch(handle.execution_id, seen[-1].sequence)]
            assert rest[-1].type == EventType.WORKFLOW_CANCELLED
            assert rest[-1].error is not None and rest[-1].error.message == "changed my mind"
            undone = [e.step_id for e in rest if e.type == EventType.COMPENSATION_SUCCEEDED]
            assert undone == ["greet"]
            after = await on_b.cancel(handle.execution_id)
            assert after.state == ExecutionState.CANCELLED  # still OK once it ended

            refused = refused_compensation_yaml(fresh_services)
            failed = await on_a.start(refused, {}, execution_id="resume-remote")
            first_run = [e async for e in failed.events()]
            assert first_run[-1].state == ExecutionState.COMPENSATION_FAILED
            resumed = await on_b.resume(failed.execution_id)
            assert resumed.state == ExecutionState.COMPENSATING
            second_run = [e async for e in on_a.watch(failed.execution_id, first_run[-1].sequence)]
            assert second_run[0].sequence == first_run[-1].sequence + 1
            assert (second_run[0].type, second_run[0].step_id) == (
                EventType.COMPENSATION_STARTED,
                "greet",
            )
            assert second_run[-1].state == ExecutionState.COMPENSATION_FAILED

            outcomes = await asyncio.gather(
                on_a.resume(failed.execution_id),
                on_b.resume(failed.execution_id),
                return_exceptions=True,
            )
            errors = [o for o in outcomes if isinstance(o, Exception)]
            assert len(errors) == 1, outcomes
            assert isinstance(errors[0], AbortedError), errors[0]
            assert errors[0].reason == "EXECUTION_BEING_RESUMED"
            assert errors[0].metadata == {"executionId": "resume-remote"}
            last = [e async for e in on_b.watch(failed.execution_id)]
            assert [e.sequence for e in last] == list(range(1, len(last) + 1))
            assert last[-1].state == ExecutionState.COMPENSATION_FAILED


async def _until(
    events: AsyncIterator[WorkflowEvent], step_id: str
) -> AsyncIterator[WorkflowEvent]:
    async for event in events:
        yield event
        if event.type == EventType.STEP_STARTED and event.step_id == step_id:
            return


WAITING_PARENT = """\
name: waiting_parent
services:
  crm: {type: http, endpoint: "http://127.0.0.1:9"}
steps:
  - id: approve
    workflow: {file: approval.yaml}
"""
APPROVAL = """\
name: approval
services:
  crm: {type: http, endpoint: "http://127.0.0.1:9"}
steps:
  - id: approved
    wait: {signal: approved}
"""


async def test_a_cancel_through_another_replica_reaches_the_child(postgres_url: str) -> None:
    """A parent runs on A, its child waits for a signal; cancelling the parent through B
    (recorded in the store) stops the parent, which cancels its child: both end CANCELLED."""
    store = f"--store={postgres_url}"
    workflow = WorkflowSource(WAITING_PARENT, "parent.yaml", {"approval.yaml": APPROVAL.encode()})
    with maestro_serve(store, "--lease", "1s") as a, maestro_serve(store, "--lease", "1s") as b:
        async with MaestroClient(a.address) as on_a, MaestroClient(b.address) as on_b:
            handle = await on_a.start(workflow, {}, execution_id="replica-parent")
            async for event in on_a.watch("replica-parent"):
                if event.type == EventType.STEP_WAITING:  # the child exists
                    break
            async for event in on_b.watch("replica-parent:approve"):
                if event.type == EventType.STEP_WAITING:
                    break
            await on_b.cancel("replica-parent", "through B")
            events = [e async for e in on_b.watch("replica-parent")]
            child = [e async for e in on_b.watch("replica-parent:approve")]
    assert handle.execution_id == "replica-parent"
    assert events[-1].type == EventType.WORKFLOW_CANCELLED
    assert child[-1].type == EventType.WORKFLOW_CANCELLED
