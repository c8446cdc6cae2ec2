"""The for_each language: what a valid step becomes, and how graphs show it."""

import json
from pathlib import Path

import pytest

from maestro_server.api.graph import workflow_graph
from maestro_server.cli.explain import explain
from maestro_server.cli.graph import to_mermaid
from maestro_server.definition import load_workflow
from maestro_server.errors import InvalidWorkflowError
from maestro_server.model.workflow import ForEach
from maestro_server.templating.values import Template

EXAMPLE_PROTOS = Path(__file__).parents[2] / "examples/onboarding/protos"
ORDER = """
name: order
services:
  inventory: {type: http, endpoint: "http://inventory:8080"}
steps:
  - id: reserve
    for_each: "{{ .input.items }}"
    as: line
    concurrency: 4
    service: inventory
    method: POST /reservations
    input: {sku: "{{ .line.sku }}", position: "{{ .index }}"}
    when: "{{ .line.quantity > 0 }}"
    output: reservations
    compensate:
      method: DELETE /reservations/{{ .reservations.id }}
      input: {sku: "{{ .line.sku }}", position: "{{ .index }}"}
  - id: fixed
    for_each: [a, b]
    service: inventory
    method: POST /fixed/{{ .item }}
  - id: total
    service: inventory
    method: POST /total
    input: {count: "{{ .reservations | length }}", first: "{{ index .reservations 0 }}"}
output: {reservations: "{{ .reservations }}"}
"""


def test_a_for_each_step_binds_its_element_and_index_in_input_when_and_compensate() -> None:
    """`as` names the element, `.index` its position; later steps read the output as a list."""
    workflow = load_workflow(ORDER)
    reserve = workflow.step("reserve").for_each
    assert reserve is not None
    assert isinstance(reserve.items, Template) and reserve.name == "line"
    assert reserve.concurrency == 4
    assert workflow.step("fixed").for_each == ForEach(
        workflow.step("fixed").for_each.items,  # type: ignore[union-attr]
        "item",
        1,
    )
    assert workflow.step("total").for_each is None


def test_inputs_read_per_element_are_not_required_at_the_door() -> None:
    """An empty list renders no element's input: only the list itself is needed."""
    workflow = load_workflow(ORDER)
    assert [read.path for read in workflow.input_reads] == [("items",)]


def test_graph_draws_a_for_each_step_as_a_subroutine_saying_what_it_runs_over() -> None:
    """`maestro graph` labels it "for each line in …", and the API's graph names the list."""
    workflow = load_workflow(ORDER)
    mermaid = to_mermaid(workflow)
    assert (
        '    step_reserve[["reserve<br/>inventory: POST /reservations<br/>for each line in '
        in mermaid
    )
    assert '{{ .input.items }}, 4 at a time<br/>when {{ .line.quantity > 0 }}"]]' in mermaid
    assert 'POST /fixed/{{ .item }}<br/>for each item in a list of 2"]]' in mermaid
    steps = {step.step_id: step for step in workflow_graph(workflow)}
    assert (steps["reserve"].for_each, steps["reserve"].for_each_as) == (
        "{{ .input.items }}",
        "line",
    )
    assert steps["reserve"].for_each_concurrency == 4
    assert steps["total"].for_each == ""


def test_explain_shows_a_for_each_step_for_its_first_element() -> None:
    """`validate --explain` binds the example input's first element and `.index` 0; a later
    step sees the for_each output as a list of stand-ins."""
    workflow = load_workflow(ORDER)
    text = explain(workflow, "reserve", {"items": [{"sku": "a", "quantity": 2}, {"sku": "b"}]})
    lines = text.splitlines()
    assert (
        lines[1] == "for each line in {{ .input.items }}: 2 elements; shown for element 0 (index 0)"
    )
    assert json.loads("\n".join(lines[4:])) == {"sku": "a", "position": 0}
    empty = explain(workflow, "reserve", {"items": []}).splitlines()
    assert empty[1].endswith(": an empty list; shown with a stand-in element (index 0)")
    assert '"sku": "<line.sku>"' in "\n".join(empty)
    total = explain(workflow, "total", {"items": []})
    assert '"count": 1' in total


BILLING = """
name: plans
services:
  billing:
    type: grpc
    endpoint: "billing:50052"
    protos: [billing/v1/billing.proto]
steps:
  - id: subscribe
    for_each: "{{ .input.plans }}"
    as: plan
    service: billing
    method: CreateSubscription
    input: {user_id: "{{ .input.user }}", plan: "{{ .plan }}"}
    output: subscriptions
    compensate:
      method: CancelSubscription
      input: {subscription_id: "{{ .subscriptions.READ }}"}
  - id: first
    service: billing
    method: GetSubscription
    input: {subscription_id: "{{ (index .subscriptions 0).id }}"}
output: {all: "{{ .subscriptions }}", first_plan: "{{ subscriptions[0].FIELD }}"}
"""
PROTO = EXAMPLE_PROTOS / "billing/v1/billing.proto"


def test_reads_of_a_for_each_output_are_checked_against_the_elements_response() -> None:
    """In the compensation the output is the element's response; elsewhere a list of them,
    whose elements' fields are checked and whose whole is not taken for a message."""
    files = {"billing/v1/billing.proto": PROTO.read_bytes()}
    valid = load_workflow(BILLING.replace("READ", "id").replace("FIELD", "plan_name"), files=files)
    assert valid.step("subscribe").for_each is not None
    with pytest.raises(InvalidWorkflowError) as caught:
        load_workflow(BILLING.replace("READ", "idd").replace("FIELD", "plan_namee"), files=files)
    messages = [d.message for d in caught.value.diagnostics]
    assert len(messages) == 2
    assert messages[0].startswith("template reads .subscriptions.idd, which step 'subscribe'")
    assert messages[1].startswith(
        "template reads .subscriptions[0].plan_namee, which step 'subscribe'"
    )
