"""Valid workflows load into the model the language reference describes."""

from datetime import timedelta
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from maestro_server.definition import load_workflow, load_workflow_file
from maestro_server.errors import InvalidWorkflowError
from maestro_server.model.workflow import (
    DEFAULT_COMPENSATION_RETRY,
    DEFAULT_RETRY,
    DEFAULT_RETRY_ON,
    GrpcMethod,
    HttpMethod,
    ServiceType,
)
from maestro_server.templating import Template

ROOT = Path(__file__).resolve().parents[2]

# The seed's example exactly as the user wrote it in the issue (flow style).
SEED = """\
name: user_onboarding
version: "1.0"
services:
  auth_service: {type: grpc, endpoint: "auth-service:50051"}
  billing_service: {type: grpc, endpoint: "billing-service:50052"}
  crm_service: {type: http, endpoint: "http://crm-api:8080"}
  email_service: {type: grpc, endpoint: "email-service:50053"}
steps:
  - id: create_user
    service: auth_service
    method: CreateUser
    input: {email: "{{ .input.email }}", password: "{{ .input.password }}"}
    output: user
  - id: setup_subscription
    service: billing_service
    method: CreateSubscription
    input: {user_id: "{{ .user.id }}", plan: "{{ .input.plan }}"}
    output: subscription
    compensate:
      method: CancelSubscription
      input: {subscription_id: "{{ .subscription.id }}"}
  - id: add_to_crm
    service: crm_service
    method: POST /contacts
    input: {user_id: "{{ .user.id }}", email: "{{ .input.email }}", subscription_tier: "{{ .subscription.tier }}"}
    output: crm_contact
    compensate:
      method: DELETE /contacts/{{ .crm_contact.id }}
  - id: send_welcome_email
    service: email_service
    method: SendTemplate
    input: {to: "{{ .input.email }}", template: "welcome", vars: {name: "{{ .input.name }}", plan: "{{ .subscription.plan_name }}"}}
output:
  user_id: "{{ .user.id }}"
  subscription_id: "{{ .subscription.id }}"
"""

BASE = """\
name: w
services:
  auth: {type: grpc, endpoint: "auth:50051"}
  crm: {type: http, endpoint: "https://crm.example.com"}
steps:
"""


def test_seed_example_validates_as_written() -> None:
    """The user's example loads unchanged, each step after the one before."""
    workflow = load_workflow(SEED)
    assert [s.id for s in workflow.steps] == [
        "create_user",
        "setup_subscription",
        "add_to_crm",
        "send_welcome_email",
    ]
    assert [s.depends_on for s in workflow.steps] == [
        (),
        ("create_user",),
        ("setup_subscription",),
        ("add_to_crm",),
    ]
    assert workflow.services["crm_service"].type is ServiceType.HTTP
    crm = workflow.step("add_to_crm")
    assert isinstance(crm.method, HttpMethod) and crm.method.verb == "POST"
    assert crm.compensate is not None and str(crm.compensate.method) == (
        "DELETE /contacts/{{ .crm_contact.id }}"
    )
    assert workflow.step("create_user").method == GrpcMethod("CreateUser")


def test_example_file_is_the_seed() -> None:
    """examples/onboarding/workflow.yaml is the seed's example, unchanged in meaning."""
    example = load_workflow_file(ROOT / "examples/onboarding/workflow.yaml")
    seed = load_workflow(SEED)
    assert [(s.id, s.service, str(s.method), s.output, s.depends_on) for s in example.steps] == [
        (s.id, s.service, str(s.method), s.output, s.depends_on) for s in seed.steps
    ]
    context = {"user": {"id": "u1"}, "subscription": {"id": "s1"}}
    assert example.output is not None and seed.output is not None
    assert example.output.render(context) == seed.output.render(context)


def test_rendering_the_seed_inputs() -> None:
    """Templates keep types, read earlier outputs and render HTTP paths."""
    workflow = load_workflow(SEED)
    context = {
        "input": {"email": "a@x.io", "name": "Ada", "plan": "pro"},
        "user": {"id": 7},
        "subscription": {"id": "s-1", "tier": "gold", "plan_name": "Pro"},
        "crm_contact": {"id": "c-9"},
    }
    setup = workflow.step("setup_subscription")
    assert setup.input is not None
    assert setup.input.render(context) == {"user_id": 7, "plan": "pro"}
    email = workflow.step("send_welcome_email")
    assert email.input is not None
    assert email.input.render(context) == {
        "to": "a@x.io",
        "template": "welcome",
        "vars": {"name": "Ada", "plan": "Pro"},
    }
    crm = workflow.step("add_to_crm")
    assert crm.compensate is not None and isinstance(crm.compensate.method, HttpMethod)
    assert crm.compensate.method.path.render(context) == "/contacts/c-9"


def test_defaults_apply() -> None:
    """Without policies a step gets the default retry and timeout, its compensation a patient retry."""
    workflow = load_workflow(SEED)
    setup = workflow.step("setup_subscription")
    assert setup.retry == DEFAULT_RETRY
    assert setup.retry.retry_on == DEFAULT_RETRY_ON
    assert setup.timeout == timedelta(seconds=10)
    assert setup.compensate is not None
    assert setup.compensate.retry == DEFAULT_COMPENSATION_RETRY
    assert setup.compensate.retry.max_attempts > setup.retry.max_attempts
    assert workflow.timeout is None


def test_step_retry_overrides_the_service_key_by_key() -> None:
    """A step's retry keys lay over its service's, which lay over the defaults."""
    workflow = load_workflow("""\
name: w
timeout: 1m30s
services:
  auth:
    type: grpc
    endpoint: "auth:50051"
    timeout: 2s
    retry: {max_attempts: 5, initial_backoff: 50ms, retry_on: [UNAVAILABLE, 503]}
steps:
  - {id: a, service: auth, method: A, retry: {max_attempts: 2}, timeout: 250ms}
  - {id: b, service: auth, method: B}
""")
    a, b = workflow.steps
    assert a.retry.max_attempts == 2
    assert a.retry.initial_backoff == timedelta(milliseconds=50)
    assert a.retry.retry_on == frozenset({"UNAVAILABLE", "HTTP_503"})
    assert a.timeout == timedelta(milliseconds=250)
    assert b.retry.max_attempts == 5
    assert b.timeout == timedelta(seconds=2)
    assert workflow.timeout == timedelta(seconds=90)


def test_parallel_branches_and_join() -> None:
    """depends_on makes branches; a join step may read the outputs of every branch."""
    workflow = load_workflow(
        BASE
        + """\
  - {id: root, service: auth, method: Root, output: account}
  - {id: left, service: auth, method: L, depends_on: [root], output: l}
  - {id: right, service: crm, method: "POST /r", depends_on: [root], output: r}
  - id: join
    service: auth
    method: J
    depends_on: [left, right]
    input: {a: "{{ .account.id }}", l: "{{ .l }}", r: "{{ .steps.right.output }}"}
"""
    )
    assert workflow.step("left").depends_on == ("root",)
    assert workflow.step("right").depends_on == ("root",)
    assert workflow.step("join").depends_on == ("left", "right")


def test_yaml_12_core_scalars() -> None:
    """Plain scalars follow YAML 1.2: `yes` and `12:30` stay strings, `010` is ten."""
    workflow = load_workflow(
        BASE
        + """\
  - id: a
    service: auth
    method: A
    input: {flag: yes, time: 12:30, count: 010, hex: 0x1f, on: off, real: 1.10, none: ~}
"""
    )
    step_input = workflow.steps[0].input
    assert step_input is not None
    assert step_input.render({}) == {
        "flag": "yes",
        "time": "12:30",
        "count": 10,
        "hex": 31,
        "on": "off",
        "real": 1.1,
        "none": None,
    }


def test_merge_keys_and_aliases_share_settings() -> None:
    """YAML anchors and merge keys work for small shared blocks."""
    workflow = load_workflow("""\
name: w
x-retry: &patient {max_attempts: 7, initial_backoff: 1s}
services:
  auth: {type: grpc, endpoint: "auth:50051", retry: *patient}
steps:
  - id: a
    service: auth
    method: A
    retry: {<<: *patient, max_attempts: 2}
""")
    assert workflow.services["auth"].retry.max_attempts == 7
    assert workflow.steps[0].retry.max_attempts == 2
    assert workflow.steps[0].retry.initial_backoff == timedelta(seconds=1)


def test_fully_qualified_grpc_method_and_headers() -> None:
    """`pkg.Service/Method` names the service; gRPC metadata keys are lower-cased."""
    workflow = load_workflow("""\
name: w
services:
  auth:
    type: grpc
    endpoint: "dns:///auth.internal:443"
    headers: {X-Tenant: "{{ .input.tenant }}", x-static: "yes"}
    tls: true
steps:
  - {id: a, service: auth, method: acme.auth.v1.AuthService/CreateUser}
""")
    step = workflow.steps[0]
    assert step.method == GrpcMethod("CreateUser", "acme.auth.v1.AuthService")
    headers = workflow.services["auth"].headers
    assert sorted(headers) == ["x-static", "x-tenant"]
    assert headers["x-tenant"].render({"input": {"tenant": "t1"}}) == "t1"
    assert workflow.services["auth"].tls is not None


def _descriptor_set(package: str) -> bytes:
    """A FileDescriptorSet whose service has a method A (each package gives other bytes)."""
    file = descriptor_pb2.FileDescriptorProto(name="auth.proto", package=package, syntax="proto3")
    file.message_type.add(name="M")
    file.service.add(name="S").method.add(
        name="A", input_type=f".{package}.M", output_type=f".{package}.M"
    )
    return descriptor_pb2.FileDescriptorSet(file=[file]).SerializeToString()


ONE, TWO = _descriptor_set("one"), _descriptor_set("two")


def test_descriptor_set_travels_with_the_workflow() -> None:
    """Files the workflow names come from `files`; they are kept and change the hash."""
    text = """\
name: w
services:
  auth: {type: grpc, endpoint: "auth:50051", descriptor_set: schema/auth.binpb}
steps:
  - {id: a, service: auth, method: A}
"""
    one = load_workflow(text, files={"schema/auth.binpb": ONE})
    two = load_workflow(text, files={"schema/auth.binpb": TWO})
    assert one.files == {"schema/auth.binpb": ONE}
    assert one.services["auth"].descriptor_set == "schema/auth.binpb"
    assert one.hash != two.hash
    with pytest.raises(InvalidWorkflowError, match=r"file 'schema/auth\.binpb' not found"):
        load_workflow(text)


def test_when_and_continue_on_error() -> None:
    """`when` compiles to a template; continue_on_error is read."""
    workflow = load_workflow(
        BASE
        + """\
  - {id: a, service: auth, method: A, when: "{{ .input.send }}", continue_on_error: true}
"""
    )
    step = workflow.steps[0]
    assert isinstance(step.when, Template)
    assert step.when.render({"input": {"send": False}}) is False
    assert step.continue_on_error is True


def test_input_schema_is_kept() -> None:
    """A valid JSON Schema is accepted as `input_schema`."""
    workflow = load_workflow("""\
name: w
input_schema:
  type: object
  required: [email]
  properties: {email: {type: string}}
services:
  auth: {type: grpc, endpoint: "auth:50051"}
steps:
  - {id: a, service: auth, method: A}
""")
    assert workflow.input_schema == {
        "type": "object",
        "required": ["email"],
        "properties": {"email": {"type": "string"}},
    }


def test_compensation_may_read_its_own_step_output() -> None:
    """A compensation sees its step's output, by name and under .steps."""
    workflow = load_workflow(
        BASE
        + """\
  - id: a
    service: auth
    method: A
    output: thing
    compensate:
      service: crm
      method: "DELETE /things/{{ .thing.id }}"
      input: {also: "{{ .steps.a.output.id }}"}
"""
    )
    compensation = workflow.steps[0].compensate
    assert compensation is not None and compensation.service == "crm"


def test_durations_may_be_written_in_days_and_in_parts() -> None:
    """The workflow language reads the same durations as the command line's flags."""
    workflow = load_workflow(
        "timeout: 1d12h\n"
        + BASE
        + """\
  - id: a
    service: auth
    method: A
    timeout: 1m30s
"""
    )
    assert workflow.timeout == timedelta(hours=36)
    assert workflow.steps[0].timeout == timedelta(seconds=90)
