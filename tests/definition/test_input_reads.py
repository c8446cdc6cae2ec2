"""The `.input` values a workflow cannot do without, found at load and checked at the door.

A pure unit: the loader and `check_input` are functions of the workflow text and the input.
The same refusals through the CLI, gRPC and the SDK are in tests/api/test_checked_before_running.
"""

from pathlib import Path

import pytest

from maestro_server.definition import load_workflow, load_workflow_file
from maestro_server.definition.inputs import check_input
from maestro_server.errors import InvalidInputError

WORKFLOW = """\
name: reads
services:
  crm:
    type: http
    endpoint: "http://crm:8080"
    headers: {x-tenant: "{{ .input.tenant }}"}
  mail: {type: http, endpoint: "http://mail:8080", headers: {x-lang: "{{ .input.lang }}"}}
steps:
  - id: plain
    service: crm
    method: POST /contacts/{{ .input.user.id }}
    input:
      email: "{{ .input.user.email }}"
      nick: "{{ .input.nick | default('anon') }}"
      go_nick: '{{ .input.go_nick | default "anon" }}'
      maybe: '{{ index .input "maybe" }}'
      first: "{{ .input.tags[0] }}"
      vip: "{{ if .input.vip }}{{ .input.vip_code }}{{ end }}"
      either: "{{ .input.a or .input.b }}"
      defined: "{{ .input.opt if .input.opt is defined else 1 }}"
    compensate:
      method: DELETE /contacts/{{ .input.undo_id }}
  - id: guarded
    service: mail
    method: POST /send
    when: "{{ .input.send }}"
    input: {to: "{{ .input.mail_to }}"}
output:
  total: "{{ .input.total }}"
"""


def test_only_values_read_whatever_happens_are_needed() -> None:
    """Paths in unguarded steps, their method paths, `when`s, the output and the headers of
    services such steps call; not under default/index/is defined, in branches, on the right of
    or, in compensations, in `when`-guarded steps or in headers only they use."""
    workflow = load_workflow(WORKFLOW)
    needed = {read.path: read.reader for read in workflow.input_reads}
    assert needed == {
        ("tenant",): "service 'crm' (headers.x-tenant)",
        ("user", "id"): "step 'plain' (method)",
        ("user", "email"): "step 'plain' (input.email)",
        ("tags", 0): "step 'plain' (input.first)",
        ("vip",): "step 'plain' (input.vip)",
        ("a",): "step 'plain' (input.either)",
        ("send",): "step 'guarded' (when)",
        ("total",): "the workflow's output.total",
    }


def test_a_start_without_a_needed_value_is_refused_naming_it() -> None:
    """The path, and the step and field that read it; every missing one at once."""
    workflow = load_workflow(WORKFLOW)
    complete = {
        "tenant": "t",
        "user": {"id": 1, "email": "a@b.c"},
        "tags": ["x"],
        "vip": False,
        "a": 1,
        "send": True,
        "total": 3,
    }
    assert check_input(complete, "input", workflow) == complete
    with pytest.raises(InvalidInputError) as caught:
        check_input({**complete, "user": {"id": 1}, "tags": []}, "input", workflow)
    assert caught.value.message == (
        "input: .input.user.email is missing, and step 'plain' (input.email) reads it; "
        ".input.tags[0] is missing, and step 'plain' (input.first) reads it"
    )


def test_the_type_a_downstream_field_wants_is_checked_at_the_door(tmp_path: Path) -> None:
    """A value that goes unchanged into a gRPC field must be of a type the field takes."""
    protos = Path(__file__).parent / "schema_invalid" / "protos" / "shop" / "v1" / "shop.proto"
    (tmp_path / "shop.proto").write_bytes(protos.read_bytes())
    (tmp_path / "w.yaml").write_text("""\
name: typed
services:
  shop: {type: grpc, endpoint: "127.0.0.1:1", protos: [shop.proto]}
steps:
  - id: order
    service: shop
    method: CreateOrder
    input: {quantity: "{{ .input.n }}", gift: "{{ .input.gift }}", tags: "{{ .input.tags }}"}
""")
    workflow = load_workflow_file(tmp_path / "w.yaml")
    assert check_input({"n": "12", "gift": True, "tags": ["a"]}, "input", workflow)
    with pytest.raises(InvalidInputError) as caught:
        check_input({"n": "twelve", "gift": "yes", "tags": "a"}, "input", workflow)
    assert caught.value.message == (
        "input: .input.n is text, but step 'order' (input.quantity) sends it as "
        "shop.v1.CreateOrderRequest.quantity (int64), which takes a whole number; "
        ".input.gift is text, but step 'order' (input.gift) sends it as "
        "shop.v1.CreateOrderRequest.gift (bool), which takes true or false; "
        ".input.tags is text, but step 'order' (input.tags) sends it as "
        "shop.v1.CreateOrderRequest.tags (repeated string), which takes a list"
    )


def test_input_schema_still_applies() -> None:
    """A workflow with input_schema refuses what the schema refuses, as before."""
    workflow = load_workflow("""\
name: s
input_schema: {type: object, properties: {n: {type: integer}}}
services:
  crm: {type: http, endpoint: "http://crm:8080"}
steps:
  - {id: a, service: crm, method: POST /x, input: {n: "{{ .input.n }}"}}
""")
    with pytest.raises(InvalidInputError, match="input does not match input_schema: n: "):
        check_input({"n": "x"}, "input", workflow)
    with pytest.raises(InvalidInputError, match=r"\.input\.n is missing"):
        check_input({}, "input", workflow)
