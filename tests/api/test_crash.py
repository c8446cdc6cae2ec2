"""Crash recovery: `maestro serve` on SQLite is killed with SIGKILL at random moments while
executions run forward and compensate; after restarts every execution ends, nothing is lost,
logs are gap-free, and no downstream effect happened twice. And killed at one chosen moment, on
SQLite and PostgreSQL: while a call is in flight whose reply the service has already decided."""

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import grpc
import httpx
import pytest
from demo_services import billing, mailer

from maestro_client import EventType, ExecutionState, MaestroClient, NotFoundError
from tests.api.conftest import INPUT, maestro_serve, onboarding_yaml
from tests.api.deciding_billing import SUBSCRIBE_THEN_CHECK, deciding_billing
from tests.postgres import empty_tables

SEED = 20261125
EXECUTIONS = 12


def _resumed(log: list[dict[str, object]]) -> int:
    return sum(int(str(e["count"])) for e in log if e["event"] == "executions resumed")


async def wait_all_terminal(address: str, ids: list[str]) -> dict[str, ExecutionState]:
    deadline = time.monotonic() + 90
    async with MaestroClient(address) as client:
        while True:
            states = {i: (await client.get(i)).state for i in ids}
            if all(s in TERMINAL for s in states.values()):
                return states
            assert time.monotonic() < deadline, f"executions did not finish: {states}"
            await asyncio.sleep(0.1)


TERMINAL = {
    ExecutionState.COMPLETED,
    ExecutionState.COMPENSATED,
    ExecutionState.FAILED,
    ExecutionState.COMPENSATION_FAILED,
    ExecutionState.CANCELLED,
}


async def test_sigkill_at_random_moments_loses_nothing(
    fresh_services: dict[str, str], tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    store = f"--store=sqlite:///{tmp_path / 'maestro.db'}"
    ids = [f"crash-{n}" for n in range(EXECUTIONS)]
    ok_yaml = onboarding_yaml(fresh_services)
    failing_yaml = onboarding_yaml(fresh_services, email="failing_email_service")
    kills, resumed = 0, 0
    with maestro_serve(store) as server:
        async with MaestroClient(server.address) as client:
            for n, execution_id in enumerate(ids):
                data = {**INPUT, "email": f"user{n}@example.com"}
                await client.start(
                    failing_yaml if n % 3 == 0 else ok_yaml, data, execution_id=execution_id
                )
        await asyncio.sleep(rng.uniform(0.05, 0.3))  # a random moment, not a synchronisation
        server.process.kill()
        kills += 1
    for _ in range(2):
        with maestro_serve(store) as server:
            resumed += _resumed(server.log)
            await asyncio.sleep(rng.uniform(0.1, 0.5))
            server.process.kill()
            kills += 1
    with maestro_serve(store) as server:
        resumed += _resumed(server.log)
        states = await wait_all_terminal(server.address, ids)
        async with MaestroClient(server.address) as client:
            logs = {i: [e async for e in client.watch(i)] for i in ids}
            with pytest.raises(NotFoundError):
                await client.get("crash-missing")

    assert kills == 3
    assert resumed > 0, "the kills landed while executions were running"
    assert set(states) == set(ids), "no execution is missing"
    for execution_id, events in logs.items():
        assert [e.sequence for e in events] == list(range(1, len(events) + 1)), execution_id
        assert events[-1].type in {EventType.WORKFLOW_COMPLETED, EventType.WORKFLOW_COMPENSATED}
        assert sum(e.type == EventType.WORKFLOW_STARTED for e in events) == 1
    for n, execution_id in enumerate(ids):
        expected = ExecutionState.COMPENSATED if n % 3 == 0 else ExecutionState.COMPLETED
        assert states[execution_id] is expected, execution_id

    # Every downstream effect happened once per idempotency key: one subscription, one contact
    # and at most one email per execution (each execution has its own user and address).
    with grpc.insecure_channel(fresh_services["billing_service"]) as channel:
        subscriptions = (
            billing.services.BillingServiceStub(channel)
            .ListSubscriptions(billing.protos.ListSubscriptionsRequest())
            .subscriptions
        )
    with grpc.insecure_channel(fresh_services["email_service"]) as channel:
        sent = (
            mailer.services.MailerServiceStub(channel)
            .ListSent(mailer.protos.ListSentRequest())
            .emails
        )
    contacts = httpx.get(f"{fresh_services['crm_service']}/contacts").json()["contacts"]
    assert len(subscriptions) == EXECUTIONS
    assert max(Counter(s.user_id for s in subscriptions).values()) == 1
    assert len(contacts) == EXECUTIONS
    assert max(Counter(c["user_id"] for c in contacts).values()) == 1
    assert sorted(m.to for m in sent) == sorted(
        f"user{n}@example.com" for n in range(EXECUTIONS) if n % 3
    )
    compensated_users = {c["user_id"] for c in contacts if c["status"] == "DELETED"}
    cancelled_users = {s.user_id for s in subscriptions if s.status == "CANCELLED"}
    assert compensated_users == cancelled_users
    assert len(compensated_users) == len([n for n in range(EXECUTIONS) if n % 3 == 0])


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_sigkill_while_a_decided_call_is_in_flight_goes_forward_with_one_effect(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The service has acted on `subscribe` and kept its reply under the key, and holds the
    answer back; the server is killed then. Restarted on the same store, it sends the call
    again under the same key (although the step allows one attempt: only a reply can tell),
    gets the kept reply, and goes forward with the output it learnt: COMPLETED, one
    subscription, never cancelled."""
    if store == "sqlite":
        flags = [f"--store=sqlite:///{tmp_path / 'maestro.db'}"]
    else:
        url = request.getfixturevalue("postgres_url")
        empty_tables(url)  # what other tests left unfinished is not resumed here
        flags = [f"--store={url}", "--lease", "1s"]
    decided: asyncio.Queue[int] = asyncio.Queue()
    gate = asyncio.Event()

    async def hold_the_answer(call: int) -> None:
        decided.put_nowait(call)
        await gate.wait()

    async with deciding_billing(hold_the_answer) as (address, service):
        yaml = SUBSCRIBE_THEN_CHECK.format(billing=address)
        with maestro_serve(*flags) as first:
            async with MaestroClient(first.address) as client:
                await client.start(yaml, {}, execution_id="decided")
            assert await asyncio.wait_for(decided.get(), 30) == 1
            first.process.kill()
            first.process.wait(timeout=10)
        with maestro_serve(*flags) as second:
            # Asked again by the restarted server, and held too: the call is in flight again.
            assert await asyncio.wait_for(decided.get(), 60) == 2
            gate.set()
            async with MaestroClient(second.address) as client:
                output = await asyncio.wait_for(client.get_handle("decided").result(), 60)
                state = (await client.get("decided")).state
                events = [e async for e in client.watch("decided")]

    assert state is ExecutionState.COMPLETED
    (subscription,) = service.subscriptions.values()
    assert output == {"subscription_id": subscription.id}
    assert subscription.status == "ACTIVE", "never compensated"
    effects = service.effects("CreateSubscription")
    assert list(effects.values()) == [1], "one effect under one key"
    (key,) = effects
    assert service.deliveries("CreateSubscription") == [(key, "1"), (key, "2")]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    subscribe = [(e.type, e.attempt) for e in events if e.step_id == "subscribe"]
    assert subscribe == [
        (EventType.STEP_STARTED, 1),
        (EventType.STEP_STARTED, 2),
        (EventType.STEP_SUCCEEDED, 2),
    ], subscribe
    assert not [
        e for e in events if e.type == EventType.STEP_FAILED or "COMPENSATION" in e.type.name
    ]
    assert events[-1].type == EventType.WORKFLOW_COMPLETED
