"""`maestro execute` as a user runs it: a subprocess against the real onboarding services."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, ROOT, maestro


def execute(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return maestro("execute", EXAMPLE / "workflow.yaml", *args)


def test_completed_run_prints_the_output_and_exits_zero(endpoints: list[str]) -> None:
    """stdout holds the workflow's output as JSON; stderr shows a line per event."""
    result = execute("--input-file", EXAMPLE / "input.json", *endpoints)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert set(output) == {"user_id", "subscription_id"}
    lines = result.stderr.splitlines()
    assert lines[0] == "[  1] ▶ workflow started"
    assert lines[-1].startswith("[ 10] ■ workflow completed (")
    assert "✓ step succeeded add_to_crm (attempt 1, " in result.stderr


def test_events_jsonl_uses_the_proto_json_mapping(endpoints: list[str]) -> None:
    """--events jsonl prints every event as one JSON line, in order, on stdout."""
    result = execute(
        "--input",
        json.dumps({"email": "b@x.io", "password": "p", "name": "B", "plan": "team"}),
        "--events",
        "jsonl",
        "--execution-id",
        "cli-jsonl-1",
        *endpoints,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["sequence"] for e in events] == [str(n) for n in range(1, 11)]
    assert events[0]["type"] == "EVENT_TYPE_WORKFLOW_STARTED"
    assert events[0]["executionId"] == "cli-jsonl-1"
    assert events[-1]["type"] == "EVENT_TYPE_WORKFLOW_COMPLETED"
    assert events[-1]["state"] == "EXECUTION_STATE_COMPLETED"
    assert events[-1]["output"]["subscription_id"].startswith("sub_")
    assert result.stderr == ""


def test_compensated_run_exits_two(endpoints: list[str]) -> None:
    """The email service refusing the address: compensations run, exit code 2, no output."""
    result = execute(
        "--input",
        json.dumps({"email": "no-at-sign", "password": "p", "name": "N", "plan": "pro"}),
        *endpoints,
    )
    # The auth service refuses the address first: nothing to compensate yet.
    assert result.returncode == 2
    assert result.stdout == ""
    assert "INVALID_ARGUMENT" in result.stderr
    assert "workflow failed create_user" in result.stderr


def test_compensation_failed_exits_three(endpoints: list[str], tmp_path: Path) -> None:
    """A compensation that cannot succeed (its service is gone) ends with exit code 3."""
    yaml = (
        (EXAMPLE / "workflow.yaml")
        .read_text()
        .replace(
            "services:\n", 'services:\n  crm_gone: {type: http, endpoint: "http://127.0.0.1:9"}\n'
        )
        .replace(
            "      method: DELETE /contacts/{{ .crm_contact.id }}",
            "      service: crm_gone\n      method: DELETE /contacts/{{ .crm_contact.id }}\n"
            "      retry: {max_attempts: 2, initial_backoff: 10ms}",
        )
    )
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml)
    result = maestro(
        "execute",
        path,
        "--input-file",
        EXAMPLE / "input.json",
        *endpoints,
        "--endpoint",
        "email_service=127.0.0.1:9",
    )
    assert result.returncode == 3, result.stderr
    assert "↶✗ compensation failed add_to_crm (attempt 2" in result.stderr
    assert "↶✓ compensation succeeded setup_subscription" in result.stderr
    assert "compensation failed for step 'add_to_crm'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--input", "[1, 2]"],
            "--input: the input must be a JSON object, not list",
            id="not an object",
        ),
        pytest.param(["--input", '{"a": NaN}'], "--input: NaN is not valid JSON", id="NaN"),
        pytest.param(
            ["--input", '{"a": 1, "a": 2}'], "--input: duplicate key 'a'", id="duplicate key"
        ),
        pytest.param(["--input", '{"a": '], "--input:1:7: invalid JSON", id="broken JSON"),
        pytest.param(
            ["--input-file", "missing.json"],
            "missing.json: cannot read the input",
            id="missing file",
        ),
        pytest.param(
            ["--endpoint", "nope=127.0.0.1:1"],
            "--endpoint: no service named nope",
            id="unknown service",
        ),
        pytest.param(
            ["--endpoint", "just-text"], "--endpoint wants SERVICE=ADDRESS", id="malformed endpoint"
        ),
    ],
)
def test_bad_input_exits_one(args: list[str], message: str) -> None:
    """Input problems stop before anything runs, with exit code 1 and a clear message."""
    result = execute(*args)
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""


def test_invalid_workflow_exits_one_with_diagnostics(tmp_path: Path) -> None:
    """A broken workflow is reported like `validate` does, exit code 1."""
    path = tmp_path / "w.yaml"
    path.write_text("name: w\nservices: {}\nsteps: []\n")
    result = maestro("execute", path)
    assert result.returncode == 1
    assert f"{path}:2:11: error: 'services' is empty" in result.stderr


def test_input_schema_is_enforced(tmp_path: Path) -> None:
    """Input against the workflow's input_schema: exit 1 naming the problem."""
    path = tmp_path / "w.yaml"
    path.write_text("""\
name: w
input_schema: {type: object, required: [email], properties: {email: {type: string}}}
services:
  s: {type: grpc, endpoint: "127.0.0.1:9"}
steps:
  - {id: a, service: s, method: A}
""")
    result = maestro("execute", path, "--input", '{"email": 5}')
    assert result.returncode == 1
    assert "input does not match input_schema: email: 5 is not of type 'string'" in result.stderr


def test_demo_runs_both_examples() -> None:
    """`make demo`'s script: the onboarding saga completed and compensated, then the order
    example through `maestro serve`: paid once confirmed, and released when out of stock;
    services and server stopped after."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith(
        "Demo finished: one completed saga, one compensated saga;"
        " one order paid, one order released."
    )
    assert "↶✓ compensation succeeded setup_subscription" in result.stderr
    assert "the payment runs as ord-1001:charge" in result.stdout
    assert "client.signal_execution('ord-1001:charge', 'payment_confirmed'" in result.stdout
    assert '"confirmation": "psp-4242"' in result.stdout
    released = [line.split("] ", 1)[1] for line in result.stderr.splitlines() if "↶✓" in line]
    assert [line.split(" (")[0] for line in released[-2:]] == [
        "↶✓ compensation succeeded reserve_items[1]",
        "↶✓ compensation succeeded reserve_items[0]",
    ]
