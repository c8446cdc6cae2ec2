"""`wait` and `sleep` steps as the workflow language reads them, and as tools show them."""

from datetime import timedelta

from maestro_server.api.graph import workflow_graph
from maestro_server.cli.explain import explain
from maestro_server.cli.graph import to_mermaid
from maestro_server.definition import load_workflow
from maestro_server.durations import format_duration
from maestro_server.model.workflow import Sleep, WaitForSignal

PAUSES = """
name: pauses
services:
  billing: {type: grpc, endpoint: "billing:50051"}
steps:
  - id: reserve
    service: billing
    method: Reserve
  - id: await_payment
    wait: {signal: payment.confirmed, timeout: 24h}
    output: payment
  - id: cool_off
    sleep: 1m30s
    when: "{{ .input.cool }}"
  - id: not_before
    sleep: {until: "{{ .input.not_before }}"}
    depends_on: [reserve]
  - id: fixed
    sleep: {until: "2026-12-24T18:00:00+01:00"}
  - id: capture
    service: billing
    method: Capture
    input: {amount: "{{ .payment.amount }}"}
    depends_on: [await_payment, fixed]
"""


def test_pause_steps_are_read_with_their_keys() -> None:
    """A pause has no service; its wait or sleep, output, when and depends_on are kept."""
    workflow = load_workflow(PAUSES)
    wait = workflow.step("await_payment")
    assert wait.service == "" and wait.output == "payment"
    assert wait.pause == WaitForSignal("payment.confirmed", timedelta(hours=24))
    assert workflow.step("cool_off").pause == Sleep(duration=timedelta(seconds=90))
    assert workflow.step("cool_off").when is not None
    assert workflow.step("not_before").depends_on == ("reserve",)
    until = workflow.step("not_before").pause
    assert isinstance(until, Sleep) and until.duration is None and until.until is not None
    assert workflow.step("reserve").pause is None


def test_graphs_draw_waits_and_sleeps_apart_from_calls() -> None:
    """Mermaid: a wait is a hexagon, a sleep a parallelogram; the proto graph names them."""
    workflow = load_workflow(PAUSES)
    mermaid = to_mermaid(workflow)
    assert (
        'step_await_payment{{"await_payment<br/>wait for signal payment.confirmed '
        '(timeout 1d)"}}' in mermaid
    )
    assert 'step_cool_off[/"cool_off<br/>sleep 1m30s<br/>when {{ .input.cool }}"/]' in mermaid
    assert 'step_not_before[/"not_before<br/>sleep until {{ .input.not_before }}"/]' in mermaid
    assert 'step_reserve["reserve<br/>billing: Reserve"]' in mermaid
    steps = {s.step_id: s for s in workflow_graph(workflow)}
    assert (steps["await_payment"].wait_signal, steps["await_payment"].method) == (
        "payment.confirmed",
        "",
    )
    assert steps["await_payment"].wait_timeout.ToTimedelta() == timedelta(hours=24)
    assert steps["cool_off"].sleep == "1m30s"
    assert steps["fixed"].sleep == "2026-12-24T18:00:00+01:00"
    assert not steps["reserve"].wait_signal and not steps["reserve"].sleep


def test_explain_says_what_a_pause_waits_for() -> None:
    """`validate --explain` on a pause: nothing is sent; the signal, or the rendered time."""
    workflow = load_workflow(PAUSES)
    data = {"cool": True, "not_before": "2026-12-24T18:00:00Z"}
    assert explain(workflow, "await_payment", data) == (
        "step await_payment: sends nothing; waits for the signal 'payment.confirmed', for at "
        "most 1d\nits output is the signal's payload (read as .payment)\n"
    )
    assert explain(workflow, "not_before", data) == (
        "step not_before: sends nothing; sleeps until 2026-12-24T18:00:00Z (rendered with the "
        "example input)\n"
    )


def test_durations_are_written_as_a_workflow_writes_them() -> None:
    assert [format_duration(timedelta(seconds=s)) for s in (0.25, 30, 90, 3600, 86400 + 60, 0)] == [
        "250ms",
        "30s",
        "1m30s",
        "1h",
        "1d1m",
        "0s",
    ]
