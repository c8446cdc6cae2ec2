"""The CLI against a running server: `execute --server`, `executions …`, `workflows …`."""

import json
import re
from pathlib import Path

from tests.api.conftest import INPUT, ServerProcess, onboarding_yaml
from tests.conftest import EXAMPLE, maestro


def _shape(stderr: str) -> list[str]:
    """The event lines without timings, which differ run to run."""
    return [re.sub(r"\d+ ms|\d+\.\d s", "T", line) for line in stderr.splitlines()]


def test_execute_through_a_server_prints_what_a_local_run_prints(
    server: ServerProcess,
    service_processes: dict[str, str],
    endpoints: list[str],
    tmp_path: Path,
) -> None:
    """Same stdout shape, same event lines, same exit code, local or remote."""
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(onboarding_yaml(service_processes))
    remote = maestro(
        "execute", workflow, "--input-file", EXAMPLE / "input.json", "--server", server.address
    )
    local = maestro("execute", workflow, "--input-file", EXAMPLE / "input.json")
    assert (remote.returncode, local.returncode) == (0, 0), remote.stderr + local.stderr
    assert (
        set(json.loads(remote.stdout))
        == set(json.loads(local.stdout))
        == {"user_id", "subscription_id"}
    )
    assert _shape(remote.stderr) == _shape(local.stderr)


def test_execute_through_a_server_exit_codes(
    server: ServerProcess, service_processes: dict[str, str], tmp_path: Path
) -> None:
    """Compensated is 2; an invalid workflow is 1 with file:line:column diagnostics."""
    failing = tmp_path / "failing.yaml"
    failing.write_text(onboarding_yaml(service_processes, email="failing_email_service"))
    result = maestro("execute", failing, "--input", json.dumps(INPUT), "--server", server.address)
    assert result.returncode == 2
    assert "↶✓ compensation succeeded setup_subscription" in result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: w\nservices: {}\nsteps: []\n")
    result = maestro("execute", broken, "--server", server.address)
    assert result.returncode == 1
    assert f"{broken}:2:11: error: 'services' is empty" in result.stderr


def test_workflows_and_executions_commands(
    server: ServerProcess, service_processes: dict[str, str], tmp_path: Path
) -> None:
    """Register, list and get workflows; list, get, watch and cancel executions."""
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(onboarding_yaml(service_processes))
    address = ["--server", server.address]
    assert maestro("workflows", "register", workflow, *address).stdout == (
        "user_onboarding 1.0: registered\n"
    )
    assert maestro("workflows", "register", workflow, *address).stdout == (
        "user_onboarding 1.0: already registered\n"
    )
    listing = maestro("workflows", "list", *address)
    assert listing.stdout.startswith("user_onboarding  1.0  ")
    stored = json.loads(maestro("workflows", "get", "user_onboarding", *address).stdout)
    assert (stored["name"], stored["version"]) == ("user_onboarding", "1.0")

    run = maestro(
        "execute",
        workflow,
        "--input",
        json.dumps(INPUT),
        "--events",
        "jsonl",
        "--execution-id",
        "cli-remote-1",
        *address,
    )
    assert run.returncode == 0, run.stderr
    executions = maestro("executions", "list", "--state", "completed", *address)
    assert "cli-remote-1  user_onboarding 1.0  COMPLETED" in executions.stdout
    got = json.loads(maestro("executions", "get", "cli-remote-1", *address).stdout)
    assert got["state"] == "EXECUTION_STATE_COMPLETED"
    assert [s["step_id"] for s in got["steps"]] == [
        "create_user",
        "setup_subscription",
        "add_to_crm",
        "send_welcome_email",
    ]
    watched = maestro(
        "executions", "watch", "cli-remote-1", "--after", "8", "--events", "jsonl", *address
    )
    assert [json.loads(line)["sequence"] for line in watched.stdout.splitlines()] == ["9", "10"]
    cancel = maestro("executions", "cancel", "cli-remote-1", *address)
    assert cancel.returncode == 1
    assert "FAILED_PRECONDITION: execution 'cli-remote-1' is completed" in cancel.stderr
    missing = maestro("executions", "get", "nope", *address)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
