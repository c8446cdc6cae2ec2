"""Sub-workflows through `maestro serve` and the SDK, against the real CRM service: registered
and file children, their names on each side, the parent filter, registration checks, and a
SIGKILL in the middle of a child."""

import json
import os
import subprocess
import sys
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
    ExecutionState,
    InvalidArgumentError,
    MaestroClient,
    WorkflowSource,
)
from tests.api.conftest import ServerProcess, maestro_serve
from tests.conftest import ROOT

SIGNUP = """\
name: signup
version: "1"
services:
  crm: {type: http, endpoint: "CRM"}
steps:
  - id: first
    service: crm
    method: POST /contacts
    input: {email: "{{ .input.email }}", user_id: first}
    output: first
    compensate: {method: "DELETE /contacts/{{ .first.id }}"}
  - id: second
    service: crm
    method: POST /contacts
    input: {email: "{{ .input.email }}", user_id: second}
    output: second
    compensate: {method: "DELETE /contacts/{{ .second.id }}"}
output: {first: "{{ .first.id }}", second: "{{ .second.id }}"}
"""

ONBOARD = """\
name: onboard
services:
  crm: {type: http, endpoint: "CRM"}
steps:
  - id: signup
    workflow: WORKFLOW
    input: {email: "{{ .input.email }}"}
    output: account
  - id: fail_on_demand
    when: "{{ .input.fail }}"
    service: crm
    method: POST /nowhere
output: "{{ .account }}"
"""


@pytest.fixture(scope="module")
def crm() -> Iterator[Running]:
    with start_service("crm") as running:
        yield running


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with maestro_serve() as running:
        yield running


def ledger_keys(crm: Running, prefix: str) -> list[str]:
    with urllib.request.urlopen(f"{crm.admin}/ledger") as reply:
        data: dict[str, Any] = json.load(reply)
    return [e["key"] for e in data["effects"] if e["key"].startswith(prefix)]


def signup(crm: Running) -> str:
    return SIGNUP.replace("CRM", crm.endpoint)


def onboard(crm: Running, workflow: str) -> str:
    return ONBOARD.replace("CRM", crm.endpoint).replace("WORKFLOW", workflow)


async def test_a_registered_child_runs_and_is_compensated_with_its_parent(
    server: ServerProcess, crm: Running
) -> None:
    """The child is an execution the API shows, naming its parent, listed by the parent
    filter; the parent's step names it. When the parent fails later, the child's two
    contacts are deleted (in reverse order) and the child ends COMPENSATED."""
    async with MaestroClient(server.address) as client:
        await client.register(WorkflowSource(signup(crm), "signup.yaml"))
        handle = await client.start(
            onboard(crm, "{name: signup}"), {"email": "ada@example.com", "fail": True}
        )
        with pytest.raises(ExecutionCompensatedError):
            await handle.result()
        parent = await handle.describe()
        child_id = f"{handle.execution_id}:signup"
        assert list(parent.steps[0].child_execution_ids) == [child_id]
        children = [e async for e in client.list(parent_execution_id=handle.execution_id)]
        assert [c.execution_id for c in children] == [child_id]
        child = await client.get(child_id)
        assert child.parent_execution_id == handle.execution_id
        assert child.state == ExecutionState.COMPENSATED
        events = [e async for e in handle.events()]
    waiting = next(e for e in events if e.type == EventType.STEP_WAITING)
    assert waiting.child_execution_id == child_id
    keys = ledger_keys(crm, child_id)
    assert keys[-2:] == [f"{child_id}:second:compensate", f"{child_id}:first:compensate"]


async def test_registering_an_unknown_or_recursive_child_is_refused(
    server: ServerProcess, crm: Running
) -> None:
    """A registered name the server lacks, or one that runs the workflow being registered,
    is an invalid workflow, at the step's line."""
    async with MaestroClient(server.address) as client:
        with pytest.raises(
            InvalidArgumentError, match="'missing', which is not registered"
        ) as unknown:
            await client.register(WorkflowSource(onboard(crm, "{name: missing}"), "a.yaml"))
        assert unknown.value.violations[0][0] == "a.yaml:6:22 (steps[0].workflow.name)"
        loop_a = "name: loop_a\nversion: '1'\n" + "\n".join(SIGNUP.splitlines()[2:]) + "\n"
        await client.register(WorkflowSource(loop_a.replace("CRM", crm.endpoint), "a.yaml"))
        loop_b = onboard(crm, "{name: loop_a}").replace("name: onboard", "name: loop_b")
        await client.register(WorkflowSource(loop_b, "b.yaml"))
        again = onboard(crm, "{name: loop_b}").replace(
            "name: onboard", "name: loop_a\nversion: '2'"
        )
        with pytest.raises(InvalidArgumentError) as caught:
            await client.register(WorkflowSource(again, "a.yaml"))
    assert "recursion: loop_a → loop_b → loop_a" in str(caught.value)


def onboard_with_signup_file(crm: Running) -> WorkflowSource:
    """The parent, its child `signup.yaml` sent with it as a file."""
    return WorkflowSource(
        onboard(crm, "{file: signup.yaml}"), "onboard.yaml", {"signup.yaml": signup(crm).encode()}
    )


async def test_sigkill_mid_child_starts_no_second_child_and_runs_no_call_twice(
    tmp_path: Path,
) -> None:
    """`maestro serve` on SQLite is killed once the child's first contact is made and its
    second is in flight; after a restart parent and child complete: one child execution,
    each call under its own key, once."""
    store = f"--store=sqlite:///{tmp_path / 'maestro.db'}"
    with start_service("crm", "--delay", "POST /contacts=0.3") as slow_crm:
        workflow = onboard_with_signup_file(slow_crm)
        with maestro_serve(store) as server:
            async with MaestroClient(server.address) as client:
                handle = await client.start(workflow, {"email": "k@example.com", "fail": False})
                child_id = f"{handle.execution_id}:signup"
                async for event in handle.events():
                    if event.type == EventType.STEP_WAITING:  # the child exists
                        break
                async for event in client.get_handle(child_id).events():
                    if event.type == EventType.STEP_STARTED and event.step_id == "second":
                        break
            server.process.kill()
        with maestro_serve(store) as server:
            async with MaestroClient(server.address) as client:
                result = await client.get_handle(handle.execution_id).result()
                children = [c async for c in client.list(parent_execution_id=handle.execution_id)]
                child = await client.get(child_id)
        keys = ledger_keys(slow_crm, child_id)
    assert [c.execution_id for c in children] == [child_id]
    assert child.state == ExecutionState.COMPLETED
    assert set(result) == {"first", "second"}
    assert sorted(keys) == [f"{child_id}:first", f"{child_id}:second"]


async def test_sigkill_while_the_parent_compensates_its_child(tmp_path: Path) -> None:
    """Killed while the completed child is being compensated (one contact deleted, the other
    in flight): after a restart the child's compensation goes on from its log and the parent
    ends COMPENSATED, each contact deleted under its key."""
    store = f"--store=sqlite:///{tmp_path / 'maestro.db'}"
    with start_service("crm", "--delay", "DELETE /contacts=0.3") as slow_crm:
        workflow = onboard_with_signup_file(slow_crm)
        with maestro_serve(store) as server:
            async with MaestroClient(server.address) as client:
                handle = await client.start(workflow, {"email": "z@example.com", "fail": True})
                child_id = f"{handle.execution_id}:signup"
                async for event in handle.events():
                    if event.type == EventType.COMPENSATION_STARTED:
                        break  # the parent compensates its child: the child is reopened
                undoing = []  # the child's log, reopened: it shows its undoing already
                async for event in client.get_handle(child_id).events():
                    undoing.append((event.type, event.step_id))
                    if event.type == EventType.COMPENSATION_STARTED and event.step_id == "first":
                        break
            server.process.kill()
        assert undoing[-4:] == [
            (EventType.WORKFLOW_COMPLETED, ""),
            (EventType.COMPENSATION_STARTED, "second"),
            (EventType.COMPENSATION_SUCCEEDED, "second"),
            (EventType.COMPENSATION_STARTED, "first"),
        ]
        with maestro_serve(store) as server:
            async with MaestroClient(server.address) as client:
                with pytest.raises(ExecutionCompensatedError):
                    await client.get_handle(handle.execution_id).result()
                child = await client.get(child_id)
                children = [c async for c in client.list(parent_execution_id=handle.execution_id)]
        keys = ledger_keys(slow_crm, child_id)
    assert child.state == ExecutionState.COMPENSATED
    assert [c.execution_id for c in children] == [child_id]
    assert {k for k in keys if k.endswith(":compensate")} == {
        f"{child_id}:second:compensate",
        f"{child_id}:first:compensate",
    }


def test_a_workflows_folder_that_closes_a_cycle_of_registered_names_is_refused(
    tmp_path: Path,
) -> None:
    """`maestro serve --workflows` registers as RegisterWorkflow does: a file that runs,
    through registered names, a workflow that runs it (here a → b → a, each naming the other
    file's workflow) is a recursion diagnostic, and the server does not start."""
    step = (
        'services: {crm: {type: http, endpoint: "http://127.0.0.1:9"}}\n'
        "steps:\n  - id: inner\n    workflow: {name: NAME}\n"
    )
    (tmp_path / "a.yaml").write_text("name: a\n" + step.replace("NAME", "b"))
    (tmp_path / "b.yaml").write_text("name: b\n" + step.replace("NAME", "a"))
    command = [
        sys.executable, "-m", "maestro_server", "serve", "--port", "0", "--host", "127.0.0.1",
        "--store", "memory", "--log-format", "json", "--workflows", str(tmp_path),
    ]  # fmt: skip
    env = dict(os.environ, GRPC_VERBOSITY="ERROR")
    # A server that starts serves until killed: the timeout fails the test then.
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )
    output = done.stderr + done.stdout
    assert done.returncode != 0, output
    assert "recursion" in output and "a → b → a" in output, output
