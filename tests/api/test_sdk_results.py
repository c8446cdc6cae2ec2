"""What a Python user of the SDK relies on, against `maestro serve`: results as plain values,
failures as exceptions, starts that are safe to repeat, and watchers that report the final
state of an execution an operator resumed."""

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator

import pytest
from demo_services.fleet import Running
from demo_services.fleet import start as start_service

from maestro_client import (
    CompensationFailedError,
    EventType,
    ExecutionCompensatedError,
    ExecutionFailureError,
    ExecutionState,
    InvalidArgumentError,
    MaestroClient,
    MaestroError,
    SyncMaestroClient,
    WorkflowEvent,
    plain,
)
from maestro_client._proto.google.protobuf import Struct
from tests.api.conftest import INPUT, ServerProcess, onboarding_yaml
from tests.api.proxy import cuttable_proxy
from tests.conftest import maestro

PRICED_OUTPUT = """\
output:
  user_id: "{{ .user.id }}"
  subscription_id: "{{ .subscription.id }}"
  price_cents: "{{ .subscription.price_cents }}"
  plan: {name: "{{ .subscription.plan_name }}", seats: 3}
"""


def priced(yaml: str) -> str:
    """The onboarding workflow whose output also holds numbers."""
    return yaml[: yaml.index("\noutput:")] + "\n" + PRICED_OUTPUT


async def test_run_returns_the_output_as_plain_values_with_ints(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """`run` is start and `result()`: a dict whose whole numbers are ints, not 42.0, from the
    async client and from the sync one."""
    yaml = priced(onboarding_yaml(service_processes))
    async with MaestroClient(server.address) as client:
        output = await client.run(yaml, INPUT)
    assert set(output) == {"user_id", "subscription_id", "price_cents", "plan"}
    assert type(output["price_cents"]) is int and output["price_cents"] > 0
    assert output["plan"] == {"name": output["plan"]["name"], "seats": 3}
    assert type(output["plan"]["seats"]) is int
    sync_output = await asyncio.to_thread(_sync_run, server.address, yaml)
    assert type(sync_output["price_cents"]) is int


def _sync_run(address: str, yaml: str) -> dict[str, object]:
    with SyncMaestroClient(address) as client:
        output: dict[str, object] = client.run(yaml, INPUT)
        return output


async def test_a_compensated_run_raises_naming_the_failing_step(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """The email service refusing: ExecutionCompensatedError (an ExecutionFailureError, not a
    MaestroError) with the state, the step that failed and its error."""
    yaml = onboarding_yaml(service_processes, email="failing_email_service")
    async with MaestroClient(server.address) as client:
        with pytest.raises(ExecutionCompensatedError) as caught:
            await client.run(yaml, INPUT)
        failure = caught.value
        assert isinstance(failure, ExecutionFailureError)
        assert not isinstance(failure, MaestroError)
        assert failure.state == ExecutionState.COMPENSATED
        assert failure.step_id == "send_welcome_email"
        assert failure.error is not None and failure.error.code == "INVALID_ARGUMENT"
        assert "send_welcome_email" in str(failure)
        # A handle made later, without a call, says the same.
        with pytest.raises(ExecutionCompensatedError):
            await client.get_handle(failure.execution_id).result()
    with (
        SyncMaestroClient(server.address) as sync,
        pytest.raises(ExecutionCompensatedError) as sync_caught,
    ):
        await asyncio.to_thread(sync.get_handle(failure.execution_id).result)
    assert sync_caught.value.step_id == "send_welcome_email"


async def test_a_start_retried_after_a_lost_reply_creates_one_execution(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """The reply to StartWorkflow is lost (the proxy holds it back, then drops the connection)
    after the server stored the execution: the SDK sends the start again with the id it made,
    and the server answers with the execution it has."""
    yaml = onboarding_yaml(service_processes).replace(
        "name: user_onboarding", "name: retried_start"
    )
    async with (
        cuttable_proxy(server.address) as (address, proxy),
        MaestroClient(address) as client,
        MaestroClient(server.address) as direct,
    ):
        await client.validate(yaml)  # the channel is connected before the reply goes missing
        proxy.hold_replies()
        starting = asyncio.create_task(client.start(yaml, INPUT))
        deadline = time.monotonic() + 30
        while not [e async for e in direct.list(workflow_name="retried_start")]:
            assert time.monotonic() < deadline, "the start never reached the server"
            await asyncio.sleep(0.02)
        assert not starting.done(), "the reply was held back"
        proxy.cut()
        handle = await starting
        listed = [e.execution_id async for e in direct.list(workflow_name="retried_start")]
        assert listed == [handle.execution_id]
        assert handle.created is False, "the second start found the first one's execution"
        assert proxy.connections >= 2
        assert await handle.result() is not None


async def test_numbers_a_struct_would_round_are_refused_before_sending() -> None:
    """An int beyond ±2**53 is INVALID_ARGUMENT (INPUT_INVALID, naming the field) from the SDK
    itself: nothing is sent, so no server is needed."""
    async with MaestroClient("127.0.0.1:1") as client:
        with pytest.raises(InvalidArgumentError) as caught:
            await client.start("name: w\n", {"order": {"amount": 2**53 + 1}})
    assert caught.value.reason == "INPUT_INVALID"
    assert caught.value.field_violations[0][0] == "input.order.amount"
    assert plain(Struct.from_dict({"n": 2**53, "x": 1.5, "l": [1.0, None]})) == {
        "n": 2**53,
        "x": 1.5,
        "l": [1, None],
    }
    assert plain(None) is None


RESUMABLE = """\
name: resumable
services:
  crm: {{type: http, endpoint: "{crm}"}}
  email: {{type: grpc, endpoint: "{email}"}}
steps:
  - id: contact
    service: crm
    method: POST /contacts
    input: {{email: ada@example.com}}
    output: contact
    compensate:
      method: DELETE /contacts/{{{{ .contact.id }}}}
      retry: {{max_attempts: 1}}
  - id: confirm
    service: email
    method: SendTemplate
    input: {{to: ada@example.com, template: confirm}}
    retry: {{max_attempts: 1}}
"""


@pytest.fixture
def fixable() -> Iterator[tuple[Running, Running]]:
    """A CRM and an email service whose faults a test sets and clears at run time."""
    with start_service("crm") as crm, start_service("email") as email:
        yield crm, email


def set_faults(service: Running, spec: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"{service.admin}/faults", data=json.dumps(spec).encode(), method="PUT"
    )
    with urllib.request.urlopen(request, timeout=30):
        pass


async def test_watchers_of_a_resumed_execution_report_its_final_state(
    server: ServerProcess, fixable: tuple[Running, Running]
) -> None:
    """The CRM refuses to delete: COMPENSATION_FAILED, and a watcher following then ends there
    (nothing more can happen by itself). Fixed and resumed, the log goes on with the next
    sequences: async and sync watchers from the start, one of them cut right after the first
    terminal event, read past it and end COMPENSATED; `result()` and the CLI say so too."""
    crm, email = fixable
    set_faults(email, {"errors": {"SendTemplate": {"code": "INVALID_ARGUMENT", "rate": 1.0}}})
    set_faults(crm, {"errors": {"DELETE /contacts": {"code": "HTTP_503", "rate": 1.0}}})
    yaml = RESUMABLE.format(crm=crm.endpoint, email=email.endpoint)
    async with MaestroClient(server.address) as client:
        handle = await client.start(yaml, {})
        first = [e async for e in handle.events()]
        assert first[-1].state == ExecutionState.COMPENSATION_FAILED
        with pytest.raises(CompensationFailedError) as caught:
            await handle.result()
        assert caught.value.step_id == "confirm"

        # Fixed, and slow: the resumed run is still going when the watcher below is cut.
        set_faults(crm, {"delays": {"DELETE /contacts": {"seconds": 1.0, "rate": 1.0}}})
        assert (await handle.resume()).state == ExecutionState.COMPENSATING
        async with cuttable_proxy(server.address) as (address, proxy):
            async with MaestroClient(address) as cut_client:
                watched: list[WorkflowEvent] = []
                async for event in cut_client.watch(handle.execution_id):
                    watched.append(event)
                    if event.sequence == first[-1].sequence:
                        proxy.cut()  # right after the first terminal event
            assert proxy.connections >= 2
        synced = await asyncio.to_thread(_sync_watch, server.address, handle.execution_id)
        with pytest.raises(ExecutionCompensatedError):
            await handle.result()
    for events in (watched, synced):
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        terminal = [e.state for e in events if e.type == EventType.WORKFLOW_FAILED]
        assert terminal == [ExecutionState.COMPENSATION_FAILED]
        assert events[-1].type == EventType.WORKFLOW_COMPENSATED
        assert events[-1].state == ExecutionState.COMPENSATED
    cli = await asyncio.to_thread(
        maestro, "executions", "watch", handle.execution_id, "--server", server.address
    )
    assert cli.returncode == 2, cli.stderr  # compensated, not 3 (compensation failed)


def _sync_watch(address: str, execution_id: str) -> list[WorkflowEvent]:
    with SyncMaestroClient(address) as client:
        return list(client.watch(execution_id))
