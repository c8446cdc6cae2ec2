"""Streams of chosen event types (`event_types`) against `maestro serve`: the SDK's clients,
the HTTP face and the CLI get only those events, under the log's sequence numbers, and a
dropped stream resumes after the last one received."""

import asyncio
import json
import re
import struct
from pathlib import Path

import httpx
import pytest

from maestro_client import (
    TERMINAL_EVENT_TYPES,
    EventType,
    ExecutionState,
    InvalidArgumentError,
    MaestroClient,
    NotFoundError,
    SyncMaestroClient,
    WorkflowEvent,
)
from tests.api.conftest import (
    INPUT,
    ServerProcess,
    maestro_serve,
    onboarding_yaml,
    refused_compensation_yaml,
)
from tests.api.proxy import cuttable_proxy
from tests.conftest import maestro

STEPS_DONE = (EventType.STEP_SUCCEEDED, EventType.WORKFLOW_COMPLETED)


def shape(events: list[WorkflowEvent]) -> list[tuple[int, EventType, str]]:
    return [(e.sequence, e.type, e.step_id) for e in events]


async def test_the_outcome_alone_and_chosen_types_keep_the_logs_sequences(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """ExecuteWorkflow asking for the terminal types streams one event, the completion, under
    its sequence in the log; a watch of chosen types is the log filtered, from any sequence."""
    async with MaestroClient(server.address) as client:
        outcome = [
            e
            async for e in client.execute(
                onboarding_yaml(service_processes), INPUT, event_types=TERMINAL_EVENT_TYPES
            )
        ]
        log = [e async for e in client.watch(outcome[0].execution_id)]
        assert shape(outcome) == shape(log[-1:])
        assert outcome[0].type == EventType.WORKFLOW_COMPLETED and outcome[0].sequence == 10
        execution_id = outcome[0].execution_id
        chosen = [e async for e in client.watch(execution_id, event_types=STEPS_DONE)]
        assert shape(chosen) == shape([e for e in log if e.type in STEPS_DONE])
        later = [e async for e in client.watch(execution_id, 5, event_types=STEPS_DONE)]
        assert shape(later) == shape([e for e in chosen if e.sequence > 5])
        assert await client.get_handle(execution_id).result() is not None


async def test_a_stream_ends_where_the_whole_log_ends_even_if_that_event_is_left_out(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """Asked for none of the events that end it, a stream still ends with the execution; a
    COMPENSATION_FAILED outcome comes as its WORKFLOW_FAILED event."""
    async with MaestroClient(server.address) as client:
        yaml = refused_compensation_yaml(service_processes)
        failed = [e async for e in client.execute(yaml, {}, event_types=TERMINAL_EVENT_TYPES)]
        assert [(e.type, e.state) for e in failed] == [
            (EventType.WORKFLOW_FAILED, ExecutionState.COMPENSATION_FAILED)
        ]
        started = [
            e
            async for e in client.watch(
                failed[0].execution_id, event_types=[EventType.WORKFLOW_STARTED]
            )
        ]
        assert shape(started) == [(1, EventType.WORKFLOW_STARTED, "")]


async def test_an_unknown_event_type_is_refused_before_anything_starts(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """EVENT_TYPE_UNSPECIFIED in `event_types` is INVALID_ARGUMENT naming the field, and the
    execution it came with was not started."""
    async with MaestroClient(server.address) as client:
        with pytest.raises(InvalidArgumentError) as refused:
            _ = [
                e
                async for e in client.execute(
                    onboarding_yaml(service_processes),
                    INPUT,
                    execution_id="filtered-badly",
                    event_types=[EventType.UNSPECIFIED],
                )
            ]
        assert [field for field, _ in refused.value.violations] == ["event_types"]
        with pytest.raises(NotFoundError):
            await client.get("filtered-badly")
        with pytest.raises(InvalidArgumentError, match="event_types"):
            _ = [e async for e in client.watch("any", event_types=[EventType.UNSPECIFIED])]


async def test_a_dropped_filtered_stream_resumes_after_the_last_event_received(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """The filtered ExecuteWorkflow stream cut while the slow step runs: the client watches on
    after the last sequence it received, with the same types: none missed, none twice."""
    yaml = onboarding_yaml(service_processes, email="slow_email_service")
    wanted = (EventType.STEP_STARTED, EventType.WORKFLOW_COMPLETED)
    async with cuttable_proxy(server.address) as (address, proxy):
        async with MaestroClient(address) as client:
            events = []
            async for event in client.execute(yaml, INPUT, event_types=wanted):
                events.append(event)
                if event.step_id == "send_welcome_email":
                    proxy.cut()
        async with MaestroClient(server.address) as client:
            log = [e async for e in client.watch(events[0].execution_id)]
    assert shape(events) == shape([e for e in log if e.type in wanted])
    assert proxy.connections >= 2, "the stream really was cut and reopened"


def test_the_blocking_client_filters_too(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """SyncMaestroClient's execute and watch take the same `event_types`."""
    with SyncMaestroClient(server.address) as client:
        yaml = onboarding_yaml(service_processes)
        outcome = list(client.execute(yaml, INPUT, event_types=TERMINAL_EVENT_TYPES))
        assert [(e.sequence, e.type) for e in outcome] == [(10, EventType.WORKFLOW_COMPLETED)]
        succeeded = list(
            client.watch(outcome[0].execution_id, event_types=[EventType.STEP_SUCCEEDED])
        )
        assert [e.step_id for e in succeeded][:2] == ["create_user", "setup_subscription"]
        assert {e.step_id for e in succeeded[2:]} == {"add_to_crm", "send_welcome_email"}
        assert client.get_handle(outcome[0].execution_id).result() is not None


def test_the_http_face_takes_event_types_as_json(service_processes: dict[str, str]) -> None:
    """Over Connect with JSON, `eventTypes` names the types as the proto's JSON does."""
    with maestro_serve("--http-port", "0") as server:
        port = next(e for e in server.log if e["event"] == "serving")["http_port"]
        body = json.dumps(
            {
                "workflowYaml": onboarding_yaml(service_processes),
                "input": INPUT,
                "eventTypes": ["EVENT_TYPE_STEP_SUCCEEDED", "EVENT_TYPE_WORKFLOW_COMPLETED"],
            }
        ).encode()
        reply = httpx.post(
            f"http://127.0.0.1:{port}/maestro.v1.Orchestrator/ExecuteWorkflow",
            content=struct.pack(">BI", 0, len(body)) + body,
            headers={"Content-Type": "application/connect+json"},
            timeout=60,
        )
    rest, frames = reply.content, []
    while rest:
        flags, length = struct.unpack(">BI", rest[:5])
        frames.append((flags, json.loads(rest[5 : 5 + length])))
        rest = rest[5 + length :]
    assert frames[-1] == (2, {})  # the end of the stream, without an error
    events = [frame["event"] for _, frame in frames[:-1]]
    assert [e["type"] for e in events] == ["EVENT_TYPE_STEP_SUCCEEDED"] * 4 + [
        "EVENT_TYPE_WORKFLOW_COMPLETED"
    ]
    sequences = [int(e["sequence"]) for e in events]
    assert sequences == sorted(set(sequences)) and sequences[-1] == 10  # the log's, with gaps


def test_the_cli_shows_only_the_chosen_types_and_still_exits_by_the_outcome(
    server: ServerProcess, service_processes: dict[str, str], tmp_path: Path
) -> None:
    """`--only` (remote and local) shows those events alone; the output and the exit code still
    come from the terminal event, shown or not; without `--only` nothing changes."""
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(onboarding_yaml(service_processes))
    data = json.dumps(INPUT)
    remote = maestro(
        "execute", workflow, "--input", data, "--server", server.address, "--only", "step_failed"
    )
    assert remote.returncode == 0, remote.stderr
    assert remote.stderr == ""
    assert set(json.loads(remote.stdout)) == {"user_id", "subscription_id"}
    local = maestro("execute", workflow, "--input", data, "--only", "step_succeeded,terminal")
    assert local.returncode == 0, local.stderr
    shown = [re.sub(r"^\[ *\d+\] (\S+ \w+ \w+).*$", r"\1", x) for x in local.stderr.splitlines()]
    assert shown == ["✓ step succeeded"] * 4 + ["■ workflow completed"]
    failing = tmp_path / "failing.yaml"
    failing.write_text(onboarding_yaml(service_processes, email="failing_email_service"))
    jsonl = maestro(
        "execute", failing, "--input", data, "--server", server.address,
        "--events", "jsonl", "--only", "compensation_succeeded",
    )  # fmt: skip
    assert jsonl.returncode == 2
    undone = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert {e["type"] for e in undone} == {"EVENT_TYPE_COMPENSATION_SUCCEEDED"}
    refused = maestro("execute", workflow, "--only", "finished")
    assert refused.returncode == 1
    assert "--only: 'finished' is not an event type" in refused.stderr


async def test_the_stream_of_the_outcome_alone_is_one_message(
    server: ServerProcess, service_processes: dict[str, str]
) -> None:
    """A client that watches many executions for their outcome receives one message each."""
    async with MaestroClient(server.address) as client:
        yaml = onboarding_yaml(service_processes)
        handles = [await client.start(yaml, INPUT) for _ in range(3)]
        outcomes = await asyncio.gather(
            *(_collect(client, h.execution_id) for h in handles)  # while they run
        )
    assert [[e.type for e in events] for events in outcomes] == [[EventType.WORKFLOW_COMPLETED]] * 3


async def _collect(client: MaestroClient, execution_id: str) -> list[WorkflowEvent]:
    return [e async for e in client.watch(execution_id, event_types=TERMINAL_EVENT_TYPES)]
