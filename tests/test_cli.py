"""The `maestro` command line, run as a real subprocess."""

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, maestro

EXAMPLE = ROOT / "examples/onboarding/workflow.yaml"


def _broken_copy(tmp_path: Path) -> Path:
    text = EXAMPLE.read_text()
    text = text.replace("    output: subscription\n", "    output: subscription\n    retires: 3\n")
    text = text.replace("service: crm_service", "service: crm_servce")
    broken = tmp_path / "broken.yaml"
    broken.write_text(text)
    return broken


def test_validate_example_exits_zero_with_a_summary() -> None:
    """A valid workflow: exit 0 and a one-line summary."""
    result = maestro("validate", "examples/onboarding/workflow.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "examples/onboarding/workflow.yaml: ok "
        "(user_onboarding 1.0: 4 services, 4 steps, 2 compensations)\n"
    )
    assert result.stderr == ""


def test_validate_broken_copy_exits_one_with_located_diagnostics(tmp_path: Path) -> None:
    """An invalid workflow: exit 1, compiler-style diagnostics on stderr, nothing on stdout."""
    broken = _broken_copy(tmp_path)
    result = maestro("validate", broken)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{broken}:40:5: error: unknown key 'retires' in a step (did you mean 'retry'?)",
        f"{broken}:47:14: error: unknown service 'crm_servce' (did you mean 'crm_service'?)",
        f"{broken}: 2 errors",
    ]


def test_validate_json_format(tmp_path: Path) -> None:
    """--format json reports every file, valid or not, on stdout."""
    broken = _broken_copy(tmp_path)
    result = maestro("validate", "--format", "json", EXAMPLE, broken)
    assert result.returncode == 1
    report = json.loads(result.stdout)["files"]
    assert [entry["valid"] for entry in report] == [True, False]
    assert report[0]["workflow"]["name"] == "user_onboarding"
    assert report[1]["diagnostics"][0] == {
        "file": str(broken),
        "line": 40,
        "column": 5,
        "severity": "error",
        "code": "unknown-key",
        "path": "steps[1].retires",
        "message": "unknown key 'retires' in a step (did you mean 'retry'?)",
    }


def test_validate_missing_file(tmp_path: Path) -> None:
    """A file that does not exist is an error for that file, exit 1."""
    missing = tmp_path / "nope.yaml"
    result = maestro("validate", missing)
    assert result.returncode == 1
    assert f"{missing}:1:1: error: cannot read the file" in result.stderr


def test_graph_prints_mermaid() -> None:
    """graph draws steps, dependencies, and compensations as dashed edges."""
    result = maestro("graph", EXAMPLE)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    assert "    step_create_user --> step_setup_subscription" in lines
    assert "    step_setup_subscription -.-> step_setup_subscription_undo" in lines
    assert "    step_add_to_crm -.-> step_add_to_crm_undo" in lines
    assert not any("send_welcome_email -.->" in line for line in lines)


@pytest.mark.parametrize(
    ("file", "summary", "inputs"),
    [
        pytest.param(
            "examples/order/workflow.yaml",
            "order 1.0: 1 services, 3 steps, 1 compensations",
            ["input.json", "input-out-of-stock.json"],
            id="order",
        ),
        pytest.param(
            "examples/order/payment.yaml",
            "payment 1.0: 1 services, 2 steps, 1 compensations",
            [],
            id="payment",
        ),
    ],
)
def test_validate_order_example(file: str, summary: str, inputs: list[str]) -> None:
    """The order example's workflows are valid on their own, with their example inputs."""
    result = maestro("validate", file)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{file}: ok ({summary})\n", "")
    for name in inputs:
        checked = maestro("validate", "--input-file", f"examples/order/{name}", file)
        assert checked.returncode == 0, checked.stderr


def test_graph_of_the_order_example() -> None:
    """for_each as a subroutine box, the sleep a parallelogram, the payment a rounded box (a
    sub-workflow, undone by compensating it), each compensation dashed; the payment's own graph
    has the wait as a hexagon."""
    result = maestro("graph", "examples/order/workflow.yaml")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith('    step_reserve_items[["reserve_items<br/>')
    assert "for each item in {{ .input.items }}" in lines[1]
    assert '    step_cooling_off[/"cooling_off<br/>sleep 1s"/]' in lines
    assert '    step_charge("charge<br/>runs workflow file payment.yaml")' in lines
    for edge in (
        "step_reserve_items --> step_cooling_off",
        "step_cooling_off --> step_charge",
        "step_reserve_items -.-> step_reserve_items_undo",
        "step_charge -.-> step_charge_undo",
    ):
        assert f"    {edge}" in lines
    payment = maestro("graph", "examples/order/payment.yaml")
    assert payment.returncode == 0, payment.stderr
    payment_lines = payment.stdout.splitlines()
    assert "    step_charge_card -.-> step_charge_card_undo" in payment_lines
    assert any(line.startswith("    step_await_confirmation{{") for line in payment_lines)


def test_graph_of_invalid_workflow_fails(tmp_path: Path) -> None:
    """graph refuses an invalid workflow with its diagnostics."""
    result = maestro("graph", _broken_copy(tmp_path))
    assert result.returncode == 1
    assert "unknown service 'crm_servce'" in result.stderr


def test_usage_error_exits_two() -> None:
    """argparse's usage errors keep their conventional code."""
    result = maestro("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
