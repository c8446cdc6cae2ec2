"""Two `maestro serve` replicas on one PostgreSQL: when one dies, the other finishes its work."""

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import grpc
from demo_services import billing

from maestro_client import EventType, ExecutionState, MaestroClient, WorkflowEvent
from tests.api.conftest import INPUT, maestro_serve, onboarding_yaml
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
