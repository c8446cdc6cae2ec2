"""Signals and timers through `maestro serve`: SignalExecution over gRPC and HTTP, its errors,
and executions that wait across a SIGKILL of the server."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from maestro_client import (
    EventType,
    ExecutionState,
    FailedPreconditionError,
    InvalidArgumentError,
    MaestroClient,
    NotFoundError,
    StepState,
    WorkflowEvent,
    plain,
)
from tests.api.conftest import ServerProcess, maestro_serve
from tests.conftest import maestro
from tests.postgres import empty_tables

# Waits and sleeps call nothing; the service is there because a workflow names one at least.
APPROVAL = """\
name: approval
services:
  unused: {type: grpc, endpoint: "127.0.0.1:9"}
steps:
  - id: submitted
    wait: {signal: submitted}
    output: form
  - id: approved
    wait: {signal: approved, timeout: 1h}
    output: approval
output: {form: "{{ .form }}", by: "{{ .approval.by }}"}
"""

NAP = """\
name: nap
services:
  unused: {type: grpc, endpoint: "127.0.0.1:9"}
steps:
  - id: nap
    sleep: 2s
  - id: approved
    wait: {signal: approved}
    output: approval
output: "{{ .approval }}"
"""


async def first(events: AsyncIterator[WorkflowEvent], kind: EventType, step: str) -> int:
    """Follow a stream until the event `kind` of `step`; its sequence."""
    async for event in events:
        if event.type == kind and event.step_id == step:
            return event.sequence
    raise AssertionError(f"no {kind} of {step}")


async def ended(client: MaestroClient, execution_id: str) -> list[WorkflowEvent]:
    """The whole log, once the execution ended."""
    return [e async for e in client.watch(execution_id)]


async def test_signals_over_grpc_before_and_during_the_wait(tmp_path: Path) -> None:
    """A signal sent before its step waits is kept; one sent while it waits wakes it; the same
    id again is OK and changes nothing; the payloads are the steps' outputs."""
    with maestro_serve(f"--store=sqlite:///{tmp_path / 'm.db'}") as server:
        async with MaestroClient(server.address) as client:
            started = await client.start(APPROVAL, {}, execution_id="approval-1")
            execution_id = started.execution_id
            early = await client.signal_execution(
                execution_id, "approved", {"by": "ada"}, signal_id="approval-by-ada"
            )
            assert (early.signal_id, early.created) == ("approval-by-ada", True)
            await first(client.watch(execution_id), EventType.STEP_WAITING, "submitted")
            execution = await client.get(execution_id)
            assert execution.state == ExecutionState.RUNNING
            assert execution.steps[0].state == StepState.WAITING
            sent = await client.signal_execution(execution_id, "submitted", {"amount": 3})
            assert sent.created and sent.signal_id
            again = await client.signal_execution(
                execution_id, "approved", {"by": "mallory"}, signal_id="approval-by-ada"
            )
            assert (again.signal_id, again.created) == ("approval-by-ada", False)
            log = await ended(client, execution_id)
    assert log[-1].type == EventType.WORKFLOW_COMPLETED
    assert plain(log[-1].output) == {"form": {"amount": 3}, "by": "ada"}
    received = [(e.step_id, e.signal_name) for e in log if e.type == EventType.SIGNAL_RECEIVED]
    assert received == [("submitted", "submitted"), ("approved", "approved")]
    waiting = [e for e in log if e.type == EventType.STEP_WAITING]
    assert waiting[1].signal_name == "approved" and waiting[1].deadline is not None


async def test_signal_errors_name_the_problem(server: ServerProcess) -> None:
    """Unknown execution: NOT_FOUND; finished: FAILED_PRECONDITION; a bad name: INVALID_ARGUMENT."""
    async with MaestroClient(server.address) as client:
        with pytest.raises(NotFoundError):
            await client.signal_execution("nobody", "approved")
        started = await client.start(APPROVAL, {})
        with pytest.raises(InvalidArgumentError, match="name must start with a letter"):
            await client.signal_execution(started.execution_id, "not a name")
        await client.cancel(started.execution_id, "no longer needed")
        log = await ended(client, started.execution_id)
        assert log[-1].type == EventType.WORKFLOW_CANCELLED
        with pytest.raises(FailedPreconditionError, match="takes no signals"):
            await client.signal_execution(started.execution_id, "approved")


async def test_signal_over_http_json() -> None:
    """The Connect face takes SignalExecution as JSON, like every other RPC."""
    with maestro_serve("--http-port", "0") as server:
        serving = next(e for e in server.log if e["event"] == "serving")
        url = f"http://127.0.0.1:{serving['http_port']}/maestro.v1.Orchestrator/"
        async with MaestroClient(server.address) as client:
            started = await client.start(APPROVAL, {})
            async with httpx.AsyncClient() as http:
                for name in ("submitted", "approved"):
                    sent = await http.post(
                        f"{url}SignalExecution",
                        json={
                            "executionId": started.execution_id,
                            "name": name,
                            "signalId": name,
                            "payload": {"by": "http"},
                        },
                    )
                    assert sent.status_code == 200, sent.text
                    assert sent.json() == {"signalId": name, "created": True}
                missing = await http.post(
                    f"{url}SignalExecution", json={"executionId": "ghost", "name": "x"}
                )
            assert missing.status_code == 404
            log = await ended(client, started.execution_id)
    assert log[-1].type == EventType.WORKFLOW_COMPLETED


async def test_waiting_executions_survive_sigkill(tmp_path: Path) -> None:
    """Killed while one execution waits for a signal and another sleeps: after a restart the
    sleep keeps its deadline, a signal sent while the server was down is taken, and each
    execution waited once (one STEP_WAITING per step)."""
    store = f"--store=sqlite:///{tmp_path / 'm.db'}"
    with maestro_serve(store) as server:
        async with MaestroClient(server.address) as client:
            await client.start(APPROVAL, {}, execution_id="waits")
            await client.start(NAP, {}, execution_id="naps")
            await first(client.watch("waits"), EventType.STEP_WAITING, "submitted")
            await first(client.watch("naps"), EventType.STEP_WAITING, "nap")
            deadline = (await client.get("naps")).steps[0].deadline
            await client.signal_execution("waits", "submitted", {"n": 1})
            await first(client.watch("waits"), EventType.STEP_WAITING, "approved")
        server.process.kill()
        server.process.wait(timeout=30)
    with maestro_serve(store) as server:
        async with MaestroClient(server.address) as client:
            assert (await client.get("naps")).steps[0].deadline == deadline
            await client.signal_execution("waits", "approved", {"by": "after the crash"})
            await first(client.watch("naps"), EventType.STEP_WAITING, "approved")
            await client.signal_execution("naps", "approved", {"ok": True})
            logs = {i: await ended(client, i) for i in ("waits", "naps")}
    for execution_id, log in logs.items():
        assert log[-1].type == EventType.WORKFLOW_COMPLETED, execution_id
        assert [e.sequence for e in log] == list(range(1, len(log) + 1))
        waited = [e.step_id for e in log if e.type == EventType.STEP_WAITING]
        assert len(waited) == len(set(waited)), f"{execution_id} waited again: {waited}"
    assert plain(logs["waits"][-1].output) == {"form": {"n": 1}, "by": "after the crash"}
    nap_ended = next(e for e in logs["naps"] if e.type == EventType.STEP_SUCCEEDED)
    assert nap_ended.time is not None and deadline is not None
    assert nap_ended.time >= deadline


async def test_a_signal_reaches_the_replica_that_runs_the_execution(
    postgres_url: str,
) -> None:
    """With two replicas on PostgreSQL, a signal sent through the one that does not run the
    execution is stored, and the owner takes it at its next lease renewal."""
    empty_tables(postgres_url)
    flags = (f"--store={postgres_url}", "--lease", "3s")
    with maestro_serve(*flags) as owner, maestro_serve(*flags) as other:
        async with MaestroClient(owner.address) as a, MaestroClient(other.address) as b:
            started = await a.start(APPROVAL, {})
            execution_id = started.execution_id
            await first(a.watch(execution_id), EventType.STEP_WAITING, "submitted")
            await b.signal_execution(execution_id, "submitted", {"via": "b"})
            await b.signal_execution(execution_id, "approved", {"by": "b"})
            deadline = time.monotonic() + 60
            while (await b.get(execution_id)).state != ExecutionState.COMPLETED:
                assert time.monotonic() < deadline, "the owner never took the signals"
                await asyncio.sleep(0.1)
            log = await ended(b, execution_id)
    assert plain(log[-1].output) == {"form": {"via": "b"}, "by": "b"}
    assert not any(e["event"] == "executions resumed" for e in other.log)


@pytest.mark.timeout(600)  # seven runs of the CLI, each a Python start on a shared machine
async def test_the_cli_sends_signals_locally_and_to_a_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    """`execute --signal NAME=JSON` feeds an embedded run; `executions signal` a server's."""
    workflow = tmp_path / "approval.yaml"
    workflow.write_text(APPROVAL)
    local = maestro(
        "execute", workflow, "--signal", 'approved={"by": "cli"}', "--signal", 'submitted={"n": 2}'
    )
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout) == {"form": {"n": 2}, "by": "cli"}
    assert "✉ signal received submitted (signal submitted, id cli-2)" in local.stderr
    started = maestro("execute", workflow, "--server", server.address, "--no-wait")
    execution_id = started.stdout.strip()
    payload = tmp_path / "form.json"
    payload.write_text('{"n": 3}')
    sends = [
        ("submitted", "--data-file", str(payload)),
        ("approved", "--data", '{"by": "remote"}'),
    ]
    for name, flag, value in sends:
        sent = maestro(
            "executions",
            "signal",
            execution_id,
            name,
            flag,
            value,
            "--signal-id",
            name,
            "--server",
            server.address,
        )
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout == f"signal {name!r} ({name}): sent\n"
    async with MaestroClient(server.address) as client:
        log = await ended(client, execution_id)
    assert plain(log[-1].output) == {"form": {"n": 3}, "by": "remote"}
    refused = maestro("executions", "signal", execution_id, "approved", "--server", server.address)
    assert refused.returncode == 1 and "FAILED_PRECONDITION" in refused.stderr, refused.stderr
    mixed = maestro("execute", workflow, "--server", server.address, "--signal", "a={}")
    assert mixed.returncode == 1 and "--signal applies to runs in this process" in mixed.stderr


def test_execute_gives_its_signals_to_the_sub_workflows_it_runs(tmp_path: Path) -> None:
    """`execute --signal` of a file whose `wait` steps are a child's: the child takes them."""
    (tmp_path / "approval.yaml").write_text(APPROVAL)
    parent = tmp_path / "parent.yaml"
    parent.write_text(
        "name: parent\n"
        'services:\n  unused: {type: grpc, endpoint: "127.0.0.1:9"}\n'
        "steps:\n"
        "  - id: approve\n    workflow: {file: approval.yaml}\n    output: approval\n"
        'output: "{{ .approval }}"\n'
    )
    local = maestro(
        "execute", parent, "--signal", 'approved={"by": "cli"}', "--signal", 'submitted={"n": 2}'
    )
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout) == {"form": {"n": 2}, "by": "cli"}
