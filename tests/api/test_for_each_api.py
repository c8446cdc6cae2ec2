"""A for_each step through `maestro serve` and the SDK: its list output, its elements' events,
and the server's limit on the list (against the real CRM service)."""

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from demo_services.fleet import Running
from demo_services.fleet import start as start_service

from maestro_client import (
    EventType,
    ExecutionCompensatedError,
    ExecutionFailedError,
    ExecutionState,
    MaestroClient,
    StepState,
    output,
)
from tests.api.conftest import ServerProcess, maestro_serve

CONTACTS = """
name: contacts
services:
  crm: {type: http, endpoint: "CRM"}
steps:
  - id: add
    for_each: "{{ .input.emails }}"
    as: email
    concurrency: 2
    service: crm
    method: POST /contacts
    input: {email: "{{ .email }}", user_id: "u-{{ .index }}"}
    output: contacts
    compensate: {method: "DELETE /contacts/{{ .contacts.id }}"}
  - id: fail_on_demand
    when: "{{ .input.fail }}"
    service: crm
    method: POST /nowhere
output: "{{ .contacts }}"
"""
EMAILS = ["a@example.com", "b@example.com", "c@example.com"]


@pytest.fixture(scope="module")
def crm() -> Iterator[Running]:
    with start_service("crm") as running:
        yield running


@pytest.fixture(scope="module")
def limited_server() -> Iterator[ServerProcess]:
    with maestro_serve("--max-for-each-elements", "3") as running:
        yield running


def contacts_yaml(crm: Running) -> str:
    return CONTACTS.replace("CRM", crm.endpoint)


def ledger(crm: Running) -> dict[str, Any]:
    with urllib.request.urlopen(f"{crm.admin}/ledger") as reply:
        data: dict[str, Any] = json.load(reply)
        return data


async def test_the_list_output_reaches_the_sdk_get_execution_and_events(
    limited_server: ServerProcess, crm: Running
) -> None:
    """`run` returns the list; GetExecution shows the step's output as a list (output_value);
    each element's events carry its index, and each call its own idempotency key."""
    async with MaestroClient(limited_server.address) as client:
        handle = await client.start(contacts_yaml(crm), {"emails": EMAILS, "fail": False})
        result = await handle.result()
        assert [c["email"] for c in result] == EMAILS
        assert [c["user_id"] for c in result] == ["u-0", "u-1", "u-2"]
        execution = await handle.describe()
        assert execution.state == ExecutionState.COMPLETED
        assert output(execution) == result
        step = execution.steps[0]
        assert step.state == StepState.SUCCEEDED and output(step) == result
        events = [e async for e in handle.events()]
    ends = [e for e in events if e.step_id == "add" and e.type == EventType.STEP_SUCCEEDED]
    assert sorted(e.element_index for e in ends[:-1]) == [0, 1, 2]  # type: ignore[type-var]
    assert ends[-1].element_index is None and output(ends[-1]) == result
    keys = {
        effect["key"]
        for effect in ledger(crm)["effects"]
        if effect["key"].startswith(handle.execution_id)
    }
    assert keys == {f"{handle.execution_id}:add[{n}]" for n in range(3)}


async def test_a_later_failure_releases_every_element(
    limited_server: ServerProcess, crm: Running
) -> None:
    """The step after the for_each fails: each element's contact is deleted under its key."""
    async with MaestroClient(limited_server.address) as client:
        handle = await client.start(contacts_yaml(crm), {"emails": EMAILS[:2], "fail": True})
        with pytest.raises(ExecutionCompensatedError):
            await handle.result()
    keys = {effect["key"] for effect in ledger(crm)["effects"]}
    assert {f"{handle.execution_id}:add[{n}]:compensate" for n in range(2)} <= keys


async def test_a_list_over_the_servers_limit_fails_before_any_call(
    limited_server: ServerProcess, crm: Running
) -> None:
    """With --max-for-each-elements 3, four elements fail the step with TOO_MANY_ELEMENTS."""
    emails = [*EMAILS, "d@example.com"]
    async with MaestroClient(limited_server.address) as client:
        handle = await client.start(contacts_yaml(crm), {"emails": emails, "fail": False})
        with pytest.raises(ExecutionFailedError):
            await handle.result()
        execution = await handle.describe()
    assert execution.error is not None and execution.error.code == "TOO_MANY_ELEMENTS"
    assert "4 elements" in execution.error.message and "at most 3" in execution.error.message
    assert not any(
        effect["key"].startswith(handle.execution_id) for effect in ledger(crm)["effects"]
    )


async def test_sigkill_mid_for_each_runs_no_element_twice(tmp_path: Path) -> None:
    """`maestro serve` on SQLite is killed with two of six elements done and others in flight;
    after a restart the step finishes: each element acted once, under its own key."""
    store = f"--store=sqlite:///{tmp_path / 'maestro.db'}"
    emails = [f"user{n}@example.com" for n in range(6)]
    with start_service("crm", "--delay", "POST /contacts=0.3") as slow_crm:
        yaml = contacts_yaml(slow_crm)
        with maestro_serve(store) as server:
            async with MaestroClient(server.address) as client:
                handle = await client.start(yaml, {"emails": emails, "fail": False})
                done = 0
                async for event in handle.events():
                    if event.type == EventType.STEP_SUCCEEDED and event.element_index is not None:
                        done += 1
                    if done == 2:
                        break
            server.process.kill()
        with maestro_serve(store) as server:
            async with MaestroClient(server.address) as client:
                result = await client.get_handle(handle.execution_id).result()
        effects = [
            effect["key"]
            for effect in ledger(slow_crm)["effects"]
            if effect["method"] == "POST /contacts"
        ]
    assert [contact["email"] for contact in result] == emails
    assert sorted(effects) == sorted(f"{handle.execution_id}:add[{n}]" for n in range(6))
